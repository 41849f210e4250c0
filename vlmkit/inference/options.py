"""Command-line options shared by ``vlmkit infer`` and ``vlmkit chat``: the run, the device, the generation."""
from __future__ import annotations

import argparse
from typing import Any

from vlmkit.dtypes import TORCH_NAMES


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a training run directory, its checkpoints folder or one checkpoint")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: the GPU if there is one)")
    parser.add_argument("--dtype", default=None, choices=list(TORCH_NAMES),
                        help="the evaluator's precision (autocast); default fp32")
    parser.add_argument("--trust-imports", action="store_true",
                        help="import the modules the run's config names (runs their code)")
    parser.add_argument("--allow-changed-weights", action="store_true",
                        help="load even if weight files changed since training (as evaluation.allow_changed_weights)")
    add_generation_options(parser)


def add_generation_options(parser: argparse.ArgumentParser, title: str = "generation (default: the evaluator's)"
                           ) -> None:
    gen = parser.add_argument_group(title)
    gen.add_argument("--max-new-tokens", type=int)
    gen.add_argument("--num-beams", type=int)
    gen.add_argument("--do-sample", action="store_true", default=None)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--repetition-penalty", type=float)


def generation_args(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("max_new_tokens", "num_beams", "do_sample", "temperature", "top_p", "repetition_penalty")
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def load_model(args: argparse.Namespace):
    from vlmkit.inference.model import load

    return load(args.run, device=args.device, dtype=args.dtype, trust_imports=args.trust_imports,
                allow_changed_weights=args.allow_changed_weights, **generation_args(args))
