"""Datasets read from the feature cache: each video dataset of a split (a mixture's sources, a concatenation's
parts) is checked against the cache, its variant and every clip it names, and then takes its visual inputs from
``CachedMedia`` instead of decoding (``VideoTextDataset.serve_media``).

Only datasets whose samples name a video file (``VideoTextDataset``: records with ``media``, ``start``, ``end``)
can be served; a stream of tar shards or a dataset of precomputed features is refused by name.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import ConcatDataset

from vlmkit.data.datasets.base import VideoTextDataset
from vlmkit.data.feature_cache import variant as variants
from vlmkit.data.feature_cache.cached_media import CachedMedia
from vlmkit.data.feature_cache.store import FeatureCacheReader, clip_key, describe_clip
from vlmkit.data.mixing import MixedDataset
from vlmkit.errors import ConfigError, DataError

LISTED = 10


def video_datasets(dataset: Any, where: str) -> Iterator[tuple[str, VideoTextDataset]]:
    """(config path, dataset) of every video dataset inside ``dataset``; raises for one the cache cannot serve."""
    if isinstance(dataset, VideoTextDataset):
        yield where, dataset
    elif isinstance(dataset, MixedDataset):
        for name, source in zip(dataset.names, dataset.sources):
            yield from video_datasets(source, f"{where}.sources.{name}")
    elif isinstance(dataset, ConcatDataset):
        for i, part in enumerate(dataset.datasets):
            yield from video_datasets(part, f"{where}[{i}]")
    else:
        raise ConfigError(where, f"{type(dataset).__name__} does not read its samples' frames from video files "
                                 f"named by records (a stream of tar shards, precomputed features...), so the "
                                 f"feature cache cannot serve it; leave the feature cache unset for this run")


def clips(dataset: VideoTextDataset) -> dict[str, Any]:
    """Clip key -> the first record naming it, for every record with a media file."""
    found: dict[str, Any] = {}
    for record in dataset.items:
        if record.media and not record.problem:
            found.setdefault(clip_key(record.media, record.start, record.end), record)
    return found


def check_cacheable(dataset: VideoTextDataset, where: str) -> None:
    """Refuse a dataset whose frames of a video change between reads, naming the setting."""
    reason = variants.random_draws(dataset.media)
    if reason:
        raise ConfigError(where, reason)


def variant_problems(dataset: VideoTextDataset, where: str, reader: FeatureCacheReader,
                     positions: list[int]) -> list[str]:
    """Why the cache holds no features of the frames this dataset reads (each difference named), or []."""
    reason = variants.random_draws(dataset.media)
    if reason:
        return [f"{where}: {reason}"]
    description = variants.describe(dataset.media, positions)
    cached = reader.manifest["variants"]
    if variants.digest(description) in cached:
        return []
    lines = sorted({line for other in cached.values() for line in variants.differences(other, description)})
    return [f"{where}: {line}" for line in lines or ["the cache holds features of no dataset"]]


def serve(dataset: VideoTextDataset, where: str, reader: FeatureCacheReader, positions: list[int]) -> int:
    """Make ``dataset`` (whose variant is in the cache: ``variant_problems``) read the cached features at
    ``positions``; returns its number of clips. Raises listing the clips the cache lacks."""
    media = dataset.media  # the dataset's own loader (the builder's may already be a CachedMedia)
    variant = variants.digest(variants.describe(media, positions))
    wanted = clips(dataset)
    missing = [clip for clip in wanted if reader.entry(variant, clip) is None and reader.bad(variant, clip) is None]
    if missing:
        listed = "\n  ".join(describe_clip(clip) for clip in missing[:LISTED])
        more = f"\n  ... and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        raise DataError(f"{where}: {len(missing)} of its {len(wanted)} videos are not in the feature cache "
                        f"{reader.folder}:\n  {listed}{more}\nadd them with `vlmkit cache-features CONFIG --output "
                        f"{reader.folder}` (it caches only what is missing), or leave the feature cache unset")
    dataset.serve_media(CachedMedia(reader, variant, positions, media))
    return len(wanted)
