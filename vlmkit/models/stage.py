"""What every visual stage (encoder, adapter, projector, pooler) shares.

Between stages tensors are ``(B, T, N, D)``: batch, time, tokens per frame, width.  A stage reports
its output width (``out_dim``) and, from an input shape, its output ``(T', N')`` (``out_tokens``), so a
composite derives the next stage's input width and the number of visual tokens without running anything.
"""
from __future__ import annotations

import torch
from torch import nn

from vlmkit.dtypes import WeightDType as DType
from vlmkit.dtypes import torch_dtype


def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype of a component's ``dtype`` setting (either spelling: 'bfloat16' or 'bf16')."""
    return torch_dtype(name)


def enable_checkpointing(model: nn.Module) -> None:
    """Activation (gradient) checkpointing on a transformers model, under either API name."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


class VisualStage(nn.Module):
    """Base class: ``out_dim``, ``out_tokens`` and freezing that survives ``model.train()``. It has the members of
    ``vlmkit.protocols.VisualStage``; a plain nn.Module with ``out_dim`` and ``out_tokens`` serves as well."""

    out_dim: int

    # Stages that read the prompt text (InstructBLIP's Q-Former) set this; the composite then passes
    # ``text_ids`` / ``text_mask`` to their forward.  Other stages take only the visual tokens.
    reads_text: bool = False
    # Batch entries (besides pixels and text) the stage's forward reads as keyword arguments (LLMVA-GEBC's
    # boundary reference points); the composite takes them from the batch.
    batch_keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._is_frozen = False

    # ------------------------------------------------------------------ shapes
    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        """``(T', N')`` produced from an input of ``in_frames`` frames of ``in_tokens`` tokens each."""
        return in_frames, in_tokens

    def check_tokens(self, x: torch.Tensor, in_dim: int) -> None:
        """Raise a readable error unless ``x`` is ``(B, T, N, in_dim)``."""
        label = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f"{label} expects visual tokens shaped (B, T, N, D) with D={in_dim}, "
                             f"got a {x.dim()}-d tensor of shape {tuple(x.shape)}")
        if x.shape[-1] != in_dim:
            raise ValueError(f"{label} was built for input width D={in_dim} (its in_dim, the previous stage's "
                             f"out_dim) but got width {x.shape[-1]} in a tensor of shape {tuple(x.shape)}")

    # ------------------------------------------------------------------ freezing
    def freeze(self) -> None:
        """No gradients and eval mode (no dropout) for the whole stage, also after a later ``train()``."""
        self.requires_grad_(False)
        self._is_frozen = True
        self.eval()

    def train(self, mode: bool = True) -> "VisualStage":
        return super().train(mode and not self._is_frozen)

    @property
    def frozen(self) -> bool:
        return self._is_frozen
