"""`vlmkit estimate CONFIG... [key=value ...] --gpus N --gpu-mem 80`: a table of tokens, parameters and per-GPU
training memory, one row per config, from models built on the meta device (no weights, nothing downloaded)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig

from vlmkit.dtypes import TORCH_NAMES
from vlmkit.errors import ConfigError
from vlmkit.estimate import formulas
from vlmkit.estimate.fsdp_plan import rank_bytes
from vlmkit.estimate.report import Estimate, Settings, estimate, optimizer_states, sharding_of

STRATEGY_DEFAULT = "ddp"  # the trainer's default run.strategy

# checkpoints (hub id or local folder, by last name) whose architecture vlmkit ships as an encoder ``arch`` preset
HUB_ARCHS = {"clip-vit-large-patch14-336": "clip_vit_l14_336", "clip-vit-large-patch14": "clip_vit_l14",
             "clip-vit-base-patch16": "clip_vit_b16"}

PLAN_HEADER = ("config", "params", "trainable", "frozen params", "states, 1 GPU", "weights / GPU", "grads / GPU",
               "optimizer / GPU", "states / GPU", "states x GPUs / 1 GPU")
HEADER = ("config", "visual tokens", "seq len", "params", "trainable", "precision", "strategy x GPUs",
          "micro-batch", "weights", "grads", "optimizer", "activations", "act. ckpt", "total", "total ckpt",
          "fits (no ckpt / ckpt)")


def offline_overrides(cfg: DictConfig) -> list[str]:
    """Build from the shipped configs alone: the transformers config (or ``arch``) a component names instead of
    its hub files, a built-in word tokenizer instead of a hub tokenizer, no weight files."""
    model = cfg.model
    parts = {"model.llm": model.get("llm"), "model.selector": model.get("selector")}
    parts.update({f"model.branches.{i}.encoder": b.get("encoder") for i, b in enumerate(model.get("branches") or [])})
    found = []
    for path, node in parts.items():
        if not isinstance(node, DictConfig):
            continue
        pretrained = node.get("pretrained")
        described = node.get("config") is not None or node.get("arch") is not None or path == "model.selector"
        if pretrained is not None and not described:
            arch = HUB_ARCHS.get(str(pretrained).rstrip("/").rsplit("/", 1)[-1])
            if arch is None:
                raise ConfigError(f"{path}.pretrained", f"{pretrained!r} has no shipped architecture to build it "
                                                        "from offline; set its 'arch' or pass --hub")
            found.append(f"{path}.arch={arch}")
        if pretrained is not None:
            found.append(f"{path}.pretrained=null")
        tokenizer = node.get("tokenizer")
        hub_tokenizer = tokenizer is None and node.get("pretrained") is not None and path == "model.llm"
        if hub_tokenizer or isinstance(tokenizer, str) and not tokenizer.startswith("local:"):
            found.append(f"{path}.tokenizer=local:word")
    if model.get("init_weights"):
        found.append("~model.init_weights")
    return found


def load(path: str, overrides: list[str], hub: bool) -> DictConfig:
    from vlmkit.config import load_config

    cfg = load_config(path, overrides, purpose="train")
    return cfg if hub else load_config(path, [*overrides, *offline_overrides(cfg)], purpose="train")


def _name(spec: Any, default: str) -> str:
    if spec is None:
        return default
    return spec if isinstance(spec, str) else str(spec.get("name", spec.get("type", default)))


def settings_for(cfg: DictConfig, args: argparse.Namespace) -> Settings:
    run = cfg.run
    spec = run.get("strategy")
    strategy = args.strategy or _name(spec, STRATEGY_DEFAULT)
    own = isinstance(spec, DictConfig) and _name(spec, STRATEGY_DEFAULT) == strategy  # config's fsdp options
    sharding = sharding_of(strategy)
    if args.gpus > 1 and strategy == "single":
        raise ConfigError("run.strategy", f"'single' runs one process; with --gpus {args.gpus} use ddp, zero or fsdp")
    return Settings(
        gpus=args.gpus, gpu_mem_gb=args.gpu_mem, micro_batch=args.micro_batch or int(run.get("batch_size", 1)),
        precision=args.precision or str(run.get("precision", "fp32")), strategy=strategy, sharding=sharding,
        optimizer_states=optimizer_states(run.get("optimizer", "adamw")),
        checkpointing=bool(cfg.model.llm.get("gradient_checkpointing", False)
                           or own and "llm_layers" in (spec.get("activation_checkpointing") or ())),
        text_tokens=args.text_tokens, wrap_classes=tuple(spec.get("wrap_classes", ())) if own else (),
        fsdp_param_dtype=spec.get("param_dtype") if own else None,
        fsdp_shard_frozen=bool(spec.get("shard_frozen", True)) if own else True,
        fsdp_offload=spec.get("offload") if own else None)


def meta_model(path: str, args: argparse.Namespace) -> tuple[Any, Settings]:
    """The config's model built on the meta device, and its run settings with the flags over them."""
    import torch

    from vlmkit.assemble import build_model

    cfg = load(path, args.overrides, args.hub)
    settings = settings_for(cfg, args)
    with torch.device("meta"):
        return build_model(cfg), settings


def estimate_config(path: str, args: argparse.Namespace) -> Estimate:
    from vlmkit.estimate.measure import measure

    model, settings = meta_model(path, args)
    return estimate(model, measure(model, args.text_tokens), settings)


def plan_row(path: str, args: argparse.Namespace) -> tuple[str, ...]:
    """FSDP's states per GPU from the sharding plan (fsdp_plan.py) beside those of one unsharded GPU."""
    from vlmkit.estimate.measure import param_bytes

    model, s = meta_model(path, args)
    total, trainable, _ = param_bytes(model)
    whole = rank_bytes(model, 1, s.optimizer_states)
    per_gpu = rank_bytes(model, args.gpus, s.optimizer_states, s.fsdp_shard_frozen)
    figures = (whole.total, per_gpu.weights, per_gpu.gradients, per_gpu.optimizer, per_gpu.total)
    return (path, _count(total), _count(trainable), "sharded" if s.fsdp_shard_frozen else "whole",
            *(_gb(v, 2) for v in figures), f"{per_gpu.total * args.gpus / whole.total:.3f}")


def _gb(value: float, digits: int = 1) -> str:
    return f"{value / formulas.GB:.{digits}f}"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def row(path: str, e: Estimate) -> tuple[str, ...]:
    m, s = e.measured, e.settings
    ckpt_mark = (" (config: ckpt)" if s.checkpointing else "")
    return (path, str(m.visual_tokens), str(m.seq_len), _count(m.total), _count(m.trainable), s.precision,
            f"{s.strategy} x {s.gpus}", str(s.micro_batch), _gb(e.states.weights + e.fsdp_gather),
            _gb(e.states.gradients), _gb(e.states.optimizer), _gb(e.activations), _gb(e.activations_ckpt),
            _gb(e.total), _gb(e.total_ckpt), f"{e.fits(False)} / {e.fits(True)}{ckpt_mark}")


def table(rows: Sequence[tuple[str, ...]], header: Sequence[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit estimate", description=__doc__)
    parser.add_argument("configs", nargs="+", metavar="CONFIG",
                        help="train configs (key=value overrides apply to each)")
    parser.add_argument("--gpus", type=int, default=1, help="world size (default 1)")
    parser.add_argument("--gpu-mem", type=float, default=80.0, help="memory of one GPU in GB (1e9 bytes; default 80)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="samples per GPU per step (default run.batch_size)")
    parser.add_argument("--precision", choices=list(TORCH_NAMES), default=None, help="default run.precision")
    parser.add_argument("--strategy", default=None, help="single, ddp, zero or fsdp (default run.strategy)")
    parser.add_argument("--text-tokens", type=int, default=512,
                        help="text tokens per sample besides the visual ones (capped by model.max_length; default 512)")
    parser.add_argument("--fsdp-plan", action="store_true",
                        help="print FSDP's weights, gradients and optimizer state per GPU from its sharding plan "
                             "(frozen parameters sharded unless the config's run.strategy.shard_frozen is false)")
    parser.add_argument("--hub", action="store_true",
                        help="read the LLM's config and tokenizer from their hub ids instead of the shipped config")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    args.overrides = [c for c in args.configs if "=" in c or c.startswith("~")]
    args.configs = [c for c in args.configs if c not in args.overrides]
    if not args.configs:
        parser.error("give at least one CONFIG")
    for flag, value in (("--gpus", args.gpus), ("--micro-batch", args.micro_batch or 1),
                        ("--text-tokens", args.text_tokens + 1)):
        if value < 1:
            parser.error(f"{flag} must be >= 1")
    if args.gpu_mem <= 0:
        parser.error("--gpu-mem must be > 0")
    if args.fsdp_plan:
        print(table([plan_row(path, args) for path in args.configs], PLAN_HEADER))
        print(f"\nFSDP (fully_shard) over {args.gpus} GPUs, GB = 1e9 bytes; each rank holds ceil(rows / {args.gpus}) "
              f"rows of every sharded parameter (docs/training.md, 'FSDP for large recipes').")
        return 0
    rows = [row(path, estimate_config(path, args)) for path in args.configs]
    print(table(rows))
    print(f"\nEstimates, not measurements (docs/estimate.md): GB = 1e9 bytes per GPU; {args.text_tokens} text tokens "
          f"per sample; 'yes' leaves 10 % of {args.gpu_mem:g} GB free, 'tight' fits without that headroom.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
