"""InstructBLIP's instruction-aware Q-Former, per frame: the queries also attend to the prompt text.

Built on transformers' InstructBlipQFormerModel (word + position embeddings, text FFNs).  As in
transformers' InstructBLIP processor and LAVIS, the Q-Former reads the instruction only (the last user turn,
without media placeholders, never the answer), tokenized with its own (BERT) ``tokenizer`` by the data side
and given at forward time as ``text_ids``; every frame of a sample reads the same instruction.  Only the query
positions are returned.
"""
from __future__ import annotations

from typing import Optional

import torch
from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

from vlmkit.models.adapters.qformer_common import INSTRUCTBLIP_QFORMER_CONFIG, attach_qformer, qformer_config
from vlmkit.models.stage import DType, VisualStage
from vlmkit.registry import ADAPTERS
from vlmkit.schema import Runtime

INSTRUCTBLIP_VOCAB = 30523


@ADAPTERS.register("instruct_qformer", aliases=["instructblip_qformer"])
class InstructQFormer(VisualStage):
    """InstructBLIP Q-Former: learned queries read each frame's tokens and the instruction text.

    Args:
        tokenizer: the Q-Former's own tokenizer (a local bert-base-uncased folder; 'local:word' in tests) that
            the data side uses for the instruction; null = the frame selector's question tokenizer (VideoTGB).
        max_text_length: instruction tokens kept (128, LAVIS InstructBLIP's max_txt_len).
    """

    reads_text = True

    def __init__(self, in_dim: Runtime[int], num_query: int = 32, num_layers: int = 12,
                 cross_attention_freq: int = 2, config: Optional[INSTRUCTBLIP_QFORMER_CONFIG] = None,
                 require_text: bool = True,
                 tokenizer: Optional[str] = None, max_text_length: int = 128, freeze: bool = False,
                 dtype: DType = "float32", gradient_checkpointing: bool = False) -> None:
        super().__init__()
        # InstructBLIP's Q-Former vocabulary: BERT's 30522 + the [DEC] token LAVIS adds (its checkpoints and
        # transformers' instructblip-* configs have 30523 rows; InstructBlipQFormerConfig's default is 30522)
        config = {"vocab_size": INSTRUCTBLIP_VOCAB, **(config or {})}
        cfg = qformer_config(InstructBlipQFormerConfig, "instruct_qformer", in_dim=in_dim, num_layers=num_layers,
                             cross_attention_freq=cross_attention_freq, config=config)
        self.in_dim = in_dim
        self.num_query = num_query
        self.require_text = require_text
        self.vocab_size: int = cfg.vocab_size
        self.max_text_length = max_text_length
        self.tokenizer = None
        if tokenizer is not None:
            from vlmkit.models.llms.hf_lm import HFLanguageModel

            self.tokenizer = HFLanguageModel._load_tokenizer(tokenizer, trust_remote_code=False)
            if len(self.tokenizer) > self.vocab_size:
                raise ValueError(f"instruct_qformer.tokenizer: '{tokenizer}' has {len(self.tokenizer)} tokens but "
                                 f"the Q-Former's vocabulary is {self.vocab_size} (config.vocab_size); use the "
                                 f"Q-Former's own tokenizer")
        attach_qformer(self, InstructBlipQFormerModel, cfg, num_query, dtype, gradient_checkpointing, freeze)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        return in_frames, self.num_query

    def _check_text(self, text_ids: Optional[torch.Tensor], text_mask: Optional[torch.Tensor], batch: int) -> None:
        if text_ids is None:
            if self.require_text:
                raise ValueError("instruct_qformer needs the instruction as text_ids (B, L) tokenized with the "
                                 "Q-Former's tokenizer; set require_text: false to run it on the queries alone")
            return
        if text_ids.dim() != 2 or text_ids.shape[0] != batch:
            raise ValueError(f"instruct_qformer expects text_ids shaped (B, L) with B={batch}, "
                             f"got {tuple(text_ids.shape)}")
        if text_mask is not None and text_mask.shape != text_ids.shape:
            raise ValueError(f"text_mask shape {tuple(text_mask.shape)} differs from text_ids shape "
                             f"{tuple(text_ids.shape)}")

    def forward(self, x: torch.Tensor, text_ids: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        self.check_tokens(x, self.in_dim)
        batch, time = x.shape[:2]
        self._check_text(text_ids, text_mask, batch)
        tokens = x.flatten(0, 1).to(self.query_tokens.dtype)
        queries = self.query_tokens.expand(tokens.shape[0], -1, -1)
        attention_mask = None
        if text_ids is not None:
            text_ids = text_ids.repeat_interleave(time, dim=0)  # every frame reads its sample's instruction
            text_mask = torch.ones_like(text_ids) if text_mask is None else text_mask.repeat_interleave(time, dim=0)
            query_mask = torch.ones(queries.shape[:2], dtype=text_mask.dtype, device=text_mask.device)
            attention_mask = torch.cat([query_mask, text_mask], dim=1)
        hidden = self.qformer(input_ids=text_ids, attention_mask=attention_mask, query_embeds=queries,
                              encoder_hidden_states=tokens).last_hidden_state
        return hidden[:, : self.num_query].unflatten(0, (batch, time))
