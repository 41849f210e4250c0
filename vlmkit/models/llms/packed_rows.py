"""Packed rows (``run.packing``, ``vlmkit.data.packing``) through a transformers causal LM.

A packed row holds several conversations, told apart by ``position_ids`` that restart at 0, and comes without an
attention mask: transformers' packed format. How attention is kept inside each conversation:

- flash_attention_2: transformers' varlen path reads the conversations from ``position_ids`` when the batch is a
  single row, so the rows are laid end to end (one row, each padding tail a segment of its own) and the logits
  are shaped back into rows.
- sdpa / eager: the block-causal mask that transformers' ``masking_utils`` builds from ``position_ids``
  (``find_packed_sequence_indices``) is built here and handed to the model ready-made. A model builds it
  itself only when its own code passes ``position_ids`` to the mask builder, which LLaMA and Qwen2 do but OPT
  does not; a ready-made mask is taken as is by every model that uses ``masking_utils``.
  A model with a sliding window instead builds its masks itself from ``position_ids`` (Phi-3 and Mistral pass
  them), so the window is kept; a ready-made causal mask would drop it.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional

import torch

PACKED_ATTENTION = ("sdpa", "eager", "flash_attention_2")


def has_sliding_window(config: Any) -> bool:
    return (getattr(config, "sliding_window", None) is not None
            or "sliding_attention" in (getattr(config, "layer_types", None) or ()))


def block_causal_mask(config: Any, inputs_embeds: torch.Tensor, position_ids: torch.Tensor) -> Optional[Any]:
    """transformers' causal mask of packed rows (None when no row holds more than one segment: plain causal)."""
    from transformers.masking_utils import create_causal_mask

    if "cache_position" in inspect.signature(create_causal_mask).parameters:  # transformers 4.x
        cache = (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device), None)
    else:
        cache = (None,)
    return create_causal_mask(config, inputs_embeds, None, *cache, position_ids=position_ids)


def packed_forward(model: Any, attn_implementation: str, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                   labels: Optional[torch.Tensor] = None, **kwargs: Any) -> Any:
    """``model``'s output on packed rows (logits shaped as the rows; the loss over their labels)."""
    if attn_implementation not in PACKED_ATTENTION:
        raise ValueError(f"packed rows need attn_implementation {' / '.join(PACKED_ATTENTION)}, got "
                         f"{attn_implementation!r}")
    rows, width = position_ids.shape
    if attn_implementation == "flash_attention_2":
        out = model(inputs_embeds=inputs_embeds.reshape(1, rows * width, -1),
                    position_ids=position_ids.reshape(1, -1), labels=None if labels is None else labels.reshape(1, -1),
                    use_cache=False, **kwargs)
        out["logits"] = out.logits.reshape(rows, width, -1)
        return out
    config = model.config
    mask = None if has_sliding_window(config) else block_causal_mask(config, inputs_embeds, position_ids)
    return model(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids, labels=labels,
                 use_cache=False, **kwargs)
