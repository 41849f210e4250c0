"""``vlmkit export RUN --out DIR [--format vlmkit|hf-llm|hf-llava] [--dtype D] [--overwrite]``.

The run's model is built as ``evaluate.py`` builds it (``build_trained_model``: weight files checked, trainable
tensors loaded strictly), its LoRA merged at the evaluator's alpha (``lora_merge``), then written in one format:

- ``vlmkit``: a self-contained folder that ``vlmkit.load`` and the commands built on it (infer, chat, webchat,
  api) read without the run or any weight file it was built from (``self_contained``);
- ``hf-llm``: the LLM alone as a transformers model folder (``hf_llm``);
- ``hf-llava``: a transformers LLaVA-family folder with processor and chat template, for recipes a transformers
  class computes exactly; others are refused with the reason (``hf_llava``).

DIR is written atomically (``staging``); a non-empty DIR is refused without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from vlmkit import dtypes
from vlmkit.errors import ConfigError

FORMATS = ("vlmkit", "hf-llm", "hf-llava")


def torch_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    if name is None:
        return None
    try:
        return dtypes.torch_dtype(name)  # either spelling: bf16 or bfloat16
    except ValueError as err:
        raise ConfigError("--dtype", str(err)) from err


def export_trained(trained: Any, out: Path, *, fmt: str = "vlmkit", dtype: Optional[str] = None,
                   overwrite: bool = False, generation: Optional[dict] = None) -> dict:
    """Write ``trained`` (a ``TrainedModel``) to ``out`` in ``fmt``; returns what was written. The model's LoRA is
    merged in place."""
    from vlmkit.export.lora_merge import merge_lora
    from vlmkit.export.staging import check_target, staged_folder

    if fmt not in FORMATS:
        raise ConfigError("--format", f"unknown format {fmt!r}; accepted: {', '.join(FORMATS)}")
    out, cast = Path(out), torch_dtype(dtype)
    check_target(out, overwrite)
    if fmt == "hf-llava":  # refuse a recipe transformers cannot compute before anything is merged or written
        from vlmkit.export.hf_llava import llava_plan

        llava_plan(trained.model)
    merged = merge_lora(trained.model)
    with staged_folder(out, overwrite) as stage:
        if fmt == "vlmkit":
            from vlmkit.export.self_contained import write_self_contained

            info = write_self_contained(trained, stage, dtype=cast, generation=generation, merged=merged)
        elif fmt == "hf-llm":
            from vlmkit.export.hf_llm import write_hf_llm

            info = write_hf_llm(trained, stage, dtype=cast)
        else:
            from vlmkit.export.hf_llava import write_hf_llava

            info = write_hf_llava(trained, stage, dtype=cast)
    return {"format": fmt, "out": str(out), "lora_merged": merged, **({"written": info} if fmt != "vlmkit" else {})}


def export_run(run: str, out: Path, *, trust_imports: bool = False, allow_changed_weights: bool = False,
               **options: Any) -> dict:
    """Build the run's model as evaluation does and export it (``export_trained``)."""
    from vlmkit.assemble import build_trained_model
    from vlmkit.export.staging import check_target

    if not Path(run).exists():  # before check_target, which may refuse the output folder first
        raise ConfigError("run", f"{run} does not exist; give a training run directory, its checkpoints folder or "
                                 f"one checkpoint")
    check_target(Path(out), options.get("overwrite", False))  # before the model is built
    trained = build_trained_model(run, trust_imports=trust_imports, allow_changed_weights=allow_changed_weights)
    return export_trained(trained, Path(out), **options)


def build_parser() -> argparse.ArgumentParser:
    from vlmkit.inference.options import add_generation_options

    parser = argparse.ArgumentParser(prog="vlmkit export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run directory, its checkpoints folder or one checkpoint")
    parser.add_argument("--out", required=True, help="the folder to write (new or empty, or with --overwrite)")
    parser.add_argument("--format", default="vlmkit", choices=FORMATS, dest="fmt")
    parser.add_argument("--dtype", choices=list(dtypes.TORCH_NAMES),
                        help="store floating-point weights in this dtype (default: as trained)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--trust-imports", action="store_true",
                        help="import the modules the run's config names (runs their code)")
    parser.add_argument("--allow-changed-weights", action="store_true",
                        help="export even if weight files changed since training (as evaluation.allow_changed_weights)")
    add_generation_options(parser, "generation recorded in a --format vlmkit export (default: the evaluator's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from vlmkit.inference.options import generation_args
    from vlmkit.runners.checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        result = export_run(args.run, Path(args.out), fmt=args.fmt, dtype=args.dtype, overwrite=args.overwrite,
                            trust_imports=args.trust_imports, allow_changed_weights=args.allow_changed_weights,
                            generation=generation_args(args))
    except CheckpointError as err:  # a run folder without an intact checkpoint
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, default=str), file=sys.stdout)
    return 0
