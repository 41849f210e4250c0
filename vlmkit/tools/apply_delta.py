"""Rebuild fine-tuned weights from a base model plus a delta (Vicuna style), and make such deltas.

apply:  target = base + delta        make:  delta = target - base

Tensors are streamed one at a time between lazily read input shards and a streaming safetensors writer, so peak
memory stays near a fraction of the largest shard instead of the whole model. Rows that exist only in the delta
(tokens added to the vocabulary) are taken from it whole. The tokenizer, config.json and any other non-weight files
are copied from the delta (apply) or the target (make).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from vlmkit.dtypes import TORCH_NAMES, torch_dtype
from vlmkit.errors import DataError
from vlmkit.tools.checkpoint_files import SAFETENSORS_INDEX, WEIGHT_SUFFIXES, Checkpoint
from vlmkit.tools.checksums import CHECKSUM_FILE, verify_checksums, write_checksums
from vlmkit.tools.memory import release_freed_memory
from vlmkit.tools.delta_plan import TensorPair, VocabGrowth, pair_tensors
from vlmkit.tools.safetensors_writer import PlannedTensor, ShardedSafetensorsWriter

# float64 is there for deltas only: a float64 delta of a float32 model round-trips exactly.
DTYPES = {**{name: torch_dtype(name) for name in TORCH_NAMES.values()}, "float64": torch.float64}
# The delta dtype that makes `base + delta` give back each target dtype exactly (suggested by the report).
LOSSLESS_DELTA_DTYPE = {torch.float16: "float32", torch.bfloat16: "float32", torch.float32: "float64"}
# Memory bounds, relative to the largest input shard: a mapping may stay open until 1/32 of it has been read through
# it (see Checkpoint), and tensors are combined in row ranges of 1/32 of it (about five such ranges are alive at once,
# counting the float32 work copy), within fixed limits so huge shards do not mean huge ranges.
KEEP_OPEN_FRACTION = 32
CHUNK_FRACTION = 32
MIN_CHUNK_BYTES, MAX_CHUNK_BYTES = 1 << 20, 64 << 20


@dataclass
class RoundTrip:
    """How exactly `base + delta` gives back the target, measured while making the delta."""
    elements: int = 0
    inexact_elements: int = 0
    worst_error: float = 0.0
    inexact_tensors: list[str] = field(default_factory=list)
    lossless_dtype: str = "float32"


@dataclass
class MergeReport:
    mode: str
    base: str
    other: str
    output: Path
    dtype: str
    growth: VocabGrowth | None
    tensors: int
    bytes_written: int
    weight_files: list[Path]
    copied: list[str]
    checksum_file: Path | None = None
    verified_files: int | None = None
    round_trip: RoundTrip | None = None

    def format(self) -> str:
        role = "delta" if self.mode == "apply" else "target"
        lines = [f"{self.mode}-delta", f"  {'base:':<8}{self.base}", f"  {role + ':':<8}{self.other}",
                 f"  {'dtype:':<8}{self.dtype}"]
        if self.growth is None:
            lines.append("  vocabulary: same size in both, no rows added")
        else:
            g = self.growth
            source = "base + delta" if self.mode == "apply" else "target - base"
            lines.append(f"  vocabulary: grown from {g.base_rows} to {g.new_rows} rows "
                         f"({g.new_rows - g.base_rows} added) in {', '.join(g.tensors)}")
            lines.append(f"    rows 0..{g.base_rows - 1} = {source}; rows {g.base_rows}..{g.new_rows - 1} "
                         f"copied whole from the {role}")
        lines.append(f"  wrote:  {self.tensors} tensors, {self.bytes_written / 2**20:.1f} MiB in "
                     f"{len(self.weight_files) - 1} shard(s) + index to {self.output}")
        lines.append(f"  copied from the {role}: {', '.join(self.copied) or 'nothing'}")
        if "config.json" not in self.copied:
            lines.append(f"  WARNING: the {role} has no config.json, so {self.output} cannot be loaded by transformers "
                         "until one is added")
        if self.round_trip is not None:
            rt = self.round_trip
            if rt.inexact_elements == 0:
                lines.append(f"  round trip: base + delta reproduces the target exactly ({rt.elements} elements)")
            else:
                lines.append(f"  round trip: {rt.inexact_elements} of {rt.elements} elements in "
                             f"{len(rt.inexact_tensors)} tensors will not come back exactly (max abs error "
                             f"{rt.worst_error:.3g}); store the delta with --dtype {rt.lossless_dtype} for an "
                             "exact round trip")
        if self.checksum_file is not None:
            lines.append(f"  checksums: {self.checksum_file}")
        if self.verified_files is not None:
            lines.append(f"  verified: all {self.verified_files} files match the expected checksums")
        return "\n".join(lines)


def apply_delta(base: str | Path, delta: str | Path, target: str | Path, *, dtype: str | None = None,
                max_shard_size: str | int = "5GB", checksum: bool = False,
                expected_checksums: str | Path | None = None, progress: bool = True,
                overwrite: bool = False) -> MergeReport:
    """Write base + delta to `target`. dtype defaults to the delta config's dtype, else each delta tensor's own.
    Existing files in `target` are replaced only with overwrite=True; a failed run leaves `target` untouched."""
    return _merge(base, delta, target, mode="apply", dtype=dtype, max_shard_size=max_shard_size,
                  checksum=checksum, expected_checksums=expected_checksums, progress=progress, overwrite=overwrite)


def make_delta(base: str | Path, target: str | Path, delta: str | Path, *, dtype: str | None = None,
               max_shard_size: str | int = "5GB", checksum: bool = False, progress: bool = True,
               overwrite: bool = False) -> MergeReport:
    """Write target - base to `delta` (added vocabulary rows stored whole). dtype defaults to the target's."""
    return _merge(base, target, delta, mode="make", dtype=dtype, max_shard_size=max_shard_size,
                  checksum=checksum, expected_checksums=None, progress=progress, overwrite=overwrite)


def parse_size(size: str | int) -> int:
    """Bytes from 5GB / 500MB / 10KiB / a plain count."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", size, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"max_shard_size {size!r}: expected a byte count like 5GB, 500MB, 2GiB or 1000000")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** "_KMGT".index(unit.upper() or "_"))


def _resolve_dtype(dtype: str | None, other: Checkpoint, mode: str) -> tuple[torch.dtype | None, str]:
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: expected one of {sorted(DTYPES)}")
        return DTYPES[dtype], dtype
    config = other.config() or {}
    config_dtype = config.get("dtype") or config.get("torch_dtype")
    if mode == "apply" and config_dtype in DTYPES:
        return DTYPES[config_dtype], f"{config_dtype} (from the delta's config.json)"
    return None, "as stored in the " + ("delta" if mode == "apply" else "target") + " (per tensor)"


def _check_output(output: Path, inputs: list[Checkpoint], writes: list[str], overwrite: bool) -> list[Path]:
    """Refuse an output that is an input, or (without overwrite) one holding files this run would replace or
    weights it would leave stale. Returns the stale weight files that overwrite will remove."""
    for checkpoint in inputs:
        if output.resolve() == checkpoint.directory.resolve():
            raise DataError(f"{output}: the output folder must differ from the input {checkpoint.path}")
    if not output.exists():
        return []
    if not output.is_dir():
        raise DataError(f"{output}: exists and is not a folder")
    replaced = sorted(name for name in writes if (output / name).exists())
    stale = sorted(p for p in output.iterdir() if p.name not in writes
                   and p.name.endswith(WEIGHT_SUFFIXES + (".index.json", ".partial")))
    if (replaced or stale) and not overwrite:
        listed = "\n".join(f"  - {name}" for name in replaced + [p.name for p in stale])
        raise DataError(f"{output}: already holds files this run would overwrite or leave stale (it already holds "
                        f"weights):\n{listed}\nchoose an empty or new folder, or pass --overwrite to replace them")
    return stale


def _publish(staging: Path, output: Path, stale: list[Path]) -> None:
    """Move the finished files from the staging folder into `output` (one rename when output is new)."""
    if not output.exists():
        os.replace(staging, output)
        return
    for path in stale:
        path.unlink()
    for path in staging.iterdir():
        if (output / path.name).is_dir():
            shutil.rmtree(output / path.name)
        os.replace(path, output / path.name)
    staging.rmdir()


def _combine(base_t: torch.Tensor | None, other_t: torch.Tensor, subtract: bool,
             out_dtype: torch.dtype) -> torch.Tensor:
    """other + base (apply) or other - base (make) in the widest dtype involved. base_t may cover fewer leading
    rows than other_t, or none (None): rows beyond it are the grown vocabulary and keep other's values."""
    if not other_t.dtype.is_floating_point:
        return other_t  # integer/bool buffers are copied, never added
    work = torch.float32  # at least: half-precision sums are rounded once, at the end
    for dtype in (other_t.dtype, out_dtype) + ((base_t.dtype,) if base_t is not None else ()):
        work = torch.promote_types(work, dtype)
    out = other_t.to(work, copy=True)
    if base_t is not None:
        shared = out[: base_t.shape[0]] if base_t.dim() else out
        if subtract:
            shared -= base_t
        else:
            shared += base_t
    return out.to(out_dtype)


def _record_round_trip(record: RoundTrip, name: str, base_t: torch.Tensor | None, delta_t: torch.Tensor,
                       target_t: torch.Tensor) -> None:
    record.elements += target_t.numel()
    if not target_t.dtype.is_floating_point:
        return
    rebuilt = _combine(base_t, delta_t, subtract=False, out_dtype=target_t.dtype)
    same = (rebuilt == target_t) | (rebuilt.isnan() & target_t.isnan())
    wrong = int((~same).sum())
    if wrong:
        if LOSSLESS_DELTA_DTYPE.get(target_t.dtype, "float64") == "float64":
            record.lossless_dtype = "float64"
        record.inexact_elements += wrong
        if name not in record.inexact_tensors:
            record.inexact_tensors.append(name)
        error = (rebuilt.double() - target_t.double()).abs()[~same].max().item()
        record.worst_error = max(record.worst_error, error)


def _row_ranges(shape: tuple[int, ...], dtype: torch.dtype, chunk_bytes: int) -> list[tuple[int | None, int | None]]:
    """Row ranges of about chunk_bytes each; (None, None) for a scalar, read whole."""
    if not shape:
        return [(None, None)]
    row_bytes = max(1, math.prod(shape[1:]) * dtype.itemsize)
    step = max(1, chunk_bytes // row_bytes)
    return [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def _merge_tensor(pair: TensorPair, base: Checkpoint, other: Checkpoint, writer: ShardedSafetensorsWriter,
                  subtract: bool, chunk_bytes: int, round_trip: RoundTrip | None, bar) -> None:
    """Stream one tensor through in row ranges, so even a huge embedding never sits in memory whole."""
    base_rows = pair.base.shape[0] if pair.base.shape else None
    writer.start_tensor(pair.name, pair.out_dtype)
    for start, stop in _row_ranges(pair.other.shape, max(pair.other.dtype, pair.out_dtype,
                                                          key=lambda d: d.itemsize), chunk_bytes):
        other_t = other.read(pair.name, start, stop)
        if start is None:
            base_t = base.read(pair.name)
        else:
            base_t = base.read(pair.name, start, min(stop, base_rows)) if start < base_rows else None
        out_t = _combine(base_t, other_t, subtract, pair.out_dtype)
        if round_trip is not None:
            _record_round_trip(round_trip, pair.name, base_t, out_t, other_t)
        writer.write_part(out_t)
        bar.update(out_t.numel() * out_t.element_size())
        del base_t, other_t, out_t  # release the mapped pages before the next range
        release_freed_memory()
    writer.end_tensor()


def _merge(base_path, other_path, output_path, *, mode: str, dtype: str | None, max_shard_size,
           checksum: bool, expected_checksums, progress: bool, overwrite: bool) -> MergeReport:
    role = "delta" if mode == "apply" else "target"
    base, other = Checkpoint(base_path), Checkpoint(other_path)
    largest_shard = max(base.largest_shard_bytes, other.largest_shard_bytes)
    base.keep_open_bytes = other.keep_open_bytes = largest_shard // KEEP_OPEN_FRACTION
    chunk_bytes = min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, largest_shard // CHUNK_FRACTION))
    out_dtype, dtype_text = _resolve_dtype(dtype, other, mode)
    pairs, growth = pair_tensors(base, other, role, out_dtype)
    output = Path(output_path)
    planned = [PlannedTensor(pair.name, pair.other.shape, pair.out_dtype) for pair in pairs]
    side_files = other.side_files()
    shard_names = ShardedSafetensorsWriter(output, planned, parse_size(max_shard_size)).shard_names
    writes = shard_names + [SAFETENSORS_INDEX] + [f.name for f in side_files] + [CHECKSUM_FILE] * checksum
    stale = _check_output(output, [base, other], writes, overwrite)

    # Everything is written to a hidden folder next to the output and moved in at the end, so a failure (or ^C)
    # anywhere leaves the output as it was.
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        writer = ShardedSafetensorsWriter(staging, planned, parse_size(max_shard_size))
        round_trip = RoundTrip() if mode == "make" else None
        consumed: set[str] = set()
        total = sum(tensor.nbytes for tensor in planned)
        try:
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"{mode}-delta", disable=not progress) as bar:
                for pair in pairs:
                    _merge_tensor(pair, base, other, writer, mode == "make", chunk_bytes, round_trip, bar)
                    consumed.add(pair.name)
            writer.finish()
        finally:
            base.close()
            other.close()
            writer.abort()
        for checkpoint, label in ((base, "base"), (other, role)):
            unused = sorted(set(checkpoint.tensors) - consumed)
            if unused:
                raise DataError(f"tensors of the {label} were never consumed: {unused[:10]}")
        for side_file in side_files:
            shutil.copy2(side_file, staging / side_file.name)
        written = [staging / name for name in shard_names + [SAFETENSORS_INDEX] + [f.name for f in side_files]]
        checksum_file = write_checksums(staging, written) if checksum else None
        verified = verify_checksums(Path(expected_checksums), staging) if expected_checksums is not None else None
        _publish(staging, output, stale)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, DataError):
            raise DataError(f"{err}\n({output}: nothing written, the partial output was removed)") from err
        raise
    report = MergeReport(
        mode=mode, base=base.describe(), other=other.describe(), output=output, dtype=dtype_text, growth=growth,
        tensors=len(consumed), bytes_written=total, weight_files=[output / name for name in shard_names]
        + [output / SAFETENSORS_INDEX], copied=[f.name for f in side_files],
        checksum_file=output / CHECKSUM_FILE if checksum_file else None, verified_files=verified,
        round_trip=round_trip)
    return report
