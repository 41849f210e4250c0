"""Batches a dataset skipped (its collater returned None) without breaking collectives.

Under DDP / FSDP every forward and backward of a step may be a collective, so a rank must not simply leave
out a micro-batch the others have.  Before computing a step, the ranks share which micro-batch positions
they hold (one small all-reduce).  A position no rank holds is left out everywhere; a rank missing a
position others hold runs a *stand-in* (another batch of its own, or one lent by the lowest rank that has
one) whose loss is multiplied by zero: it joins the collectives and contributes no gradient.  The same
all-reduce sums the step's supervised tokens over every real micro-batch of every rank, which the runner
needs before the first backward to weight each micro-batch's loss (see ``Trainer._loss_weight``); a skipped
micro-batch simply has no tokens.  With one process no collective runs and missing positions are just dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from vlmkit.runners import distributed


@dataclass
class StepPlan:
    """What every rank agreed on for one optimizer step."""

    positions: list[int]             # micro-batch positions some rank holds, in order: run these
    total_real: int                  # real micro-batches over all ranks
    world_size: int
    exhausted: bool                  # some rank's data ran out: the epoch (pass) ends for everyone
    stand_in: Optional[Any] = None   # this rank's batch for positions it lacks (None when it lacks none)
    total_tokens: float = 0.0        # supervised tokens over every real micro-batch of every rank
    tokens: Optional[list[int]] = None  # this rank's supervised tokens per micro-batch position (when counted)

    @property
    def loss_divisor(self) -> float:
        """Divides each real loss for a per-sample mean; equals the micro-batch count when nothing was skipped."""
        return self.total_real / self.world_size


def plan_step(micro: list[Optional[Any]], exhausted: bool, device: torch.device,
              tokens: Optional[list[int]] = None) -> StepPlan:
    """Agree on the step's micro-batches (collective when a process group exists; call it on every rank).
    ``tokens``: this rank's supervised tokens per micro-batch (0 for a skipped one), summed over ranks."""
    held = [batch is not None for batch in micro]
    local_tokens = float(sum(tokens)) if tokens is not None else 0.0
    if not distributed.active():
        positions = [i for i, h in enumerate(held) if h]
        return StepPlan(positions, len(positions), 1, exhausted, total_tokens=local_tokens, tokens=tokens)
    import torch.distributed as dist

    world, rank, k = dist.get_world_size(), dist.get_rank(), len(micro)
    # float64: token counts stay exact far beyond float32's 2**24
    table = torch.zeros(world, k + 2, device=device, dtype=torch.float64)
    table[rank, :k] = torch.tensor(held, dtype=table.dtype)
    table[rank, k] = float(exhausted)
    table[rank, k + 1] = local_tokens
    distributed.all_reduce_tensor(table, "sum")
    table = table.cpu()
    if bool(table[:, k].any()):
        return StepPlan([], 0, world, True)
    total_tokens = float(table[:, k + 1].sum())
    presence = table[:, :k] > 0
    positions = [i for i in range(k) if bool(presence[:, i].any())]
    lacking = [r for r in range(world) if any(not bool(presence[r, i]) for i in positions)]
    own = next((b for b in micro if b is not None), None)
    needy = [r for r in lacking if not bool(presence[r].any())]
    if needy:  # a rank with no batch at all this step borrows one from the lowest rank that has one
        donor = next(r for r in range(world) if bool(presence[r].any()))
        lent = distributed.broadcast_object(own if rank == donor else None, src=donor)
        if own is None:
            own = lent
    return StepPlan(positions, int(presence.sum()), world, False, own if rank in lacking else None,
                    total_tokens=total_tokens, tokens=tokens)


def stand_in_forward(plan: StepPlan, batch: Optional[Any]) -> tuple[Any, bool]:
    """(batch to run, whether it is real) for one planned position."""
    if batch is not None:
        return batch, True
    if plan.stand_in is None:
        raise RuntimeError("a planned micro-batch position has neither a batch nor a stand-in on this rank")
    return plan.stand_in, False
