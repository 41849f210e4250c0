"""Caption pretraining from webdataset shards (WebVid / CC3M style): tar files whose members share a key,
``<key>.mp4`` (or .jpg ...) plus ``<key>.json`` (``{"caption": ...}``) or ``<key>.txt``.

Streaming and resumable at the exact sample: shards are read in order, sample by sample, and a cursor per
shard (the index of the next sample to read) is the dataset's state.  Each sample's meta carries its
``shard`` and ``shard_index``, so a runner that loads with DataLoader workers rebuilds the state in the main
process with ``consumed(batch["meta"])``; with no workers the iterator keeps it itself.  Resuming with
``load_state_dict`` starts every shard at its cursor: no sample is repeated and none is skipped.
"""
from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Optional

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import (BadSampleLog, Policy, Record, SampleBuilder, check_policy, resolve_media,
                                       sample_seed)
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

MEDIA_KEYS = ["mp4", "webm", "mkv", "avi", "mov", "gif", "jpg", "jpeg", "png", "webp"]


def expand_shards(shards: Any) -> list[str]:
    """Brace patterns (``train-{000000..000009}.tar``) or a list of them, expanded in order."""
    from braceexpand import braceexpand

    patterns = [shards] if isinstance(shards, str) else list(shards)
    names = [name for pattern in patterns for name in braceexpand(str(pattern))]
    if not names:
        raise ConfigError("shards", f"no shard matches {shards!r}")
    return names


def sample_key(member_name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the file name, the rest the extension."""
    folder, base = os.path.split(member_name)
    stem, _, ext = base.partition(".")
    return os.path.join(folder, stem), ext.lower()


def read_groups(path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of one tar shard, in order, streaming."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: shard not found")
    key, group = None, {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name_key, ext = sample_key(member.name)
                if key is not None and name_key != key:
                    yield key, group
                    group = {}
                key = name_key
                handle = tar.extractfile(member)
                group[ext] = handle.read() if handle else b""
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path}: unreadable shard ({err})") from err
    if key is not None:
        yield key, group


def count_samples(path: str) -> int:
    """Samples in a shard from its headers alone (random access skips the member data)."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            return len({sample_key(m.name)[0] for m in tar.getmembers() if m.isfile()})
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"{path}: unreadable shard ({err})") from err


@DATASETS.register("webdataset_captions", aliases=["webvid_shards", "cc3m_shards", "wds_captions"])
class WebDatasetCaptions(IterableDataset):
    """Streams caption samples from tar shards, turned into ``prompt`` -> caption conversations.

    ``shards``: brace pattern(s) under ``root``.  ``prompts``: instruction prompts drawn per sample (seeded by
    seed, epoch and position), ``prompt`` when not given.  ``caption_key``: the JSON field holding the caption
    (a ``.txt`` member is used when there is no JSON).  Shards are split over ranks and DataLoader workers;
    ``shuffle_shards`` reorders them per epoch in training.  ``num_samples`` gives ``len()`` without counting
    the shards' headers.  Bad samples are raised, or skipped (``resample`` also skips: a stream has no
    random access); each is counted and listed.
    """

    name = "webdataset_captions"

    def __init__(self, shards: Any, root: str = "", prompt: str = "Describe this video briefly.",
                 prompts: Optional[list[str]] = None, caption_key: str = "caption",
                 media_keys: list[str] = MEDIA_KEYS, shuffle_shards: bool = True, num_samples: Optional[int] = None,
                 *, contract: Runtime[DataContract], train: bool = True, on_bad_sample: Policy = "skip",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0,
                 bad_sample_dir: Optional[str] = None):
        if contract is None:
            raise DataError("webdataset_captions needs the model's data contract; got None")
        if not isinstance(shards, (str, list, tuple)):
            raise ConfigError("shards", f"expected a brace pattern or a list of them, got {shards!r}")
        self.root = root
        self.shards = expand_shards(shards)  # names as configured: the state is keyed by them, not by root
        self.prompts = list(prompts) if prompts else [prompt]
        self.caption_key, self.media_keys = caption_key, [k.lower() for k in media_keys]
        self.shuffle_shards, self.num_samples = shuffle_shards, num_samples
        self.train, self.seed, self.epoch = train, seed, 0
        self.on_bad_sample = check_policy(on_bad_sample)
        self.builder = SampleBuilder(contract, train, backend)
        self.bad_log = BadSampleLog(self.name, bad_sample_dir)
        self._cursors: dict[str, int] = {}
        self._done: set[str] = set()
        self._tmpdir: Optional[str] = None
        self._length: Optional[int] = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """The exact position: per shard, the index of the next sample, and the shards already finished."""
        return {"epoch": self.epoch, "cursors": dict(self._cursors), "done": sorted(self._done)}

    def load_state_dict(self, state: dict) -> None:
        unknown = sorted((set(state.get("cursors", {})) | set(state.get("done", []))) - set(self.shards))
        if unknown:
            raise DataError(f"webdataset_captions: the saved position names shards not in this dataset "
                            f"({unknown[:3]}...); the shard list changed since the checkpoint")
        self.epoch = int(state.get("epoch", 0))
        self._cursors = {str(k): int(v) for k, v in state.get("cursors", {}).items()}
        self._done = set(state.get("done", []))

    def consumed(self, metas: Sequence[dict]) -> None:
        """Advance the cursors past samples the training loop received (needed when workers read the data)."""
        for meta in metas:
            shard, index = meta["shard"], int(meta["shard_index"])
            self._cursors[shard] = max(self._cursors.get(shard, 0), index + 1)
            if meta.get("shard_last"):
                self._done.add(shard)

    def set_epoch(self, epoch: int) -> None:
        """A new pass: shard order reshuffled, cursors reset."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self._cursors, self._done = {}, set()

    def set_output_dir(self, path: str) -> None:
        self.bad_log.output_dir = str(path)

    def bad_samples(self) -> list[dict]:
        return self.bad_log.entries()

    def write_bad_samples(self, output_dir: Optional[str] = None):
        return self.bad_log.write_summary(output_dir)

    def reset_bad_samples(self) -> None:
        self.bad_log.reset()

    def set_max_bad_fraction(self, fraction: Optional[float]) -> None:
        self.bad_log.limit(fraction)  # judged per process as it reads (a stream has no length to divide by)

    # ------------------------------------------------------------------ iteration
    def shard_order(self) -> list[str]:
        order = list(self.shards)
        if self.train and self.shuffle_shards:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order

    def my_shards(self) -> list[str]:
        """This rank's and this worker's share of the shards."""
        import torch.distributed as dist

        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() \
            else (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        consumers, me = world * workers, rank * workers + worker
        order = self.shard_order()
        if len(order) < consumers:
            raise DataError(f"webdataset_captions: {len(order)} shard(s) for {consumers} readers ({world} rank(s) x "
                            f"{workers} worker(s)); write more shards or use fewer workers")
        return order[me::consumers]

    def __iter__(self) -> Iterator[dict]:
        for shard in self.my_shards():
            if shard in self._done:
                continue
            start = self._cursors.get(shard, 0)
            groups = read_groups(resolve_media(self.root, shard))
            pending = None
            index = -1
            for key, group in groups:
                index += 1
                if index < start:
                    continue
                if pending is not None:
                    sample = self._finish(shard, *pending, last=False)
                    if sample is not None:
                        yield sample
                pending = (index, key, group)
            if pending is not None:
                sample = self._finish(shard, *pending, last=True)
                if sample is not None:
                    yield sample
            self._done.add(shard)

    def _finish(self, shard: str, index: int, key: str, group: dict, last: bool) -> Optional[dict]:
        """Build one sample and move the cursor past it (before it is handed out: handed out = consumed)."""
        self._cursors[shard] = index + 1
        if last:
            self._done.add(shard)
        self.bad_log.note_read()
        try:
            sample = self._build(shard, index, key, group)
        except DataError as err:
            where = f"{resolve_media(self.root, shard)}#{key}"
            if self.on_bad_sample == "raise":
                raise DataError(f"{self.name}: sample {where} (index {index}): {err}") from err
            self.bad_log.record(index, key, where, str(err), "skipped")
            return None
        sample["meta"].update(shard=shard, shard_index=index, shard_last=last)
        return sample

    def _build(self, shard: str, index: int, key: str, group: dict) -> dict:
        ext = next((k for k in self.media_keys if k in group), None)
        if ext is None:
            raise DataError(f"no media member (looked for {', '.join(self.media_keys)}; found {sorted(group)})")
        if not group[ext]:
            raise DataError(f"the .{ext} member is empty (0 bytes)")
        caption = self._caption(group)
        seed = sample_seed(self.seed, self.epoch, hash_shard(shard), index)
        prompt = self.prompts[int(np.random.default_rng(seed).integers(len(self.prompts)))] if self.train \
            else self.prompts[0]
        record = Record(key, f"{shard}#{key}.{ext}",
                        [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{prompt}"}, {"from": "gpt", "value": caption}],
                        {"question": prompt, "answer": caption, "references": [caption]})
        path = self._spill(group[ext], ext)
        try:
            return self.builder.build(record, seed, path=path)
        finally:
            os.unlink(path)

    def _caption(self, group: dict) -> str:
        if "json" in group:
            try:
                data = json.loads(group["json"].decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"the .json member is not valid JSON ({err})") from err
            caption = data.get(self.caption_key) if isinstance(data, dict) else None
            if not isinstance(caption, str) or not caption.strip():
                raise DataError(f"the .json member has no non-empty '{self.caption_key}' string")
            return caption.strip()
        if "txt" in group:
            caption = group["txt"].decode("utf-8", errors="replace").strip()
            if caption:
                return caption
        raise DataError("no caption: neither a .json with '{self.caption_key}' nor a non-empty .txt member")

    def _spill(self, data: bytes, ext: str) -> str:
        """Decoders read files: write the member to this process's temporary folder."""
        if self._tmpdir is None or not os.path.isdir(self._tmpdir):
            self._tmpdir = tempfile.mkdtemp(prefix="vlmkit-wds-")
        handle, path = tempfile.mkstemp(suffix=f".{ext}", dir=self._tmpdir)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return path

    def collater(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        return self.builder.collate(samples)

    def __len__(self) -> int:
        if self.num_samples is not None:
            return self.num_samples
        if self._length is None:
            self._length = sum(count_samples(resolve_media(self.root, s)) for s in self.shards)
        return self._length

    def __getstate__(self) -> dict:  # DataLoader workers get no temporary folder of the parent
        return {**self.__dict__, "_tmpdir": None}


def hash_shard(shard: str) -> int:
    """A stable integer for a shard name (Python's hash() changes between processes)."""
    import zlib

    return zlib.crc32(os.path.basename(shard).encode())
