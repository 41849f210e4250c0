"""``vlmkit export RUN --format vlmkit``: a folder that ``vlmkit.load`` reads with neither the run nor any weight
file it was built from (``pretrained`` folders, ``init_weights``), laid out as ``vlmkit.export.layout`` says.

The model config is rewritten to build from architecture alone: ``init_weights`` dropped, every ``pretrained``
replaced by the architecture it had (an LLM's or a vision tower's transformers config, written out in full), the
LLM's ``dtype`` pinned to the one it computed in, LoRA removed (merged: ``lora_merge``), each tokenizer saved in
the folder and named by a path inside it. Every value then comes from ``model.safetensors``, loaded strictly
after the build; ``allow_random_frozen`` only lets the build start before it is loaded. Before the folder is
moved into place, the rewritten config is built on the meta device and its tensor names and shapes compared with
the file's, so an export that would not load is refused at export time.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from vlmkit import dtypes
from vlmkit.errors import ConfigError
from vlmkit.export import layout

# transformers config keys that describe the saved file, not the architecture
NOT_ARCHITECTURE = ("model_type", "transformers_version", "architectures", "_name_or_path", "dtype", "torch_dtype",
                    "_attn_implementation_autoset", "_commit_hash")


def architecture_of(hf_config: Any, known: Optional[set[str]] = None) -> dict[str, Any]:
    """The values of a transformers config that differ from its class defaults (``known``: keep only these)."""
    values = {k: v for k, v in hf_config.to_diff_dict().items() if k not in NOT_ARCHITECTURE}
    return {k: v for k, v in values.items() if known is None or k in known}


def strip_presets(node: Any) -> Any:
    """The resolved config without ``preset`` markers: the export is complete, a preset must not re-add keys."""
    if isinstance(node, dict):
        return {k: strip_presets(v) for k, v in node.items() if k != "preset"}
    if isinstance(node, list):
        return [strip_presets(v) for v in node]
    return node


class Rewriter:
    """Rewrites one model config against its built model; collects the tokenizers to save and the in-folder paths."""

    def __init__(self, model_config: dict, model: nn.Module):
        self.config = strip_presets(copy.deepcopy(model_config))
        self.model = model
        self.tokenizers: dict[str, Any] = {}  # config key of the tokenizer value -> tokenizer object
        self.files: dict[str, dict] = {}  # config key of a weight file a component reads at build -> its tensors
        self.notes: list[str] = []

    def rewrite(self) -> dict:
        cfg = self.config
        if cfg.pop("init_weights", None):
            self.notes.append("init_weights dropped: their values are in model.safetensors")
        cfg["allow_random_frozen"] = True
        self._llm(cfg["llm"], self.model.llm)
        for b, branch in enumerate(cfg.get("branches") or []):
            module = self.model.branches[b]
            self._component(branch["encoder"], module.encoder, f"branches.{b}.encoder")
            for s, stage in enumerate(branch.get("stages") or []):
                self._component(stage, module.stages[s], f"branches.{b}.stages.{s}")
        if cfg.get("selector"):
            self._component(cfg["selector"], self.model.selector, "selector")
            flow = cfg["selector"].get("flow_estimator")
            if isinstance(flow, dict) and flow.get("weights"):  # RAFT reads its file at build: written into DIR
                self.files["selector.flow_estimator.weights"] = self.model.selector.flow_estimator.model.state_dict()
        return cfg

    def _llm(self, cfg: dict, llm: nn.Module) -> None:
        hf = llm.model
        if cfg.pop("lora", None) is not None:
            self.notes.append("llm.lora removed: merged into the weights")
        if cfg.get("pretrained"):
            self.notes.append(f"llm.pretrained {cfg['pretrained']} replaced by its architecture")
            cfg.update(pretrained=None, arch=hf.config.model_type, config=architecture_of(hf.config))
        dtype = next(hf.parameters()).dtype
        if cfg.get("dtype", "auto") == "auto" and dtype.is_floating_point:
            cfg["dtype"] = dtypes.torch_name(dtype)  # 'auto' followed the pretrained file, which is gone
        self.tokenizers["llm.tokenizer"] = llm.tokenizer

    def _component(self, cfg: dict, module: nn.Module, key: str) -> None:
        if cfg.get("pretrained"):
            from vlmkit.models.encoders.hf_vision import HFVisionEncoder

            if isinstance(module, HFVisionEncoder):
                known = set(module.config_class().to_dict())
                cfg["config"] = architecture_of(module.model.config, known)
            self.notes.append(f"{key}.pretrained {cfg['pretrained']} replaced by its architecture")
            cfg["pretrained"] = None
        if isinstance(cfg.get("tokenizer"), str) and getattr(module, "tokenizer", None) is not None:
            self.tokenizers[f"{key}.tokenizer"] = module.tokenizer


def save_tokenizers(rewriter: Rewriter, folder: Path) -> list[str]:
    """Each tokenizer into tokenizers/<config key>/, the config pointed at it; returns the keys (in-folder paths)."""
    saved: dict[int, str] = {}
    for key, tokenizer in rewriter.tokenizers.items():
        if id(tokenizer) not in saved:  # one tokenizer object read by two components is saved once
            relative = f"tokenizers/{key.rsplit('.tokenizer', 1)[0]}"
            tokenizer.save_pretrained(str(folder / relative))
            saved[id(tokenizer)] = relative
        layout.set_key(rewriter.config, key, saved[id(tokenizer)])
    return list(rewriter.tokenizers)


def save_files(rewriter: Rewriter, folder: Path) -> list[str]:
    """Each weight file a component reads at build, rewritten from its tensors into weights/<config key>.pt."""
    for key, tensors in rewriter.files.items():
        relative = f"weights/{key.rsplit('.weights', 1)[0]}.pt"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save({name: t.detach().cpu() for name, t in tensors.items()}, folder / relative)
        layout.set_key(rewriter.config, key, relative)
    return list(rewriter.files)


def check_rebuilds(config: dict, folder: Path, relative_paths: list[str], weights: dict[str, tuple]) -> None:
    """Build the rewritten model on the meta device (no values) and compare tensor names and shapes."""
    from omegaconf import OmegaConf

    from vlmkit.registry import MODELS

    resolved = copy.deepcopy(config)
    for key in relative_paths:
        layout.set_key(resolved, key, str(folder / layout.get_key(resolved, key)))
    with torch.device("meta"):
        rebuilt = MODELS.build(OmegaConf.create(resolved), path="model")
    shapes = {name: tuple(t.shape) for name, t in rebuilt.state_dict().items()}
    differ = sorted(set(shapes) ^ set(weights)) + sorted(k for k in set(shapes) & set(weights)
                                                          if shapes[k] != weights[k])
    if differ:
        raise ConfigError("export", "the exported config does not rebuild the exported tensors (names or shapes "
                                    f"differ: {', '.join(differ[:8])}{' ...' if len(differ) > 8 else ''}); this "
                                    "model has a component whose architecture its config does not describe")


def write_self_contained(trained: Any, folder: Path, *, dtype: Optional[torch.dtype] = None,
                         generation: Optional[dict] = None, merged: Optional[dict] = None) -> dict:
    """Write the export of ``trained`` (a ``TrainedModel`` whose LoRA is already merged) into ``folder``; returns
    the manifest."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_model

    from vlmkit.runners.evaluator import generation_settings
    from vlmkit.tools.checksums import sha256_of

    model = trained.model.eval()
    rewriter = Rewriter(trained.config["model"], model)
    model_cfg = rewriter.rewrite()
    relative = save_tokenizers(rewriter, folder) + save_files(rewriter, folder)
    if dtype is not None:
        model.to(dtype)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    save_model(model, str(folder / layout.WEIGHTS), metadata={"format": "pt"})
    config = {"model": model_cfg, **({"imports": trained.config["imports"]} if trained.config.get("imports") else {})}
    OmegaConf.save(OmegaConf.create(config), folder / layout.CONFIG)
    check_rebuilds(model_cfg, folder, relative, shapes)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "format": layout.FORMAT, "version": layout.VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                    time.gmtime()),
        "source": {"checkpoint": str(trained.checkpoint) if trained.checkpoint is not None else None},
        "lora_merged": merged, "dtype": dtypes.torch_name(dtype) if dtype is not None else "as trained",
        "generation": generation_settings(**(generation or {})), "seed": trained.seed,
        "relative_paths": [f"model.{key}" for key in relative], "notes": rewriter.notes,
        "files": {p.relative_to(folder).as_posix(): {"sha256": sha256_of(p), "size": p.stat().st_size}
                  for p in files},
    }
    (folder / layout.MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest
