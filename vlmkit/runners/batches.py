"""Batches on their way to the model: the one place a (nested) batch moves to a device, and the feed that copies
the next batch to a GPU while the current one computes.

On CUDA, DataLoaders pin their batches (page-locked host memory) and copies are non-blocking, so the host goes on
queueing kernels while a copy runs.  When DataLoader workers load the data, a ``DeviceFeed`` also draws one batch
ahead and copies it on a side CUDA stream, overlapping the copy with the current step's compute; the compute stream
waits for that copy (a CUDA event) only when it takes the batch.  Without workers the feed does not draw ahead:
loading in the main process may draw from the global RNG (augmentations) or move a stream's own position, which a
checkpoint taken between the two would record one batch early (exact resume).  On the CPU the feed is a no-op.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Optional

import torch


def move_to(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (in mappings, lists and tuples, at any depth) on ``device``; other values
    (ids, 'meta' records) as they are.  Copies to a CUDA device are non-blocking (asynchronous from pinned memory);
    to the host they are not (the host would read the tensor before the copy ended)."""
    return _move(batch, device, device.type == "cuda")


def _move(batch: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: _move(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_move(v, device, non_blocking) for v in batch)
    return batch


def tensors_in(batch: Any) -> Iterator[torch.Tensor]:
    """Every tensor of a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from tensors_in(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from tensors_in(value)


def feed_settings(device: torch.device, num_workers: int) -> dict[str, bool]:
    """How batches reach ``device``: ``pin_memory`` (the DataLoader's setting) on CUDA, and ``prefetch`` (draw one
    batch ahead and copy it on a side stream) on CUDA when DataLoader workers load the data (module docstring)."""
    cuda = device.type == "cuda"
    return {"pin_memory": cuda, "prefetch": cuda and num_workers > 0}


class SideStreamCopier:
    """Copies batches to a CUDA device on a side stream; ``ready`` makes the current stream wait for one copy."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def copy(self, batch: Any) -> tuple[Any, Any]:
        """(the batch on the device, the event its copy ends with), queued on the side stream."""
        with torch.cuda.stream(self.stream):
            moved = move_to(batch, self.device)
            done = torch.cuda.Event()
            done.record(self.stream)
        return moved, done

    def ready(self, moved: Any, done: Any) -> Any:
        """``moved``, safe to use on the current stream."""
        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        for tensor in tensors_in(moved):
            # allocated on the side stream: the allocator must not reuse it while the compute stream reads it
            tensor.record_stream(current)
        return moved


_END = object()


class DeviceFeed:
    """An iterator of host batches (``next()``), with ``take()`` giving the device copy of the oldest batch handed
    out and not yet taken.  With ``prefetch``, ``fetch_ahead()`` draws the next batch and starts its copy
    (``copier``: a ``SideStreamCopier`` by default); a batch not fetched ahead is drawn by ``next()``.  Without
    ``prefetch``, ``take()`` moves the batch then (``move_to``) and ``fetch_ahead()`` does nothing."""

    def __init__(self, batches: Iterator, device: torch.device, prefetch: bool, copier: Optional[Any] = None):
        self.batches, self.device, self.prefetch = batches, device, prefetch
        self.copier = (copier or SideStreamCopier(device)) if prefetch else None
        self.ahead: Any = None            # (host batch, (device copy, event)) drawn ahead, _END, or None
        self.handed_out: deque = deque()  # what take() gives, oldest first

    def __iter__(self) -> DeviceFeed:
        return self

    def fetch_ahead(self) -> None:
        if not self.prefetch or self.ahead is not None:
            return
        try:
            host = next(self.batches)
        except StopIteration:
            self.ahead = _END
            return
        except Exception as error:  # raised by next(), where the loop expects the data's errors
            self.ahead = error
            return
        self.ahead = (host, None if host is None else self.copier.copy(host))

    def __next__(self) -> Any:
        if not self.prefetch:
            host = next(self.batches)
            self.handed_out.append(host)
            return host
        self.fetch_ahead()
        if self.ahead is _END:
            raise StopIteration
        if isinstance(self.ahead, Exception):
            error, self.ahead = self.ahead, None
            raise error
        host, copied = self.ahead
        self.ahead = None
        self.handed_out.append(copied)
        return host

    def take(self) -> Any:
        """The device copy of the oldest batch ``next()`` gave and ``take()`` did not (None for a None batch)."""
        item = self.handed_out.popleft()
        if not self.prefetch:  # a DataLoader's batches are on the host already: nothing to do for the CPU
            return item if self.device.type == "cpu" else move_to(item, self.device)
        return None if item is None else self.copier.ready(*item)
