"""``model.init_weights``: weights a model starts from, loaded right after it is built.

Each source is a file or folder and the layout of its key names: ``vlmkit`` (a run of vlmkit's trainer, e.g.
stage 2 starting from stage 1: its trainable tensors), a published layout from ``layouts`` (BLIP-2 in LAVIS's or
transformers' names, InstructBLIP in LAVIS's, Video-LLaMA, MiniGPT-4, LLMVA-GEBC, Video-XL; ``targets`` name the
model's sub-modules), ``llava_hf`` (a LLaVA-1.6 checkpoint in llava-hf's names) or ``pllava`` (PLLaVA's saved LoRA and projector).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import torch
from torch import nn

from vlmkit.errors import ConfigError

Layout = Literal["vlmkit", "llava_hf", "pllava", "qformer_lavis", "blip2_lavis", "instructblip_lavis", "blip2_hf",
                 "video_llama", "minigpt4", "gebc", "video_xl", "eva_vit_lavis"]


class WeightSource:
    """One checkpoint to load: ``path``, its key ``layout``, the model sub-modules a layout fills (``targets``)."""

    def __init__(self, path: str, layout: Layout = "vlmkit", targets: Optional[dict[str, str]] = None):
        self.path, self.layout, self.targets = path, layout, dict(targets or {})

    def load_into(self, model: nn.Module, where: str) -> None:
        from vlmkit.models.weight_paths import LAYOUTS, require_local
        from vlmkit.models.weight_sources import recording_loads

        require_local(self.path, f"{where}.path", f"layout '{self.layout}': {LAYOUTS.get(self.layout, self.layout)}")
        with recording_loads(model, f"{self.path} ({self.layout})"):
            self._load(model, where)

    def _load(self, model: nn.Module, where: str) -> None:
        from vlmkit.models.checkpoints.io import read_sharded, read_state_dict
        from vlmkit.models.checkpoints.load import load_checkpoint

        if self.layout == "vlmkit":
            load_vlmkit_run(model, self.path, where)
        elif self.targets and self.layout in ("llava_hf", "pllava", "vlmkit"):
            raise ConfigError(f"{where}.targets", f"layout '{self.layout}' takes no targets")
        elif self.layout == "llava_hf":
            from vlmkit.models.checkpoints.llava_hf import load_llava_hf

            load_llava_hf(model, read_sharded(self.path))
        elif self.layout == "pllava":
            from vlmkit.models.checkpoints.pllava import load_pllava_weights

            load_pllava_weights(model, read_state_dict(self.path))
        else:
            load_checkpoint(model, self.path, self.layout, **self.targets)


def vlmkit_checkpoint_dir(path: str, where: str) -> Path:
    """A checkpoint folder from a run folder, its ``checkpoints`` folder or the checkpoint itself."""
    root = Path(path)
    for folder in (root, root / "checkpoints"):
        if (folder / "model.safetensors").is_file():
            return folder
        if (folder / "latest").is_file():
            return folder / (folder / "latest").read_text().strip()
    raise ConfigError(f"{where}.path", f"{path} is not a vlmkit run or checkpoint (no model.safetensors and no "
                                       f"'latest' pointer in it or in its checkpoints/ folder)")


def load_vlmkit_run(model: nn.Module, path: str, where: str) -> None:
    """Copy a vlmkit checkpoint's (trainable) tensors in; every one must exist in the model with its shape."""
    import safetensors.torch

    folder = vlmkit_checkpoint_dir(path, where)
    tensors = safetensors.torch.load_file(str(folder / "model.safetensors"))
    params = dict(model.named_parameters())
    problems = [f"  {name}: not a parameter of the model" for name in tensors if name not in params]
    problems += [f"  {name}: checkpoint {tuple(t.shape)} vs model {tuple(params[name].shape)}"
                 for name, t in tensors.items() if name in params and params[name].shape != t.shape]
    if problems:
        raise ConfigError(f"{where}.path", f"{folder} does not fit the model:\n" + "\n".join(problems))
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor.to(dtype=params[name].dtype, device=params[name].device))
