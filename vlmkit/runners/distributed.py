"""The torchrun environment and the few collectives the runner needs.

Every helper works without a process group (plain ``python train.py``): barriers and broadcasts become
no-ops, gathers return the local value.  Collectives run with finite timeouts so a lost rank fails the run
instead of hanging it.
"""
from __future__ import annotations

import atexit
import ctypes
import datetime
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from vlmkit.errors import ConfigError

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)
LAUNCHER_GONE_EXIT = 75  # the exit status of a worker whose torchrun launcher died
_PR_SET_PDEATHSIG = 1
_launcher_pid: int | None = None


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"${name}", f"expected an integer (set by torchrun), got {value!r}") from None


def read_env() -> DistEnv:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (a single process when they are absent)."""
    env = DistEnv(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    if not 0 <= env.rank < env.world_size:
        raise ConfigError("$RANK", f"RANK={env.rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={env.world_size})")
    return env


def pick_device(env: DistEnv, device: str | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def init_distributed(device: torch.device, timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> DistEnv:
    """Join the process group torchrun describes (idempotent); nccl on GPU, gloo on CPU."""
    env = read_env()
    if env.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size, timeout=timeout,
                                store=_attempt_store(env, timeout))
        # A gloo group left alive into interpreter teardown can abort the process (SIGABRT, "terminate called
        # without an active exception") after the work is done; tear it down while Python is still whole.
        atexit.register(shutdown)
    watch_launcher()
    return env


# ---------------------------------------------------------------- launcher death
def watch_launcher(poll_s: float = 0.5) -> None:
    """Under torchrun, end this worker promptly when its launcher dies (idempotent).

    torchrun starts each worker in a new session, so killing the launcher alone would leave the workers training
    and writing checkpoints. On Linux the kernel sends SIGTERM when the parent dies (PR_SET_PDEATHSIG); a daemon
    thread that notices the worker was reparented covers other platforms and a main thread stuck in C code.
    Either way the worker exits without writing anything more: the launcher cannot restart the group, and the
    checkpoints already written are complete (saves are atomic).
    """
    global _launcher_pid
    if _launcher_pid is not None or "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    _launcher_pid = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog thread below still works
    threading.Thread(target=_watch, args=(poll_s,), name="vlmkit-launcher-watch", daemon=True).start()
    if launcher_gone():  # it died before the death signal was armed
        exit_orphaned()


def launcher_gone() -> bool:
    """True once this worker's torchrun launcher has died (the worker was reparented)."""
    return _launcher_pid is not None and os.getppid() != _launcher_pid


def exit_orphaned() -> None:
    """End the process at once, writing nothing more: no checkpoint, no process-group teardown (its peers and
    store are going away too, so a collective could only hang)."""
    try:
        sys.stderr.write(f"vlmkit: the torchrun launcher (pid {_launcher_pid}) died; worker rank "
                         f"{os.environ.get('RANK', '?')} stops without saving\n")
        sys.stderr.flush()
    finally:
        os._exit(LAUNCHER_GONE_EXIT)


def _watch(poll_s: float) -> None:
    while not launcher_gone():
        time.sleep(poll_s)
    exit_orphaned()


def _attempt_store(env: DistEnv, timeout: datetime.timedelta) -> dist.Store | None:
    """Under torchrun, the env:// store with keys of their own for each restart (``--max-restarts``): the group
    torchrun starts again after a worker died shares the launcher's store with the group before it, and gloo
    would otherwise read the dead workers' addresses ('Gloo connectFullMesh failed ... Connection refused').
    None (torch's default env:// store) elsewhere."""
    if "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return None
    store, _, _ = next(dist.rendezvous("env://", env.rank, env.world_size, timeout=timeout))
    return dist.PrefixStore(f"vlmkit/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}", store)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier(timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> None:
    """Wait for every rank; a no-op without a process group. Gloo's monitored barrier names a missing rank."""
    if not active():
        return
    if dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=timeout)
    else:
        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s value on every rank (an output directory, a run id, metrics)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(values: list) -> list:
    """Every rank's list, concatenated in rank order, on every rank."""
    if not active():
        return list(values)
    boxes: list = [None] * dist.get_world_size()
    dist.all_gather_object(boxes, values)
    return [v for box in boxes for v in box]


def all_reduce_tensor(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce ('sum', 'max', 'mean'); returns the tensor."""
    if not active():
        return tensor
    if op == "mean":
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    else:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def shutdown() -> None:
    """Destroy the process group (idempotent); train.py and evaluate.py call it on the way out."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
