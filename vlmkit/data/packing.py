"""Sequence packing of collated training batches (``run.packing``): several conversations per row.

A right-padded batch of B conversations is repacked into R <= B rows of at most ``max_length`` tokens (as few
rows as first-fit decreasing by length needs, filled evenly). In a row, each conversation keeps its own position
ids (0, 1, ...) and its visual tokens; the packed batch has ``position_ids`` and no ``attention_mask``, which is
how transformers describes packed rows: attention is confined to each conversation (a block-causal mask for sdpa /
eager, varlen flash attention; see ``vlmkit.models.llms.packed_rows``). A row's padding tail gets positions 0, 1,
... too, so it is a segment of its own that no conversation attends to.

Labels are unchanged except for each conversation's first token, which becomes -100: unpacked, a causal LM never
predicts a row's first token, and packed it would otherwise be predicted from the previous conversation. So a
packed batch holds the same supervised tokens as the unpacked one, and the token-weighted loss
(``run.loss_normalization``) is unchanged. Per-sample entries (``pixel_values`` per branch, ``meta``, features,
instruction ids) are reordered to the packed order, so the visual tokens, read row by row, match the videos.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.errors import DataError

# entries the packer rebuilds; every other entry of the batch is per sample and follows the packed order
TOKEN_KEYS = ("input_ids", "attention_mask", "labels")
PER_BRANCH_KEY = "pixel_values"  # a list with one (B, ...) tensor per visual branch


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` in rows whose sums stay within ``capacity``: longest first, each into the first row
    with room (ties keep their order, so the result is deterministic)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
        if row is None:
            rows.append([])
            room.append(capacity)
            row = len(rows) - 1
        rows[row].append(index)
        room[row] -= lengths[index]
    return rows


def balanced_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """As few rows as first-fit decreasing needs, filled as evenly as possible: longest first, each into the
    least-filled row (the batch is padded to its longest row, so even rows waste fewest slots). First-fit
    decreasing's own rows when the even filling would overflow one."""
    rows = first_fit_decreasing(lengths, capacity)
    even: list[list[int]] = [[] for _ in rows]
    load = [0] * len(rows)
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = min(range(len(rows)), key=lambda r: load[r])
        if load[row] + lengths[index] > capacity:
            return rows
        even[row].append(index)
        load[row] += lengths[index]
    return even


def _sample_names(batch: dict, indices: Sequence[int]) -> list[Any]:
    meta = batch.get("meta")
    if isinstance(meta, (list, tuple)) and len(meta) == batch["input_ids"].shape[0]:
        return [(meta[i] or {}).get("id", i) if isinstance(meta[i], dict) else i for i in indices]
    return list(indices)


def _reorder(key: str, value: Any, order: list[int], size: int) -> Any:
    """A per-sample entry in the packed order (one branch tensor after another for ``pixel_values``)."""
    if key == PER_BRANCH_KEY and isinstance(value, (list, tuple)):
        return [_reorder(f"{key}[{b}]", v, order, size) for b, v in enumerate(value)]
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
        return value[torch.as_tensor(order, dtype=torch.long)]
    if isinstance(value, (list, tuple)) and len(value) == size:
        return type(value)(value[i] for i in order)
    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
    raise DataError(f"run.packing: the batch entry '{key}' ({shape}) is not one value per sample (a tensor or list "
                    f"of length {size}), so it cannot follow the packed order; packing accepts batches whose "
                    f"entries besides {list(TOKEN_KEYS)} are per sample")


def pack_batch(batch: Optional[dict], max_length: int, pad_token_id: int) -> Optional[dict]:
    """The right-padded training ``batch`` (input_ids, attention_mask, labels, per-sample entries) as packed rows
    with ``position_ids`` (see the module docstring); None stays None (every sample was skipped)."""
    if batch is None:
        return None
    if not isinstance(batch, dict):
        raise DataError(f"run.packing: the training collater gave a {type(batch).__name__}; packing needs the "
                        f"dict batch of the data contract (input_ids, attention_mask, labels, ...)")
    missing = [k for k in TOKEN_KEYS if not isinstance(batch.get(k), torch.Tensor)]
    if missing:
        raise DataError(f"run.packing: the training batch has no {missing} tensor(s); packing needs the padded "
                        f"input_ids, attention_mask and labels of the data contract")
    if "position_ids" in batch:
        raise DataError("run.packing: the training batch already has position_ids; packing makes its own")
    mask = batch["attention_mask"].bool()
    ids, labels = batch["input_ids"], batch["labels"]
    size = ids.shape[0]
    lengths = [int(n) for n in mask.sum(dim=1)]
    too_long = [i for i, n in enumerate(lengths) if n > max_length]
    if too_long:
        longest = max(lengths)
        raise DataError(f"run.packing.max_length={max_length} is shorter than conversation(s) "
                        f"{_sample_names(batch, too_long)} of up to {longest} tokens (visual tokens included); a "
                        f"conversation is never split across rows: set run.packing.max_length to {longest} or more "
                        f"(the model's max_length bounds every conversation)")
    rows = balanced_rows(lengths, max_length)
    order = [i for row in rows for i in row]
    width = max(sum(lengths[i] for i in row) for row in rows)
    packed_ids = torch.full((len(rows), width), pad_token_id, dtype=ids.dtype)
    packed_labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=labels.dtype)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n, valid = lengths[i], mask[i]
            packed_ids[r, start:start + n] = ids[i][valid]
            packed_labels[r, start:start + n] = labels[i][valid]
            packed_labels[r, start] = IGNORE_INDEX  # never a target unpacked (see the module docstring)
            positions[r, start:start + n] = torch.arange(n)
            start += n
        positions[r, start:] = torch.arange(width - start)  # the padding tail: a segment of its own
    packed = {"input_ids": packed_ids, "labels": packed_labels, "position_ids": positions}
    for key, value in batch.items():
        if key not in TOKEN_KEYS:
            packed[key] = _reorder(key, value, order, size)
    return packed


@dataclass(frozen=True)
class PackedCollate:
    """A dataset's collater followed by ``pack_batch`` (picklable, for DataLoader workers)."""

    collate: Callable[[Sequence[Any]], Optional[dict]]
    max_length: int
    pad_token_id: int

    def __call__(self, samples: Sequence[Any]) -> Optional[dict]:
        return pack_batch(self.collate(samples), self.max_length, self.pad_token_id)
