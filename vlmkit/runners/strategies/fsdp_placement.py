"""FSDP's shards reach the device without the whole model ever being there.

The model is built whole in host memory (from its checkpoint files). ``shard_then_place`` keeps a reference to
each host tensor, turns the model into a meta-device skeleton, lets FSDP shard the skeleton (no data moves),
allocates only this rank's shards on the device (``to_empty``) and copies each shard's slice of the host tensor
into them. Had the model been moved first, ``fully_shard`` would move every unit's full parameters to the device
before splitting them. Buffers and the parameters FSDP leaves whole (``shard_frozen: false``) are copied to the
device whole, as before. With CPU offload the shards are allocated in (pinned) host memory instead.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def shard_slice(full: torch.Tensor, sharded: torch.Tensor) -> torch.Tensor:
    """This rank's part of ``full`` for the DTensor ``sharded`` (a view, no copy)."""
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(full.shape, sharded.device_mesh, sharded.placements)
    part = full
    for dim, (length, start) in enumerate(zip(shape, offset)):
        part = part.narrow(dim, start, length)
    return part


def shard_then_place(model: nn.Module, device: torch.device, shard: Callable[[nn.Module], None],
                     shards_on: torch.device) -> nn.Module:
    """Shard ``model`` (host-resident) with ``shard`` and give it real storage: shards on ``shards_on`` (the device,
    or the CPU when FSDP offloads), buffers and unsharded parameters on ``device``."""
    from torch.distributed.tensor import DTensor

    host_params = {name: p.detach() for name, p in model.named_parameters()}
    host_buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    count = len(host_params)
    model.to("meta")  # the host tensors live on in host_params / host_buffers
    shard(model)
    model.to_empty(device=shards_on)
    placed = dict(model.named_parameters())
    if len(placed) != count or placed.keys() != host_params.keys():
        raise RuntimeError(f"FSDP placement changed the parameters: {sorted(placed.keys() ^ host_params.keys())[:8]}")
    moved: dict[int, torch.Tensor] = {}  # a buffer shared by several modules stays shared
    with torch.no_grad():
        for name, param in placed.items():
            host = host_params[name]
            if isinstance(param, DTensor):
                param.to_local().copy_(shard_slice(host, param))
            else:  # left whole by FSDP (ignored_params): whole on the device
                param.data = host.to(device)
        for module, name, host in host_buffers:
            module._buffers[name] = moved.setdefault(id(host), host.to(device))
    return model
