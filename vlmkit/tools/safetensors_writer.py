"""Write a sharded safetensors checkpoint one tensor at a time.

Every tensor's name, shape and dtype is known before any data is computed, so each shard's header is written first
and the data streamed after it: memory holds only the tensor in hand, whatever the shard size.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from vlmkit.errors import DataError
from vlmkit.tools.checkpoint_files import DTYPE_CODES, SAFETENSORS_INDEX


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def split_into_shards(tensors: list[PlannedTensor], max_shard_bytes: int) -> list[list[PlannedTensor]]:
    """Consecutive groups of at most max_shard_bytes (a larger single tensor gets a shard of its own)."""
    shards: list[list[PlannedTensor]] = [[]]
    size = 0
    for tensor in tensors:
        if shards[-1] and size + tensor.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(tensor)
        size += tensor.nbytes
    return shards


def _header_bytes(tensors: list[PlannedTensor]) -> bytes:
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        if tensor.dtype not in DTYPE_CODES:
            raise DataError(f"tensor {tensor.name!r}: dtype {tensor.dtype} cannot be stored in safetensors")
        header[tensor.name] = {"dtype": DTYPE_CODES[tensor.dtype], "shape": list(tensor.shape),
                               "data_offsets": [offset, offset + tensor.nbytes]}
        offset += tensor.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-(8 + len(encoded)) % 8)  # the data starts 8-byte aligned, as the reference writer does
    return struct.pack("<Q", len(encoded)) + encoded


class ShardedSafetensorsWriter:
    """Takes the planned tensors in order through `write`; `finish` writes the index json."""

    def __init__(self, directory: Path, tensors: list[PlannedTensor], max_shard_bytes: int):
        self.directory = directory
        self.shards = split_into_shards(tensors, max_shard_bytes)
        count = len(self.shards)
        self.shard_names = [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]
        self._queue = [(shard_index, tensor) for shard_index, shard in enumerate(self.shards) for tensor in shard]
        self._position = 0
        self._file = None
        self._current_shard = -1
        self._bytes_in_tensor = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.start_tensor(name, tensor.dtype)
        self.write_part(tensor)
        self.end_tensor()

    def start_tensor(self, name: str, dtype: torch.dtype) -> None:
        """Begin the next planned tensor; its data then comes in row ranges through write_part."""
        if self._position >= len(self._queue):
            raise DataError(f"tensor {name!r} was not planned for this checkpoint")
        shard_index, planned = self._queue[self._position]
        if name != planned.name or dtype != planned.dtype:
            raise DataError(f"expected tensor {planned.name!r} ({planned.dtype}) next, got {name!r} ({dtype})")
        if shard_index != self._current_shard:
            self._close_shard()
            self._current_shard = shard_index
            self._file = open(self._partial_path(shard_index), "wb")
            self._file.write(_header_bytes(self.shards[shard_index]))
        self._bytes_in_tensor = 0

    def write_part(self, part: torch.Tensor) -> None:
        planned = self._queue[self._position][1]
        if part.dtype != planned.dtype or tuple(part.shape[1:]) != planned.shape[1:]:
            raise DataError(f"tensor {planned.name!r}: got a part {tuple(part.shape)} {part.dtype}, expected rows "
                            f"of {planned.shape} {planned.dtype}")
        # Raw little-endian bytes, as safetensors stores them; a byte view avoids dtypes numpy lacks (bfloat16).
        data = part.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
        self._file.write(data.data)
        self._bytes_in_tensor += data.nbytes

    def end_tensor(self) -> None:
        planned = self._queue[self._position][1]
        if self._bytes_in_tensor != planned.nbytes:
            raise DataError(f"tensor {planned.name!r}: wrote {self._bytes_in_tensor} bytes, its shape "
                            f"{planned.shape} needs {planned.nbytes}")
        self._position += 1

    def _partial_path(self, shard_index: int) -> Path:
        return self.directory / (self.shard_names[shard_index] + ".partial")

    def _close_shard(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        os.replace(self._partial_path(self._current_shard), self.directory / self.shard_names[self._current_shard])

    def finish(self) -> list[Path]:
        """Close the last shard and write the index; returns the files written."""
        if self._position != len(self._queue):
            missing = [tensor.name for _, tensor in self._queue[self._position:]]
            raise DataError(f"{len(missing)} planned tensors were never written, first {missing[:5]}")
        self._close_shard()
        weight_map = {tensor.name: self.shard_names[i] for i, shard in enumerate(self.shards) for tensor in shard}
        total = sum(tensor.nbytes for shard in self.shards for tensor in shard)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        index_path = self.directory / SAFETENSORS_INDEX
        index_path.write_text(json.dumps(index, indent=2) + "\n")
        return [self.directory / name for name in self.shard_names] + [index_path]

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._partial_path(self._current_shard).unlink(missing_ok=True)
