"""Write a synthetic dataset to disk, in parallel, once: a second call with the same parameters is a no-op.

Skip rule (``manifest.json`` is written last, so it exists only after a complete run):

* manifest present, same parameters, every listed file present  -> nothing is written, the manifest is returned
  with ``"skipped": true``;
* manifest present with different parameters                     -> ``DataError`` naming the differences, unless
  ``overwrite=True``, which deletes the generator's outputs (only those) and regenerates;
* no manifest (never generated, or an interrupted run), or files missing -> the outputs are regenerated.

Work is split into jobs of ``shard_size`` consecutive videos; ``workers`` processes render, encode and write
each job's mp4 files and (training jobs) its one shard, and the parent writes the JSON files in video order, so
every output is the same whatever the worker count.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vlmkit.demo.synthetic.generator import SyntheticVideoGenerator
from vlmkit.errors import DataError

FORMAT_VERSION = 1
JSON_OUTPUTS = ("train_conversations.json", "test_mc.json", "test_open_qa.json", "test_captions.json",
                "test_scenes.json")
_log = logging.getLogger(__name__)
_worker_generator: SyntheticVideoGenerator | None = None


def generate_dataset(out: str | os.PathLike, generator: SyntheticVideoGenerator, train: int, test: int,
                     seed: int, workers: int = 2, overwrite: bool = False, progress: bool = False) -> dict:
    """Generate ``train`` + ``test`` videos and their annotations under ``out``; returns the manifest."""
    if train < 0 or test < 0:
        raise ValueError(f"train and test counts must be >= 0, got {train}, {test}")
    out = Path(out)
    wanted = wanted_params(generator, train, test, seed)
    existing = read_manifest(out)
    if existing is not None:
        if existing["params"] == wanted:
            missing = missing_outputs(out, existing)
            if not missing:
                return {**existing, "skipped": True}
            _log.warning("%s: %d generated files are missing (e.g. %s); regenerating", out, len(missing), missing[0])
        elif not overwrite:
            raise DataError(f"{out} holds a synthetic dataset generated with other parameters "
                            f"({_differences(existing['params'], wanted)}); choose another output directory, "
                            "or pass overwrite=True (--overwrite) to replace it")
    clear_outputs(out)
    started = time.perf_counter()
    counts, shards = _write_all(out, generator, train, test, seed, workers, progress)
    seconds = time.perf_counter() - started
    manifest = {"params": wanted, "counts": counts, "shards": shards,
                "shard_pattern": _brace_pattern(shards), "seconds": round(seconds, 2),
                "videos_per_second": round((train + test) / max(seconds, 1e-9), 1)}
    _write_json(out / "manifest.json", manifest, indent=1)
    return {**manifest, "skipped": False}


def wanted_params(generator: SyntheticVideoGenerator, train: int, test: int, seed: int) -> dict:
    """The parameters a manifest records; equal parameters mean byte-identical outputs."""
    return {"format_version": FORMAT_VERSION, "seed": seed, "train": train, "test": test,
            "generator": generator.params}


def params_differences(out: str | os.PathLike, generator: SyntheticVideoGenerator, train: int, test: int,
                       seed: int) -> str | None:
    """What differs between the dataset under ``out`` and the one asked for; None when there is none yet or
    it has the same parameters."""
    existing = read_manifest(Path(out))
    if existing is None or existing["params"] == wanted_params(generator, train, test, seed):
        return None
    return _differences(existing["params"], wanted_params(generator, train, test, seed))


def read_manifest(out: Path) -> dict | None:
    path = Path(out) / "manifest.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); delete it to regenerate the dataset") from err


def missing_outputs(out: Path, manifest: dict) -> list[str]:
    """Files a complete run would have written that are not there (videos are counted, not listed)."""
    missing = [name for name in JSON_OUTPUTS if not (out / name).is_file()]
    missing += [name for name in manifest["shards"] if not (out / name).is_file()]
    for split in ("train", "test"):
        folder = out / "videos" / split
        found = sum(1 for _ in os.scandir(folder)) if folder.is_dir() else 0
        if found != manifest["params"][split]:
            missing.append(f"videos/{split}/ ({found} of {manifest['params'][split]} files)")
    return missing


def clear_outputs(out: Path) -> None:
    """Delete what this generator writes under ``out`` and nothing else."""
    for folder in ("videos", "shards"):
        shutil.rmtree(out / folder, ignore_errors=True)
    for name in (*JSON_OUTPUTS, "manifest.json"):
        (out / name).unlink(missing_ok=True)


def _write_all(out: Path, generator: SyntheticVideoGenerator, train: int, test: int, seed: int, workers: int,
               progress: bool) -> tuple[dict, list[str]]:
    # the parent imports webdataset once (it pulls in torch, ~3 s); forked workers inherit it
    import webdataset  # noqa: F401

    for split in ("train", "test"):
        (out / "videos" / split).mkdir(parents=True, exist_ok=True)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    size = generator.shard_size
    jobs = [_Job(str(out), split, start, min(start + size, count), seed,
                 f"shards/train-{start // size:06d}.tar" if split == "train" else None)
            for split, count in (("test", test), ("train", train)) for start in range(0, count, size)]
    results: dict[int, dict] = {}
    with tqdm(total=train + test, desc="synthetic videos", unit="video", disable=not progress) as bar:
        for number, records in _run(generator, jobs, workers):
            results[number] = records
            bar.update(jobs[number].stop - jobs[number].start)
    collected = {name: [] for name in JSON_OUTPUTS}
    for number in range(len(jobs)):          # job order = video order, whatever order they finished in
        for name, entries in results[number].items():
            collected[name].extend(entries)
    for name, entries in collected.items():
        _write_json(out / name, entries)
    shards = [job.shard for job in jobs if job.shard]
    counts = {"train_videos": train, "test_videos": test, "shards": len(shards),
              **{name.removesuffix(".json"): len(entries) for name, entries in collected.items()}}
    return counts, shards


@dataclass(frozen=True)
class _Job:
    """Videos ``start..stop-1`` of a split; a training job writes exactly one shard, so shard contents do not
    depend on the number of workers."""
    out: str
    split: str
    start: int
    stop: int
    seed: int
    shard: str | None   # relative path of the job's shard (training jobs only)


def _run(generator: SyntheticVideoGenerator, jobs: list[_Job], workers: int):
    """Yield ``(job number, records)`` as jobs finish, from ``workers`` processes (in-process if <= 1).

    Workers are forked where the platform allows it (as torch's DataLoader does): they inherit the imported
    modules instead of re-importing numpy, PyAV and webdataset.
    """
    numbered = list(enumerate(jobs))
    if workers <= 1 or len(jobs) == 1:
        _init_worker(generator)
        yield from map(_run_job, numbered)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs)), initializer=_init_worker,
                                                  initargs=(generator,)) as pool:
        yield from pool.imap_unordered(_run_job, numbered)


def _init_worker(generator: SyntheticVideoGenerator) -> None:
    global _worker_generator
    _worker_generator = generator


def _run_job(numbered: tuple[int, _Job]) -> tuple[int, dict[str, list[dict]]]:
    """Render, encode and write the job's videos (and its shard); return its JSON records."""
    import webdataset as wds

    number, job = numbered
    generator, out = _worker_generator, Path(job.out)
    records: dict[str, list[dict]] = {}
    # mtime=0: a shard is byte-identical across runs with the same parameters
    sink = wds.TarWriter(str(out / job.shard), mtime=0) if job.shard else None
    try:
        for index in range(job.start, job.stop):
            video = generator.sample(job.split, index, job.seed)
            mp4 = generator.encode(video)
            (out / video.video_path).write_bytes(mp4)
            if sink is not None:
                sink.write(generator.shard_sample(video, mp4))
                entries = {"train_conversations.json": generator.conversations(video)}
            else:
                entries = generator.test_records(video)
            for name, values in entries.items():
                records.setdefault(name, []).extend(values)
    finally:
        if sink is not None:
            sink.close()
    return number, records


def _write_json(path: Path, data, indent: int | None = None) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent))
    os.replace(tmp, path)


def _differences(old: dict, new: dict, prefix: str = "") -> str:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                diffs.append(inner)
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} on disk, {b!r} asked for")
    return "; ".join(diffs)


def _brace_pattern(shards: list[str]) -> str | None:
    """``shards/train-{000000..000029}.tar``, the brace form webdataset expands."""
    if not shards:
        return None
    first, last = shards[0], shards[-1]
    if first == last:
        return first
    return f"shards/train-{{{first[-10:-4]}..{last[-10:-4]}}}.tar"
