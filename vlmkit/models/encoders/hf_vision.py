"""Shared machinery of the transformers vision towers (CLIP, SigLIP, BLIP-2's EVA ViT-g).

A tower is built one of three ways: ``pretrained`` (a local path or hub id, ``from_pretrained``; with ``arch``
the checkpoint must be that preset, which then describes it for offline builds), ``arch`` (a named full-size preset whose real config values live in the subclass, so the full model can
be built on the ``meta`` device without weights), or ``config`` (HF config kwargs; with ``arch`` they
override the preset, which is how tests make tiny towers of the same classes).
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Optional

import torch

from vlmkit.contracts import ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.models.encoders.block_checkpointing import checkpoint_blocks_offloaded, checkpointing_config_problems
from vlmkit.models.stage import VisualStage, enable_checkpointing, resolve_dtype
from vlmkit.models.weight_paths import TRANSFORMERS_FOLDER, require_local
from vlmkit.models.weight_sources import UNUSED, mark_loaded, weight_source
from vlmkit.schema_index_file import config_class_keys


class HFVisionEncoder(VisualStage, abc.ABC):
    """Pixel frames ``(B, T, C, H, W)`` -> tokens ``(B, T, N, D)`` through a transformers vision model."""

    registry_name: ClassVar[str]
    model_class: ClassVar[type]
    config_class: ClassVar[type]
    presets: ClassVar[dict[str, dict[str, Any]]]
    fixed_config: ClassVar[dict[str, Any]] = {}  # config values this wrapper always needs
    checkpoint_key_mapping: ClassVar[dict[str, str]] = {}  # regex -> replacement for composite checkpoints
    # checkpoint_offload needs gradient_checkpointing (checked at config validation, and when built)
    config_problems = classmethod(checkpointing_config_problems)

    def __init__(self, *, pretrained: Optional[str], arch: Optional[str], config: Optional[dict],
                 freeze: bool, dtype: str, gradient_checkpointing: bool, checkpoint_offload: bool) -> None:
        super().__init__()
        problems = self.config_problems({"gradient_checkpointing": gradient_checkpointing,
                                         "checkpoint_offload": checkpoint_offload}, self.registry_name)
        if problems:
            raise problems[0]
        torch_dtype = resolve_dtype(dtype)
        self.model = self._build_model(pretrained, arch, config, torch_dtype)
        self.model.to(torch_dtype)
        if checkpoint_offload:  # fairscale's wrapper per block (LAVIS's EVA-ViT), instead of transformers'
            checkpoint_blocks_offloaded(self.blocks)
        elif gradient_checkpointing:
            enable_checkpointing(self.model)
        cfg = self.model.config
        self.image_size: int = cfg.image_size
        self.patch_size: int = cfg.patch_size
        self.num_channels: int = getattr(cfg, "num_channels", 3)
        self.out_dim: int = cfg.hidden_size
        if freeze:
            self.freeze()

    # ------------------------------------------------------------------ construction
    def _build_model(self, pretrained, arch, config, torch_dtype):
        label = self.registry_name
        if arch is not None and arch not in self.presets:
            raise ConfigError(f"{label}.arch", f"unknown arch '{arch}'; accepted: {', '.join(sorted(self.presets))}")
        if pretrained is None and arch is None and config is None:
            raise ConfigError(label, f"set one of 'pretrained' (a local path or hub id), 'arch' (one of "
                                     f"{', '.join(sorted(self.presets))}) or 'config' (HF config kwargs)")
        overrides = {**self.fixed_config, **(config or {})}
        if pretrained is not None:  # with 'arch' too: arch describes the checkpoint for offline (meta) builds
            model = self._load_pretrained(pretrained, torch_dtype, overrides)
            if arch is not None:
                self._check_arch(model.config, arch, pretrained)
            return model
        kwargs: dict[str, Any] = {}
        if arch is not None:
            kwargs.update(self.presets[arch])
        kwargs.update(overrides)
        return self.model_class(self._make_config(kwargs))

    def _load_pretrained(self, pretrained: str, torch_dtype: torch.dtype, overrides: dict[str, Any]):
        """``from_pretrained``, strict: a tower with randomly initialised weights must not pass silently."""
        require_local(pretrained, f"{self.registry_name}.pretrained", TRANSFORMERS_FOLDER)
        kwargs = {"key_mapping": self.checkpoint_key_mapping} if self.checkpoint_key_mapping else {}
        model, info = self.model_class.from_pretrained(pretrained, dtype=torch_dtype, output_loading_info=True,
                                                       **kwargs, **overrides)
        missing = sorted(info["missing_keys"])
        if missing:
            shown = ", ".join(missing[:8]) + (f" ... ({len(missing)} in all)" if len(missing) > 8 else "")
            raise ConfigError(f"{self.registry_name}.pretrained",
                              f"checkpoint '{pretrained}' lacks weights of the {self.model_class.__name__} "
                              f"tower: {shown}. Point 'pretrained' at a checkpoint of that model (or of the full "
                              f"model that contains it)")
        mark_loaded(model.parameters(), f"{pretrained} (transformers {self.model_class.__name__})")
        return model

    def _check_arch(self, config: Any, arch: str, pretrained: str) -> None:
        differ = [f"{key}: arch {value!r} vs checkpoint {getattr(config, key, None)!r}"
                  for key, value in self.presets[arch].items() if getattr(config, key, None) != value]
        if differ:
            raise ConfigError(f"{self.registry_name}.arch", f"checkpoint '{pretrained}' is not a '{arch}' tower: "
                                                            + "; ".join(differ))

    def _make_config(self, kwargs: dict[str, Any]):
        known = config_class_keys(self.config_class)  # the keys validation accepts (HFConfig)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"{self.registry_name}.config",
                              f"unknown {self.config_class.__name__} keys {unknown}; accepted keys include "
                              f"hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                              f"image_size, patch_size")
        return self.config_class(**kwargs)

    # ------------------------------------------------------------------ contract
    @property
    def patches_per_frame(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    @abc.abstractmethod
    def tokens_per_frame(self) -> int:
        """N of the output at the configured image size (each tower knows whether it keeps a CLS token)."""

    @property
    @abc.abstractmethod
    def preprocessing(self) -> ImagePreprocessing:
        """Pixel contract of the tower family (its mean/std and resize rule)."""

    @property
    def blocks(self) -> torch.nn.ModuleList:
        """The tower's transformer blocks (encoder layers), in order."""
        return getattr(self.model, "vision_model", self.model).encoder.layers

    def freeze_after(self, select_layer: int) -> None:
        """Stop gradients to the layers after hidden state ``select_layer`` and to the final norm.

        Their outputs never reach the selected hidden state, so they would get no gradient: under DDP an
        unused trainable parameter is an error. They stay in the module so checkpoints and parameter
        counts match the published tower.
        """
        tower = getattr(self.model, "vision_model", self.model)
        layers = self.blocks
        used = select_layer % (len(layers) + 1)  # hidden state i is the output of layer i - 1
        heads = [getattr(tower, n) for n in ("post_layernorm", "head") if getattr(tower, n, None) is not None]
        unused = [*layers[used:], *heads]
        for module in unused:
            module.requires_grad_(False)
            # never read, so random values there are harmless: not a frozen tower nobody loaded
            mark_loaded((p for p in module.parameters() if weight_source(p) is None), UNUSED)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        """Encoders read pixels, so only the frame count matters: ``(T, tokens_per_frame)``."""
        return in_frames, self.tokens_per_frame

    # ------------------------------------------------------------------ forward
    @abc.abstractmethod
    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B*T, C, H, W)`` -> ``(B*T, N, D)``."""

    def check_frames(self, frames: torch.Tensor) -> None:
        expected = (self.num_channels, self.image_size, self.image_size)
        if frames.dim() != 5:
            hint = " (a batch of images is (B, 1, C, H, W))" if frames.dim() == 4 else ""
            raise ValueError(f"{type(self).__name__} expects frames shaped (B, T, C, H, W) with (C, H, W)="
                             f"{expected}, got shape {tuple(frames.shape)}{hint}")
        if tuple(frames.shape[2:]) != expected:
            raise ValueError(f"{type(self).__name__} was built for (C, H, W)={expected} (preprocessing size "
                             f"{self.image_size}), got frames of shape {tuple(frames.shape)}")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.check_frames(frames)
        batch, time = frames.shape[:2]
        pixels = frames.flatten(0, 1).to(self.model.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self._features(pixels)
        return tokens.unflatten(0, (batch, time))
