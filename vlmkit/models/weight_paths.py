"""Local copies of published weights: where they live and the check that they are there before a build reads them.

Shipped configs name published weights under one root, ``${oc.env:VLMKIT_WEIGHTS,./weights}`` (docs/weights.md
lists the file and folder names each recipe expects). A configured path that is local (absolute, ``./``-relative,
more than ``owner/name`` deep, or a file with a weight-file suffix) and missing is a ConfigError naming the key,
the path and the layout expected there, raised before anything is built.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from vlmkit.errors import ConfigError

WEIGHTS_ENV = "VLMKIT_WEIGHTS"
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")

TRANSFORMERS_FOLDER = "a transformers checkpoint folder (config.json, *.safetensors or pytorch_model*.bin)"
TOKENIZER_FOLDER = "a tokenizer folder (tokenizer_config.json with tokenizer.json or tokenizer.model)"
LAYOUTS = {
    "vlmkit": "a vlmkit run or checkpoint folder (model.safetensors, or a 'latest' pointer)",
    "llava_hf": "a llava-hf LLaVA-NeXT folder (config.json, model*.safetensors with model.safetensors.index.json)",
    "pllava": "PLLaVA's released folder or file (LoRA + multi_modal_projector tensors)",
    "qformer_lavis": "a LAVIS Q-Former state dict (.pth, keys 'bert.*')",
    "blip2_lavis": "a LAVIS BLIP-2 checkpoint (.pth with 'model': Qformer.*, query_tokens, ln_vision.*)",
    "blip2_hf": "a transformers BLIP-2 / InstructBLIP folder (qformer.*, query_tokens, vision_model.*, "
                "language_projection.*)",
    "eva_vit_lavis": "LAVIS's EVA ViT-g file eva_vit_g.pth (cls_token, pos_embed, patch_embed.*, blocks.N.*)",
    "video_llama": "a Video-LLaMA checkpoint (.pth with 'model': video_Qformer.*, video_query_tokens, llama_proj.*)",
    "minigpt4": "a MiniGPT-4 checkpoint (.pth with 'model': llama_proj.*)",
    "gebc": "an LLMVA-GEBC checkpoint (.pth: video_Qformer.*, temporal_pos_trans.*, opt_proj.*)",
    "video_xl": "Video-XL's released transformers folder (LlavaQwenForCausalLM shards)",
}


def looks_local(path: str) -> bool:
    """A filesystem path rather than a hub id ('owner/name')."""
    if path.startswith(("/", "./", "../", "~", "\\")) or os.path.isabs(path) or path.endswith(WEIGHT_SUFFIXES):
        return True
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    return len(parts) > 2 or (len(parts) > 1 and Path(parts[0]).is_dir())


def missing_local(path: Optional[str]) -> bool:
    return isinstance(path, str) and not path.startswith("local:") and looks_local(path) \
        and not Path(path).expanduser().exists()


def missing_message(path: str, expected: str) -> str:
    root = os.environ.get(WEIGHTS_ENV)
    where = f"${WEIGHTS_ENV}={root}" if root else f"${WEIGHTS_ENV} is unset, so ./weights"
    return (f"{path} does not exist; expected {expected} there. Shipped configs read published weights from "
            f"local copies under ${WEIGHTS_ENV} ({where}); docs/weights.md lists the names and layouts each "
            f"recipe expects")


def require_local(path: Optional[str], key: str, expected: str) -> None:
    if missing_local(path):
        raise ConfigError(key, missing_message(str(path), expected))


def _expected_for_encoder(encoder: dict) -> str:
    if encoder.get("name") == "internvideo2":
        return "an InternVideo2 checkpoint file (.pt with 'model'/'module' or a bare state dict)"
    return TRANSFORMERS_FOLDER


def missing_weights(model_cfg: dict[str, Any], prefix: str = "model") -> list[ConfigError]:
    """Every configured local weight path of a ``video_llm`` config that does not exist, one error each."""
    checks: list[tuple[Any, str, str]] = []
    llm = model_cfg.get("llm") or {}
    tokenizers: list[tuple[Any, str, str]] = []  # checked last: a tokenizer in a weights folder names the weights
    if isinstance(llm, dict):
        checks.append((llm.get("pretrained"), f"{prefix}.llm.pretrained", TRANSFORMERS_FOLDER))
        tokenizers.append((llm.get("tokenizer"), f"{prefix}.llm.tokenizer", TOKENIZER_FOLDER))
    branches = model_cfg.get("branches") or []
    for i, branch in enumerate([branches] if isinstance(branches, dict) else branches):
        encoder = branch.get("encoder") if isinstance(branch, dict) else None
        if isinstance(encoder, dict):
            checks.append((encoder.get("pretrained"), f"{prefix}.branches.{i}.encoder.pretrained",
                           _expected_for_encoder(encoder)))
    selector = model_cfg.get("selector")
    if isinstance(selector, dict):
        checks.append((selector.get("pretrained"), f"{prefix}.selector.pretrained", "a BERT " + TRANSFORMERS_FOLDER))
        tokenizers.append((selector.get("tokenizer"), f"{prefix}.selector.tokenizer", TOKENIZER_FOLDER))
    for i, source in enumerate(model_cfg.get("init_weights") or []):
        layout = source.get("layout", "vlmkit")
        checks.append((source.get("path"), f"{prefix}.init_weights.{i}.path",
                       f"layout '{layout}': {LAYOUTS.get(layout, layout)}"))
    checks += tokenizers
    seen: set[str] = set()  # a tokenizer read from the LLM's own folder is reported once
    problems = []
    for path, key, expected in checks:
        if missing_local(path) and path not in seen:
            seen.add(path)
            problems.append(ConfigError(key, missing_message(str(path), expected)))
    return problems


def check_weights_present(model_cfg: dict[str, Any], prefix: str = "model") -> None:
    """Raise one ConfigError listing every missing local weight path (nothing is built before this)."""
    problems = missing_weights(model_cfg, prefix)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError.many(problems)
