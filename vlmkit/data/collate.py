"""Batches from samples: padded token ids, attention masks, -100 labels on padding, stacked frames per branch.

Training batches are right-padded, generation batches left-padded (the model continues each row from its
last real token).  Samples a dataset skipped (None) are dropped; a batch with no sample left is None, which
the loop must skip, so an empty tensor is never handed to the model.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Optional

import torch

from vlmkit.contracts import IGNORE_INDEX, INSTRUCTION_IDS, INSTRUCTION_MASK
from vlmkit.errors import DataError



def pad_1d(rows: Sequence[torch.Tensor], value: int, side: Literal["right", "left"]) -> torch.Tensor:
    width = max(int(r.shape[0]) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if side == "right":
            out[i, :row.shape[0]] = row
        else:
            out[i, width - row.shape[0]:] = row
    return out


def collate_samples(samples: Sequence[Optional[dict]], pad_token_id: int,
                    side: Literal["right", "left"] = "right", instruction_pad_id: int = 0) -> Optional[dict]:
    """The batch of the data contract: input_ids, attention_mask, labels, pixel_values (list), meta, and the
    instruction ids and mask of text-reading stages (right-padded) when the samples carry them."""
    if side not in ("right", "left"):
        raise ValueError(f"padding side must be 'right' or 'left', got {side!r}")
    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    ids = [torch.as_tensor(s["input_ids"], dtype=torch.long) for s in kept]
    labels = [torch.as_tensor(s["labels"], dtype=torch.long) for s in kept]
    for s, row, lab in zip(kept, ids, labels):
        if row.ndim != 1 or row.numel() == 0 or lab.shape != row.shape:
            raise DataError(f"sample {s.get('id')!r}: input_ids and labels must be equal-length non-empty 1-D "
                            f"sequences, got {tuple(row.shape)} and {tuple(lab.shape)}")
    branches = {len(s["pixel_values"]) for s in kept}
    if len(branches) != 1:
        raise DataError(f"samples carry different numbers of visual branches {sorted(branches)}; one dataset "
                        f"contract per batch")
    pixel_values = []
    for b in range(branches.pop()):
        frames = [s["pixel_values"][b] for s in kept]
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) != 1:
            raise DataError(f"branch {b}: frame tensors differ in shape {sorted(shapes)} (ids "
                            f"{[s.get('id') for s in kept]}); every sample needs the contract's frame count and size")
        if any(f.numel() == 0 for f in frames):
            raise DataError(f"branch {b}: an empty frame tensor reached the collater")
        pixel_values.append(torch.stack(frames))
    batch = {"input_ids": pad_1d(ids, pad_token_id, side),
             "attention_mask": pad_1d([torch.ones_like(r) for r in ids], 0, side),
             "labels": pad_1d(labels, IGNORE_INDEX, side),
             "pixel_values": pixel_values,
             "meta": [s.get("meta", {"id": s.get("id")}) for s in kept]}
    if any(INSTRUCTION_IDS in s for s in kept):
        missing = [s.get("id") for s in kept if INSTRUCTION_IDS not in s]
        if missing:
            raise DataError(f"samples {missing} carry no {INSTRUCTION_IDS} while others do; one contract per batch")
        rows = [torch.as_tensor(s[INSTRUCTION_IDS], dtype=torch.long) for s in kept]
        batch[INSTRUCTION_IDS] = pad_1d(rows, instruction_pad_id, "right")
        batch[INSTRUCTION_MASK] = pad_1d([torch.ones_like(r) for r in rows], 0, "right")
    return batch
