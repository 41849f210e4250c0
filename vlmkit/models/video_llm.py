"""VideoLLM: the composite every recipe is built from, configured, not subclassed.

frames --encoder--> stages (Q-Former / projector / pooler) --> visual tokens --placeholders--> LLM

Several branches (VideoGPT+'s image and video towers) each give a token sequence; they are concatenated
in the configured order. Visual tokens enter the LLM through placeholder tokens that the data side expands
to exactly ``visual_tokens`` per video and that are replaced by a masked scatter into ``inputs_embeds``.

A branch whose encoder reads precomputed features (LLMVA-GEBC) takes them from the batch under the keys the
branch declares (``batch_keys``); so do stages that need per-sample conditioning. ``pixel_values`` then holds
one tensor per *pixel* branch only.
"""
from __future__ import annotations

from collections.abc import Mapping
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
        shared_modules: {target: source} module paths; the target becomes the very same module as the source
            (weight sharing, e.g. LLMVA-GEBC's one projection for both branches:
            {"branches.1.stages.2": "branches.0.stages.2"}).
    """

    def __init__(self, llm: Component("llms"), branches: StructList(VisualBranch), sampling: Struct(VideoSampling),
                 template: Component("templates"), max_length: Optional[int] = None,
                 truncation: Literal["error", "answer_tail"] = "error",
                 shared_modules: Optional[dict[str, str]] = None):
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
        self._share_modules(to_plain(shared_modules) or {})
        sampling = VideoSampling(**to_plain(sampling))
        self.pixel_branches = [i for i, branch in enumerate(self.branches) if branch.reads_pixels]
        # Feature-only models (precomputed features) have no pixel contract to check the sampling against.
        self.sampling = (sampling.resolve(self.branches[self.pixel_branches[0]].preprocessing)
                         if self.pixel_branches else sampling)
        self.num_frames = self.sampling.max_frames
        self.template = TEMPLATES.build(template, path="model.template")
        self.max_length, self.truncation = max_length, truncation
        self.branch_tokens = [branch.tokens(self.num_frames) for branch in self.branches]
        self.visual_tokens = sum(self.branch_tokens)
        self.batch_keys = tuple(dict.fromkeys(k for branch in self.branches for k in branch.batch_keys))

    def _share_modules(self, shared: Mapping[str, str]) -> None:
        for target, source in shared.items():
            where = f"model.shared_modules.{target}"
            try:
                src, old = self.get_submodule(source), self.get_submodule(target)
            except AttributeError as err:
                raise ValueError(f"{where}: {err}; paths look like 'branches.0.stages.2'") from err
            if type(src) is not type(old) or _shape_signature(src) != _shape_signature(old):
                raise ValueError(f"{where}: '{target}' ({type(old).__name__}) and '{source}' "
                                 f"({type(src).__name__}) differ in type or parameter shapes; only identical "
                                 f"modules can be shared")
            parent, _, name = target.rpartition(".")
            setattr(self.get_submodule(parent) if parent else self, name, src)

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
        # One preprocessing per pixel branch (``pixel_values`` holds one tensor for each); feature inputs are
        # named in extra["batch_keys"].
        return DataContract(tokenizer=tokenizer, template=self.template, visual_tokens=self.visual_tokens,
                            num_frames=self.num_frames,
                            preprocessing=tuple(self.branches[i].preprocessing for i in self.pixel_branches),
                            sampling=self.sampling, encode=self.encode_conversation, pad_token_id=int(pad),
                            extra={"encoder_decoder": self.llm.is_encoder_decoder, "batch_keys": self.batch_keys})

    # ------------------------------------------------------------------ model side
    def encode_video(self, pixel_values: Optional[Sequence[torch.Tensor]] = None,
                     text_ids: Optional[torch.Tensor] = None, text_mask: Optional[torch.Tensor] = None,
                     inputs: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        """One (B, T, C, H, W) tensor per pixel branch (+ the batch entries other branches read)
        -> (B, visual_tokens, hidden)."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = [pixel_values]
        pixel_values = list(pixel_values or [])
        if len(pixel_values) != len(self.pixel_branches):
            raise ValueError(f"got {len(pixel_values)} pixel tensors for {len(self.pixel_branches)} visual "
                             f"branches that read pixels")
        pixels_of = dict(zip(self.pixel_branches, pixel_values))
        for i, pixels in pixels_of.items():
            if pixels.dim() != 5 or pixels.shape[1] != self.num_frames:
                raise ValueError(f"branch {i} expects pixels (B, T={self.num_frames}, C, H, W), got "
                                 f"{tuple(pixels.shape)}")
        tokens = []
        for i, branch in enumerate(self.branches):
            out = branch(pixels_of.get(i), text_ids=text_ids, text_mask=text_mask, inputs=inputs,
                         frames=self.num_frames)
            if out.shape[1] != self.branch_tokens[i]:
                raise ValueError(f"branch {i} gave {out.shape[1]} visual tokens but announced "
                                 f"{self.branch_tokens[i]} for {self.num_frames} frames; check the frame count of "
                                 f"its input (batch keys {list(branch.batch_keys)})")
            tokens.append(out)
        return torch.cat(tokens, dim=1)

    def _inputs_embeds(self, input_ids: torch.Tensor, pixel_values, attention_mask,
                       inputs: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        visual = self.encode_video(pixel_values, text_ids=input_ids, text_mask=attention_mask, inputs=inputs)
        embeds = self.llm.embed(input_ids)
        return scatter_visual_embeddings(embeds, input_ids, self.visual_token_id, visual)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values=None,
                labels: Optional[torch.Tensor] = None, **inputs: Any):
        """The LLM's output (``.loss`` when labels are given, ``.logits``). Batch entries that no branch
        reads ("meta") are ignored."""
        embeds = self._inputs_embeds(input_ids, pixel_values, attention_mask, inputs)
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                        **self._llm_visual_mask(input_ids))

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values=None,
                 **gen_kwargs: Any) -> list[str]:
        """Decoded answers, cut at the template's stop strings. Entries of ``gen_kwargs`` named by a branch's
        ``batch_keys`` go to the visual side, the rest to the LLM's ``generate``."""
        inputs = {k: gen_kwargs.pop(k) for k in self.batch_keys if k in gen_kwargs}
        gen_kwargs.pop("meta", None)  # per-sample records of the data side, as in forward
        embeds = self._inputs_embeds(input_ids, pixel_values, attention_mask, inputs)
        new_ids = self.llm.generate(embeds, attention_mask, **self._llm_visual_mask(input_ids), **gen_kwargs)
        texts = self.llm.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        return [self._cut_at_stop(text) for text in texts]

    def _llm_visual_mask(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"visual_mask": where the visual tokens are} for an LLM that declares ``reads_visual_mask`` (Video-XL's
        compressing LLM windows them); nothing for other LLMs."""
        if not getattr(self.llm, "reads_visual_mask", False):
            return {}
        return {"visual_mask": input_ids == self.visual_token_id}

    def _cut_at_stop(self, text: str) -> str:
        for stop in self.template.stop_strings:
            if stop and stop in text:
                text = text[:text.index(stop)]
        return text.strip()


def _shape_signature(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]
