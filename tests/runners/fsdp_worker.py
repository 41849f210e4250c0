"""Entry point of the two-process FSDP option tests (and DDP with checkpointed layers) (spawned by test_fsdp_options.py): tiny PLLaVA (frozen CLIP
tower and LLaMA base, LoRA and projector trained) for 3 steps per FSDP setting, logging what each save gathers,
the dtype gradients are reduce-scattered in and what the model holds whenever it moves to the device."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from tests.runners.varying_answers import VaryingAnswers, build_tiny_pllava

FSDP_RUNS = {
    "fsdp": {"name": "fsdp"},
    "fsdp_units_ckpt": {"name": "fsdp", "wrap_classes": ["LlamaDecoderLayer", "CLIPEncoderLayer"],
                        "activation_checkpointing": ["llm_layers", "vision_blocks"]},
    "fsdp_offload": {"name": "fsdp", "offload": "cpu", "wrap_classes": ["LlamaDecoderLayer"]},
    "fsdp_frozen_whole": {"name": "fsdp", "shard_frozen": False, "wrap_classes": ["LlamaDecoderLayer"]},
    "fsdp_bf16": {"name": "fsdp", "param_dtype": "bf16"},
    "fsdp_bf16_reduce_fp32": {"name": "fsdp", "param_dtype": "bf16", "reduce_dtype": "fp32"},
    "ddp_ckpt": {"name": "ddp", "activation_checkpointing": ["llm_layers", "vision_blocks"]},  # not only FSDP
}
RESUMED = {"name": "fsdp", "wrap_classes": ["LlamaDecoderLayer"], "activation_checkpointing": ["llm_layers"],
           "offload": "cpu", "param_dtype": "bf16", "reduce_dtype": "fp32"}


class GatheredElements(TorchDispatchMode):
    """Counts the elements every all-gather op returns (functional collectives, as DTensor uses, and c10d's)."""

    def __init__(self):
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if "gather" in func.__name__ and "wait" not in func.__name__:
            tensors = out if isinstance(out, (list, tuple)) else [out]
            self.elements += sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))
        return out


def _log_gathers(strategy, log: list) -> None:
    original = strategy.trainable_state

    def trainable_state(model):
        with GatheredElements() as mode:
            state = original(model)
        log.append(mode.elements)
        return state

    strategy.trainable_state = trainable_state


def _log_reduce_dtypes(log: set):
    original = dist.reduce_scatter_single

    def reduce_scatter_single(*args, **kwargs):
        log.add(str(kwargs.get("input", args[1] if len(args) > 1 else None).dtype))
        return original(*args, **kwargs)

    dist.reduce_scatter_single = reduce_scatter_single
    return original


def sharding(model: torch.nn.Module) -> dict:
    """How many frozen parameters are sharded (DTensors), and whether FSDP keeps its shards on the CPU."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    groups = [m._get_fsdp_state()._fsdp_param_group for m in model.modules() if isinstance(m, FSDPModule)]
    # DDP (no groups): nothing sharded, nothing offloaded
    return {"frozen_sharded": sum(isinstance(p, DTensor) for p in model.parameters() if not p.requires_grad),
            "offloaded": sorted({p.offload_to_cpu for g in groups if g is not None for p in g.fsdp_params})}


def local_numel(model: torch.nn.Module) -> int:
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())


@contextlib.contextmanager
def model_moves(model: torch.nn.Module, log: list):
    """Logs [device, parameter elements this rank holds] whenever ``model`` itself is moved to a device
    (Module.to with a device, Module.to_empty); moves to the meta device hold no data and are left out."""
    originals = {"to": torch.nn.Module.to, "to_empty": torch.nn.Module.to_empty}

    def logged(method):
        def move(self, *args, **kwargs):
            device = (kwargs["device"] if method == "to_empty" else torch._C._nn._parse_to(*args, **kwargs)[0])
            if self is model and device is not None and torch.device(device).type != "meta":
                log.append([str(device), local_numel(model)])
            return originals[method](self, *args, **kwargs)
        return move

    for method in originals:
        setattr(torch.nn.Module, method, logged(method))
    try:
        yield
    finally:
        for method, original in originals.items():
            setattr(torch.nn.Module, method, original)


def train(out: Path, name: str, strategy: dict, **run) -> None:
    from vlmkit.registry import RUNNERS

    model = build_tiny_pllava(out)
    counts = {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "frozen": sum(p.numel() for p in model.parameters() if not p.requires_grad)}
    cfg = {"name": "trainer", "strategy": strategy, "batch_size": 2, "max_steps": 3, "shuffle": False,
           "loggers": ["jsonl"], "log_every": 1, "optimizer": {"name": "adamw", "weight_decay": 0.0},
           "scheduler": {"name": "constant", "init_lr": 1e-2}, **run}
    moves: list = []
    with model_moves(model, moves):
        runner = RUNNERS.build(cfg, model=model, datasets={"train": VaryingAnswers(model)},
                               output_dir=str(out / name))
    gathers, reduce_dtypes = [], set()
    _log_gathers(runner.strategy, gathers)
    original = _log_reduce_dtypes(reduce_dtypes)
    try:
        summary = runner.train()
    finally:
        dist.reduce_scatter_single = original
    weights = runner.strategy.trainable_state(runner.model)
    wrappers = sorted({type(m).__name__ for m in runner.model.modules() if "CheckpointWrapper" in type(m).__name__})
    if runner.env.is_main:
        torch.save({"weights": weights, "losses": summary["losses"]}, out / f"{name}.pt")
        (out / f"{name}.json").write_text(json.dumps({**counts, "moves": moves, "gathered": gathers, "wrappers": wrappers,
                                                      "reduce_dtypes": sorted(reduce_dtypes),
                                                      **sharding(runner.model)}))


def main(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from vlmkit.runners import distributed

    try:
        for name, strategy in FSDP_RUNS.items():
            train(Path(out), name, strategy)
        # resume the options together (checkpoint wrappers in the names, shards on the CPU) from step 2 of 3
        train(Path(out), "resume_straight", RESUMED, save_every=1)
        step_2 = Path(out) / "resume_straight" / "checkpoints" / "step_00000002"
        train(Path(out), "resumed", RESUMED, resume_from=str(step_2))
    finally:
        distributed.shutdown()
