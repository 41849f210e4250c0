"""``vlmkit cache-features CONFIG [KEY=VALUE ...]``: precompute the frozen modules' features of every video of a
config's datasets, so that training and evaluation read them instead of decoding videos and running a frozen vision
tower (docs/feature_cache.md).

The model is built as training or evaluation builds it (same seed, same weights); each pixel branch whose encoder
is frozen is cached through its encoder and, unless ``--through encoder``, the frozen stages after it
(``vlmkit.models.cached_prefix``). Videos are decoded and processed by the datasets' own loaders, in DataLoader
workers, with the frame indices and preprocessing the run will use; a training dataset whose frames are drawn at
random (random sampler, ``train_augment``) is refused, naming the setting. The features go to safetensors shards
with a manifest keyed by the modules' weights and settings, the precision, and each dataset's sampling and
preprocessing (``vlmkit.data.feature_cache``). Run again to add videos a cache lacks; ``--overwrite`` starts anew.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from vlmkit.errors import ConfigError, DataError

SECTIONS = ("run", "evaluation")


class ClipFrames:
    """(clip key, processed uint8 frames per cached position or the reason the clip is bad, video bytes) of each
    clip: the decoding half of the build, for DataLoader workers."""

    def __init__(self, media: Any, records: list[tuple[str, Any]], positions: list[int]):
        self.media, self.records, self.positions = media, records, positions

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[str, Any, Optional[int]]:
        import os

        clip, record = self.records[index]
        size = os.path.getsize(record.media) if os.path.isfile(record.media) else None
        try:
            frames = self.media.decode(record.media, record.start, record.end, None)
            return clip, [self.media.processors[p](frames) for p in self.positions], size
        except DataError as err:
            return clip, f"{record.media}: {err}", size


def section_of(cfg: Any) -> str:
    for section in SECTIONS:
        if cfg.get(section) is not None:
            return section
    raise ConfigError("", "the config has neither a 'run' nor an 'evaluation' section: cache-features builds the "
                          "datasets as training or evaluation would")


def setting(cfg: Any, section: str, key: str) -> Any:
    from vlmkit.registry import RUNNERS, Registry

    runner = cfg[section]
    if key in runner:
        return runner[key]
    return RUNNERS.parameters(Registry.name_of(runner, section))[key].default


def open_cache(folder: Path, model_key: dict, precision: str, dtype: str, built_by: str, overwrite: bool) -> dict:
    """The manifest to add to: the folder's own when it was built for these modules, a new one otherwise (with
    ``overwrite``; without, a cache for other modules is refused naming what differs)."""
    from vlmkit.data.feature_cache.store import MANIFEST, new_manifest, read_manifest
    from vlmkit.models.cached_prefix import key_differences

    if (folder / MANIFEST).is_file() and not overwrite:
        manifest = read_manifest(folder)
        problems = key_differences(manifest["model"], model_key)
        problems += [f"{what}: {manifest[what]} in the cache, {now} now" for what, now in
                     (("precision", precision), ("dtype", dtype)) if manifest[what] != now]
        if set(manifest["model"]) != set(model_key):
            problems.append(f"cached branches {sorted(manifest['model'])} in the cache, {sorted(model_key)} now")
        if problems:
            raise ConfigError("--output", f"{folder} holds a feature cache built for other modules:\n  - "
                                          + "\n  - ".join(problems) + "\nadd --overwrite to replace it")
        return manifest
    if overwrite:
        for old in [*folder.glob("features-*.safetensors"), folder / MANIFEST]:
            old.unlink(missing_ok=True)
    return new_manifest(model_key, precision, dtype, built_by)


def cache_dataset(model: Any, depths: dict[int, int], where: str, dataset: Any, writer: Any, *, batch_size: int,
                  num_workers: Any, device: Any, precision: str, say) -> dict[str, int]:
    """Encode and store every clip of ``dataset`` the cache lacks; returns counts (cached, bad, present)."""
    import torch
    from torch.utils.data import DataLoader

    from vlmkit.data.feature_cache import variant as variants
    from vlmkit.data.feature_cache.serve import check_cacheable, clips
    from vlmkit.runners.context import PRECISIONS, autocast
    from vlmkit.runners.workers import resolve_num_workers

    check_cacheable(dataset, where)
    branches = sorted(depths)
    positions = [model.pixel_branches.index(b) for b in branches]
    description = variants.describe(dataset.media, positions)
    variant = variants.digest(description)
    writer.add_variant(variant, description)
    wanted = clips(dataset)
    todo = [(clip, record) for clip, record in wanted.items() if not writer.has(variant, clip)]
    counts = {"cached": 0, "bad": 0, "present": len(wanted) - len(todo)}
    if not todo:
        return counts
    loader = DataLoader(ClipFrames(dataset.media, todo, positions), batch_size=batch_size, collate_fn=list,
                        num_workers=resolve_num_workers(num_workers, len(todo), "--num-workers"))
    for items in loader:
        good = [(clip, frames, size) for clip, frames, size in items if not isinstance(frames, str)]
        for clip, reason, _ in (item for item in items if isinstance(item[1], str)):
            writer.add_bad(variant, clip, reason)
            counts["bad"] += 1
            say(f"{where}: bad video, recorded as such: {reason}")
        if not good:
            continue
        outputs = {}
        with torch.no_grad(), autocast(device, PRECISIONS[precision]):
            for branch, position in zip(branches, positions):
                pixels = torch.stack([frames[positions.index(position)] for _, frames, _ in good]).to(device)
                outputs[position] = model.branches[branch].encode_prefix(pixels, depths[branch])
        for row, (clip, _, size) in enumerate(good):
            writer.add(variant, clip, {position: out[row] for position, out in outputs.items()}, size)
        counts["cached"] += len(good)
    return counts


def build(cfg: Any, output: Path, *, splits: Optional[Sequence[str]], through: str, dtype: str, batch_size: int,
          num_workers: Any, device: Optional[str], shard_bytes: int, overwrite: bool, built_by: str,
          say=print) -> dict[str, Any]:
    """Cache the features of ``cfg``'s datasets (``splits``: their keys; all by default) in ``output``."""
    import torch

    from vlmkit.assemble import build_datasets, build_model, in_evaluation_mode, run_seed
    from vlmkit.config import to_dict
    from vlmkit.data.feature_cache.serve import video_datasets
    from vlmkit.data.feature_cache.store import FeatureCacheWriter
    from vlmkit.dtypes import precision_name
    from vlmkit.models.cached_prefix import prefix_depths, prefix_key
    from vlmkit.runners.rng import seed_everything

    section = section_of(cfg)
    if section == "evaluation":
        cfg = in_evaluation_mode(cfg)
    keys = list(splits) if splits else [str(k) for k in cfg.datasets]
    unknown = [k for k in keys if k not in cfg.datasets]
    if unknown:
        raise ConfigError("--splits", f"{unknown} are not datasets of this config ({', '.join(map(str, cfg.datasets))})")
    precision = precision_name(setting(cfg, section, "precision"))
    seed = run_seed(cfg, section)
    if seed is not None:  # the random init of anything no weight file fills, as the run will have it
        seed_everything(seed)
    model = build_model(cfg)
    depths, refusals = prefix_depths(model, through)
    for reason in refusals:
        say(f"not cached: {reason}")
    if not depths:
        raise ConfigError("model", "no visual branch can be cached:\n  - " + "\n  - ".join(refusals or [
            "the model has no branch that reads pixels"]))
    datasets = build_datasets(cfg, model)
    model_key = prefix_key(model, depths, to_dict(cfg.model))
    writer = FeatureCacheWriter(output, open_cache(output, model_key, precision, dtype, built_by, overwrite),
                                shard_bytes)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval().to(target)
    start, counts = time.perf_counter(), {}
    for key in keys:
        for where, dataset in video_datasets(datasets[key], f"datasets.{key}"):
            counts[where] = cache_dataset(model, depths, where, dataset, writer, batch_size=batch_size,
                                          num_workers=num_workers, device=target, precision=precision, say=say)
            say(f"{where}: {counts[where]['cached']} videos cached, {counts[where]['bad']} bad, "
                f"{counts[where]['present']} already in the cache")
    writer.flush()
    size = sum(p.stat().st_size for p in output.glob("features-*.safetensors"))
    stages = ", ".join(f"branch {b}: encoder + {d} stage(s)" for b, d in sorted(depths.items()))
    say(f"feature cache {output}: {stages}; {size / 2**20:.1f} MiB in {len(writer.manifest['shards'])} shard(s); "
        f"{time.perf_counter() - start:.1f} s. Use it with {section}.feature_cache={output}")
    return {"output": str(output), "branches": depths, "datasets": counts, "bytes": size}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlmkit cache-features", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cfg_path", help="a training or evaluation config")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--output", help="the cache folder (default: the config's run.feature_cache or "
                                    "evaluation.feature_cache)")
    p.add_argument("--splits", nargs="+", help="dataset keys to cache (default: every dataset of the config)")
    p.add_argument("--through", choices=["frozen", "encoder"], default="frozen",
                   help="cache the encoder and the frozen stages after it (default), or the encoder's output only")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="stored dtype (auto: as computed; a narrower one changes the losses slightly)")
    p.add_argument("--batch-size", type=int, default=8, help="videos encoded at once")
    p.add_argument("--num-workers", default="auto", help="DataLoader workers decoding videos ('auto' or a number)")
    p.add_argument("--device", default=None, help="where the frozen modules run (default: cuda if available)")
    p.add_argument("--shard-size-mb", type=int, default=1024, help="largest shard (one video at least)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache built for other modules")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from vlmkit.config import load_config

    args = parser().parse_args(argv)
    num_workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    if args.batch_size < 1 or args.shard_size_mb < 1:
        raise ConfigError("--batch-size", "--batch-size and --shard-size-mb must be >= 1")
    cfg = load_config(args.cfg_path, args.overrides)
    section = section_of(cfg)
    output = args.output or setting(cfg, section, "feature_cache")
    if not output:
        raise ConfigError(f"{section}.feature_cache", "no cache folder: pass --output DIR or set "
                                                      f"{section}.feature_cache in the config")
    built_by = shlex.join(["vlmkit", "cache-features", str(args.cfg_path), *args.overrides, "--output", str(output),
                           *(["--through", args.through] if args.through != "frozen" else [])])
    try:
        build(cfg, Path(output), splits=args.splits, through=args.through, dtype=args.dtype,
              batch_size=args.batch_size, num_workers=num_workers, device=args.device,
              shard_bytes=args.shard_size_mb << 20, overwrite=args.overwrite, built_by=built_by)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
