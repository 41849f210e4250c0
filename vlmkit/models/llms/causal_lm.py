"""Decoder-only LMs (LLaMA/Vicuna, LLaMA-2, OPT, Qwen2/2.5, Phi-3) through AutoModelForCausalLM."""
from __future__ import annotations

from typing import Any, Optional

import torch

from vlmkit.errors import DataError
from vlmkit.models.llms.hf_lm import HFLanguageModel
from vlmkit.models.llms.packed_rows import PACKED_ATTENTION, packed_forward
from vlmkit.registry import LLMS


def left_align(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid positions to the right end (left padding), as batched generation needs.

    Rows must hold one contiguous run of valid positions (right, left or no padding); anything else is
    a malformed batch and raises rather than generating from scrambled positions.
    """
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if (lengths == 0).any():
        raise DataError(f"generate: batch rows {torch.nonzero(lengths == 0).flatten().tolist()} have no valid tokens")
    width = mask.shape[1]
    first = mask.float().argmax(dim=1)
    positions = torch.arange(width, device=mask.device)
    contiguous = (positions >= first[:, None]) & (positions < (first + lengths)[:, None])
    if not torch.equal(contiguous, mask):
        raise DataError("generate: attention_mask rows must be one contiguous run of 1s (left or right padding)")
    # Source index for every target slot: target j holds source first + (j - (width - length)).
    source = first[:, None] + positions[None, :] - (width - lengths)[:, None]
    valid = source >= first[:, None]
    source = source.clamp(min=0, max=width - 1)
    aligned = torch.gather(inputs_embeds, 1, source[..., None].expand(-1, -1, inputs_embeds.shape[-1]))
    aligned = aligned * valid[..., None].to(aligned.dtype)
    return aligned, valid.to(attention_mask.dtype)


@LLMS.register("causal_lm", aliases=["hf_causal_lm"])
class CausalLM(HFLanguageModel):
    """A transformers causal LM fed with ``inputs_embeds`` (visual tokens already scattered in)."""

    auto_class_name = "AutoModelForCausalLM"
    lora_task_type = "CAUSAL_LM"

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                **kwargs: Any) -> Any:
        """transformers' output: ``.loss`` (shifted cross-entropy over labels != -100) and ``.logits``.
        ``position_ids`` without ``attention_mask`` are packed rows (``packed_rows``): attention stays inside
        each conversation."""
        if position_ids is not None and attention_mask is None:
            return packed_forward(self.model, self.attn_implementation, inputs_embeds, position_ids, labels, **kwargs)
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)

    def packing_problem(self) -> Optional[str]:
        """Why packed rows cannot be trained (``run.packing``), or None: the attention must be one that keeps
        packed conversations apart."""
        if self.attn_implementation not in PACKED_ATTENTION:
            return (f"its attn_implementation is {self.attn_implementation!r}; packed rows need "
                    f"{', '.join(PACKED_ATTENTION)}")
        return None

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                 **gen_kwargs: Any) -> torch.Tensor:
        """New token ids (B, n_new). Right-padded prompts are left-aligned first so every row continues its text."""
        if attention_mask is None:
            attention_mask = torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        inputs_embeds, attention_mask = left_align(inputs_embeds, attention_mask)
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   **self._generation_defaults(gen_kwargs))
