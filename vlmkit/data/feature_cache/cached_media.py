"""``CachedMedia``: stands in for a dataset's ``MediaLoader`` (``load(path, start, end, seed)``, one tensor per
pixel branch) and serves the cached features of the branches the cache covers; the frames of any other pixel
branch are still decoded and processed as before."""
from __future__ import annotations

import os
from typing import Any, Optional

import torch

from vlmkit.data.feature_cache.store import FeatureCacheReader, clip_key, describe_clip
from vlmkit.errors import DataError


class CachedMedia:
    """``positions``: the ``pixel_values`` positions served from the cache (the rest are decoded by ``media``,
    the dataset's own loader); ``variant``: the dataset's variant digest in the cache."""

    def __init__(self, reader: FeatureCacheReader, variant: str, positions: list[int], media: Any):
        self.reader, self.variant, self.positions, self.media = reader, variant, list(positions), media
        self.decoded = [p for p in range(len(media.processors)) if p not in self.positions]

    def load(self, path: str, start: Optional[float] = None, end: Optional[float] = None,
             seed: Optional[int] = None) -> list[torch.Tensor]:
        clip = clip_key(path, start, end)
        entry = self.reader.entry(self.variant, clip)
        if entry is None:
            bad = self.reader.bad(self.variant, clip)
            if bad is not None:  # the build could not read it either: the dataset's on_bad_sample decides
                raise DataError(f"{bad} (recorded when the feature cache {self.reader.folder} was built)")
            raise DataError(f"{describe_clip(clip)}: not in the feature cache {self.reader.folder}; add it with "
                            f"`vlmkit cache-features CONFIG --output {self.reader.folder}`")
        if entry.get("bytes") is not None and os.path.isfile(path) and os.path.getsize(path) != entry["bytes"]:
            raise DataError(f"{path}: the video changed since its features were cached ({entry['bytes']} bytes "
                            f"then, {os.path.getsize(path)} now); rebuild the cache with `vlmkit cache-features "
                            f"CONFIG --output {self.reader.folder} --overwrite`")
        out: list[Optional[torch.Tensor]] = [None] * len(self.media.processors)
        for position, tensor in zip(self.positions, self.reader.load(entry, self.positions)):
            out[position] = tensor
        if self.decoded:
            frames = self.media.decode(path, start, end, seed)
            for position in self.decoded:
                out[position] = self.media.processors[position](frames, seed=seed)
        return out
