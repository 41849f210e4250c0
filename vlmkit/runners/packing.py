"""``run.packing``: whether the model can take packed rows, and the collater step that packs each training batch
(``vlmkit.data.packing``)."""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Optional

import torch

from vlmkit.data.packing import PackedCollate
from vlmkit.data.packing_settings import PackingSettings
from vlmkit.errors import ConfigError
from vlmkit.schema import to_plain

ACCEPTED = ("packing works with video_llm models whose LLM is a decoder-only causal_lm (LLaMA, Qwen2, OPT, Phi-3, "
            "...) with attn_implementation sdpa, eager or flash_attention_2; remove run.packing (run.group_by_length "
            "also cuts padding) for this model")


def packing_for(model: torch.nn.Module, packing: Optional[Mapping[str, Any]]
                ) -> Optional[partial]:
    """None without ``run.packing``; else what wraps the training collater. Refuses a model that cannot keep
    packed conversations apart, and a ``max_length`` that cannot hold one video's visual tokens."""
    if packing is None:
        return None
    settings = PackingSettings.from_config(to_plain(packing), "run.packing")
    check = getattr(model, "packing_problem", None)
    problem = (check() if check is not None else
               f"it does not say whether it takes packed rows (no packing_problem(); {type(model).__name__})")
    if problem:
        raise ConfigError("run.packing", f"this model cannot train on packed rows: {problem}. {ACCEPTED}")
    visual = getattr(model, "visual_tokens", 0)
    if settings.max_length <= visual:
        raise ConfigError("run.packing.max_length", f"{settings.max_length} tokens cannot hold one conversation: "
                                                    f"its video alone takes {visual} visual tokens; give at least the "
                                                    f"longest conversation (the model's max_length: "
                                                    f"{getattr(model, 'max_length', None)})")
    pad = model.data_contract().pad_token_id
    return partial(PackedCollate, max_length=settings.max_length, pad_token_id=pad)
