"""Encoder-decoder LMs (Flan-T5) through AutoModelForSeq2SeqLM: the prompt (with visual tokens) feeds the encoder."""
from __future__ import annotations

from typing import Any, Optional

import torch

from vlmkit.models.llms.hf_lm import HFLanguageModel
from vlmkit.registry import LLMS


@LLMS.register("seq2seq_lm", aliases=["hf_seq2seq_lm"])
class Seq2SeqLM(HFLanguageModel):
    """A transformers seq2seq LM; ``labels`` are the decoder targets (the answer), padded with -100."""

    auto_class_name = "AutoModelForSeq2SeqLM"
    lora_task_type = "SEQ_2_SEQ_LM"
    is_encoder_decoder = True

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, **kwargs: Any) -> Any:
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)

    def packing_problem(self) -> Optional[str]:
        return ("it is an encoder-decoder LLM (seq2seq_lm, e.g. Flan-T5): the prompt goes to its encoder and the "
                "answer to its decoder, two sequences per sample that cannot share a row; packing needs a "
                "decoder-only LLM (causal_lm)")

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                 **gen_kwargs: Any) -> torch.Tensor:
        """New token ids (B, n_new), without the decoder start token. Encoder padding side does not matter."""
        out = self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  **self._generation_defaults(gen_kwargs))
        start = self.base_config.decoder_start_token_id
        if start is not None and out.shape[1] > 0 and bool((out[:, 0] == start).all()):
            out = out[:, 1:]
        return out
