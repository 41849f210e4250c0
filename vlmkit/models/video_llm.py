"""VideoLLM: the composite every recipe is built from, configured, not subclassed.

frames --encoder--> stages (Q-Former / projector / pooler) --> visual tokens --placeholders--> LLM

Several branches (VideoGPT+'s image and video towers) each give a token sequence; they are concatenated
in the configured order. Visual tokens enter the LLM through placeholder tokens that the data side expands
to exactly ``visual_tokens`` per video and that are replaced by a masked scatter into ``inputs_embeds``.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import torch
from torch import nn

from vlmkit.contracts import DataContract
from vlmkit.data.samplers.video_sampling import VideoSampling
from vlmkit.models.prompting import VISUAL_TOKEN, encode_conversation, encode_seq2seq, scatter_visual_embeddings
from vlmkit.models.visual_branch import VisualBranch
from vlmkit.registry import LLMS, MODELS, TEMPLATES
from vlmkit.schema import Component, Struct, StructList, to_plain


@MODELS.register("video_llm")
class VideoLLM(nn.Module):
    """Visual branches + chat template + a transformers LLM; every video gives `visual_tokens` LLM tokens.

    Args:
        llm: an LLMS config (causal or seq2seq transformers LM, optional LoRA).
        branches: visual branches, each {encoder, stages}; their tokens are concatenated in this order.
        sampling: {sampler, image_size}: the one statement of frames per video and resolution.
        template: a TEMPLATES config (chat format and which tokens are answers).
        max_length: longest token sequence a sample may have (visual tokens included); null = no limit.
        truncation: 'error' raises on an over-long sample; 'answer_tail' cuts only the end of the last answer.
    """

    def __init__(self, llm: Component("llms"), branches: StructList(VisualBranch), sampling: Struct(VideoSampling),
                 template: Component("templates"), max_length: Optional[int] = None,
                 truncation: Literal["error", "answer_tail"] = "error"):
        super().__init__()
        self.llm = LLMS.build(llm, path="model.llm")
        if self.llm.tokenizer is None:
            raise ValueError("model.llm: a VideoLLM needs the LLM's tokenizer; set llm.tokenizer or llm.pretrained")
        self.visual_token_id = self.llm.add_special_tokens([VISUAL_TOKEN])[0]
        branches = to_plain(branches)
        if isinstance(branches, dict):
            branches = [branches]
        if not branches:
            raise ValueError("model.branches: at least one visual branch (an encoder and its stages) is needed")
        self.branches = nn.ModuleList(
            VisualBranch(**b, llm_width=self.llm.hidden_size, path=f"model.branches[{i}]")
            for i, b in enumerate(branches))
        sampling = VideoSampling(**to_plain(sampling))
        self.sampling = sampling.resolve(self.branches[0].preprocessing)
        self.num_frames = self.sampling.max_frames
        self.template = TEMPLATES.build(template, path="model.template")
        self.max_length, self.truncation = max_length, truncation
        self.visual_tokens = sum(branch.tokens(self.num_frames) for branch in self.branches)

    # ------------------------------------------------------------------ data side
    def encode_conversation(self, conversation: Sequence[Any], num_media: int = 1,
                            add_generation_prompt: bool = False):
        """Token ids and answer-only labels of one sample, with placeholders expanded to the visual tokens."""
        tokenizer = self.llm.tokenizer
        if self.llm.is_encoder_decoder and not add_generation_prompt:
            return encode_seq2seq(conversation, self.template, tokenizer, tokens_per_media=self.visual_tokens,
                                  num_media=num_media, max_length=self.max_length)
        return encode_conversation(conversation, self.template, tokenizer, tokens_per_media=self.visual_tokens,
                                   num_media=num_media, add_generation_prompt=add_generation_prompt,
                                   max_length=self.max_length, truncation=self.truncation)

    def data_contract(self) -> DataContract:
        tokenizer = self.llm.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return DataContract(tokenizer=tokenizer, template=self.template, visual_tokens=self.visual_tokens,
                            num_frames=self.num_frames, preprocessing=tuple(b.preprocessing for b in self.branches),
                            sampling=self.sampling, encode=self.encode_conversation, pad_token_id=int(pad),
                            extra={"encoder_decoder": self.llm.is_encoder_decoder})

    # ------------------------------------------------------------------ model side
    def encode_video(self, pixel_values: Sequence[torch.Tensor], text_ids: Optional[torch.Tensor] = None,
                     text_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One (B, T, C, H, W) tensor per branch -> (B, visual_tokens, hidden)."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = [pixel_values]
        if len(pixel_values) != len(self.branches):
            raise ValueError(f"got {len(pixel_values)} pixel tensors for {len(self.branches)} visual branches")
        for i, pixels in enumerate(pixel_values):
            if pixels.dim() != 5 or pixels.shape[1] != self.num_frames:
                raise ValueError(f"branch {i} expects pixels (B, T={self.num_frames}, C, H, W), got "
                                 f"{tuple(pixels.shape)}")
        tokens = [branch(pixels, text_ids=text_ids, text_mask=text_mask)
                  for branch, pixels in zip(self.branches, pixel_values)]
        return torch.cat(tokens, dim=1)

    def _inputs_embeds(self, input_ids: torch.Tensor, pixel_values, attention_mask) -> torch.Tensor:
        visual = self.encode_video(pixel_values, text_ids=input_ids, text_mask=attention_mask)
        embeds = self.llm.embed(input_ids)
        return scatter_visual_embeddings(embeds, input_ids, self.visual_token_id, visual)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values,
                labels: Optional[torch.Tensor] = None, **_: Any):
        """The LLM's output (``.loss`` when labels are given, ``.logits``)."""
        embeds = self._inputs_embeds(input_ids, pixel_values, attention_mask)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values,
                 **gen_kwargs: Any) -> list[str]:
        """Decoded answers, cut at the template's stop strings."""
        embeds = self._inputs_embeds(input_ids, pixel_values, attention_mask)
        new_ids = self.llm.generate(embeds, attention_mask, **gen_kwargs)
        texts = self.llm.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        return [self._cut_at_stop(text) for text in texts]

    def _cut_at_stop(self, text: str) -> str:
        for stop in self.template.stop_strings:
            if stop and stop in text:
                text = text[:text.index(stop)]
        return text.strip()
