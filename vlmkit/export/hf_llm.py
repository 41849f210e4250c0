"""``vlmkit export RUN --format hf-llm``: the LLM alone (LoRA merged) as a transformers model folder, with its
tokenizer, that ``AutoModelForCausalLM.from_pretrained`` (``AutoModelForSeq2SeqLM`` for T5) loads without vlmkit.

The embedding table keeps the row of the visual placeholder token the recipe added (the tokenizer saved here
has that token too), so token ids mean the same in both. A wrapper that changes the LLM's computation beyond
what its transformers class does (Video-XL's compressing Qwen2: summary tokens and their own projections) is
refused: its weights would load into a different model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from vlmkit.errors import ConfigError


def plain_llm(model: Any) -> Any:
    """The transformers model inside the recipe's LLM wrapper; refuses wrappers transformers cannot reproduce."""
    from vlmkit.models.llms.beacon_qwen2 import BeaconQwen2

    llm = model.llm
    if isinstance(llm, BeaconQwen2) and llm.compress:
        raise ConfigError("--format", "hf-llm: this LLM (beacon_qwen2, Video-XL) compresses visual tokens with "
                                      "summary tokens and their own q/k/v projections, which transformers' "
                                      f"{type(llm.model).__name__} does not have; its weights would run as a "
                                      "different model. Use --format vlmkit")
    from peft import PeftModel

    if isinstance(llm.model, PeftModel):
        raise ConfigError("--format", "hf-llm: LoRA adapters are still separate (merge_lora first)")
    return llm.model


def write_hf_llm(trained: Any, folder: Path, *, dtype: Optional[torch.dtype] = None) -> dict:
    """``save_pretrained`` of the merged LLM and its tokenizer (chat template included) into ``folder``."""
    hf = plain_llm(trained.model)
    if dtype is not None:
        hf.to(dtype)
    hf.save_pretrained(str(folder))
    trained.model.llm.tokenizer.save_pretrained(str(folder))
    return {"class": type(hf).__name__, "model_type": hf.config.model_type}
