"""The cache folder: safetensors shards of per-video features and ``manifest.json``.

    manifest.json            format, version, the model key (``vlmkit.models.cached_prefix.prefix_key``), the
                             precision and dtype of the features, the data variants (``variant``), and per variant
                             and clip the shard and tensor names of its features (or why the clip was bad)
    features-00000.safetensors   tensors "<entry>.<position>": one video's features for the pixel branch at that
                             position of ``pixel_values``, (T, N, D)

A clip is keyed by its media path as the dataset resolves it (``media_root`` joined with the file name, normalised)
and its start and end times. Shards are written whole (temporary file, then rename) and the manifest after each
one, so an interrupted build keeps what it finished and a later build adds the rest.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

from vlmkit.errors import DataError

MANIFEST = "manifest.json"
FORMAT = "vlmkit-feature-cache"
VERSION = 1
SHARD_BYTES = 1 << 30


def clip_key(media: str, start: Optional[float] = None, end: Optional[float] = None) -> str:
    """The cache's key of one clip: the normalised media path and the clip's bounds."""
    return json.dumps([os.path.normpath(str(media)), start, end])


def describe_clip(clip: str) -> str:
    path, start, end = json.loads(clip)
    return path if start is None and end is None else f"{path} [{start}-{end} s]"


def read_manifest(folder: Path | str) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder}: no feature cache here ({MANIFEST} not found); build one with "
                        f"`vlmkit cache-features CONFIG --output {folder}`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"{path}: not a {FORMAT} manifest of version {VERSION} (found {manifest.get('format')!r} "
                        f"version {manifest.get('version')!r}); rebuild it with `vlmkit cache-features ... --overwrite`")
    return manifest


def new_manifest(model: dict, precision: str, dtype: str, built_by: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "model": model, "precision": precision, "dtype": dtype,
            "built_by": built_by, "variants": {}, "entries": {}, "bad": {}, "shards": [], "next_entry": 0}


def write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)


class FeatureCacheWriter:
    """Adds clips' features to a cache folder, a shard at a time (``shard_bytes`` each at most, one clip at least).

    ``manifest``: a new one (``new_manifest``) or the folder's own, to add clips to it."""

    def __init__(self, folder: Path | str, manifest: dict, shard_bytes: int = SHARD_BYTES):
        self.folder, self.manifest, self.shard_bytes = Path(folder), manifest, shard_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_entries: list[tuple[str, str, dict]] = []
        self.pending_clips: set[tuple[str, str]] = set()
        self.pending_bytes = 0
        # "auto": the dtype the modules computed (float32, or bfloat16 under bf16 autocast)
        self.dtype = None if manifest["dtype"] == "auto" else getattr(torch, manifest["dtype"])

    def add_variant(self, variant: str, description: dict) -> None:
        self.manifest["variants"].setdefault(variant, description)
        self.manifest["entries"].setdefault(variant, {})
        self.manifest["bad"].setdefault(variant, {})

    def has(self, variant: str, clip: str) -> bool:
        """Whether the clip is cached (or recorded bad), written or pending."""
        return (clip in self.manifest["entries"].get(variant, {}) or clip in self.manifest["bad"].get(variant, {})
                or (variant, clip) in self.pending_clips)

    def add(self, variant: str, clip: str, features: dict[int, torch.Tensor], video_bytes: Optional[int]) -> None:
        """One clip's features: pixel-branch position -> (T, N, D) tensor."""
        number = self.manifest["next_entry"]
        self.manifest["next_entry"] += 1
        for position, tensor in features.items():
            tensor = tensor.detach().to("cpu", self.dtype or tensor.dtype).contiguous()
            self.pending[f"{number}.{position}"] = tensor
            self.pending_bytes += tensor.numel() * tensor.element_size()
        self.pending_entries.append((variant, clip, {"entry": number, "bytes": video_bytes}))
        self.pending_clips.add((variant, clip))
        if self.pending_bytes >= self.shard_bytes:
            self.flush()

    def add_bad(self, variant: str, clip: str, reason: str) -> None:
        self.manifest["bad"][variant][clip] = reason

    def flush(self) -> None:
        """Write the pending clips as one shard, then the manifest that names them."""
        from safetensors.torch import save_file

        if self.pending:
            name = f"features-{len(self.manifest['shards']):05d}.safetensors"
            tmp = self.folder / f".{name}.tmp"
            save_file(self.pending, str(tmp))
            os.replace(tmp, self.folder / name)
            shard = len(self.manifest["shards"])
            self.manifest["shards"].append(name)
            for variant, clip, entry in self.pending_entries:
                self.manifest["entries"][variant][clip] = {**entry, "shard": shard}
            self.pending, self.pending_entries, self.pending_bytes = {}, [], 0
            self.pending_clips = set()
        write_manifest(self.folder, self.manifest)


class FeatureCacheReader:
    """Reads clips' features from a cache folder; shards are opened (memory-mapped) on first use in each process,
    so a reader handed to DataLoader workers opens its own."""

    def __init__(self, folder: Path | str, manifest: Optional[dict] = None):
        self.folder = Path(folder)
        self.manifest = manifest if manifest is not None else read_manifest(self.folder)
        self._open: dict[int, Any] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": {}}

    def entry(self, variant: str, clip: str) -> Optional[dict]:
        return self.manifest["entries"].get(variant, {}).get(clip)

    def bad(self, variant: str, clip: str) -> Optional[str]:
        return self.manifest["bad"].get(variant, {}).get(clip)

    def _shard(self, index: int) -> Any:
        from safetensors import safe_open

        if self._pid != os.getpid():  # a forked worker: its own handles
            self._open, self._pid = {}, os.getpid()
        if index not in self._open:
            path = self.folder / self.manifest["shards"][index]
            if not path.is_file():
                raise DataError(f"{path}: a shard the feature cache's manifest names is missing; rebuild the cache "
                                f"with `vlmkit cache-features ... --overwrite`")
            self._open[index] = safe_open(str(path), framework="pt")
        return self._open[index]

    def load(self, entry: dict, positions: list[int]) -> list[torch.Tensor]:
        shard = self._shard(entry["shard"])
        return [shard.get_tensor(f"{entry['entry']}.{position}") for position in positions]
