"""VideoLLM: the composite every recipe is built from, configured, not subclassed.

frames --encoder--> stages (Q-Former / projector / pooler) --> visual tokens --placeholders--> LLM

Several branches (VideoGPT+'s image and video towers) each give a token sequence; they are concatenated
in the configured order. Visual tokens enter the LLM through placeholder tokens that the data side expands
to exactly ``visual_tokens`` per video and that are replaced by a masked scatter into ``inputs_embeds``.

A branch whose encoder reads precomputed features (LLMVA-GEBC) takes them from the batch under the keys the
branch declares (``batch_keys``); so do stages that need per-sample conditioning. ``pixel_values`` then holds
one tensor per *pixel* branch only.

Stages that read text (InstructBLIP's Q-Former) read the instruction only: the batch's ``instruction_ids`` /
``instruction_mask``, the last user turn without media placeholders, tokenized by the data side with the stage's
own tokenizer (``data_contract().extra["instruction"]``), the same in training and generation. Neither the LLM
prompt (visual placeholders, template) nor the answer ever reaches them.

An optional frame ``selector`` (VideoTGB's temporal grounding sampler) picks K of the T decoded frames before
any encoder runs; the branches then see K frames, and a selector that learns adds its loss, weighted by
``selector_loss_weight``, to the LM loss.

With an LLM that reads its input window by window (``streams_visual``: Video-XL's compressing Qwen2) and
branches that encode in chunks (``chunk_frames``), the visual tokens are streamed: the LLM receives
``StreamedEmbeddings`` and each row's frames are encoded and projected chunk by chunk as its windows reach them,
so neither the whole visual-token tensor nor the whole input-embedding sequence is built (same result).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Optional, Sequence

import torch
from torch import nn

from vlmkit.contracts import INSTRUCTION_IDS, INSTRUCTION_MASK, UINT8_PIXELS, DataContract, normalise_frames
from vlmkit.video_sampling import VideoSampling
from vlmkit.models.checkpoints.init_weights import WeightSource
from vlmkit.models.prompting import VISUAL_TOKEN, encode_conversation, encode_seq2seq, scatter_visual_embeddings
from vlmkit.models.streamed_embeddings import StreamedEmbeddings
from vlmkit.models.token_budget import check_room_for_text
from vlmkit.models.visual_branch import VisualBranch
from vlmkit.models.selectors.base import FrameSelector, gather_frames
from vlmkit.models.weight_paths import check_weights_present
from vlmkit.models.weight_sources import check_frozen_loaded, source_report
from vlmkit.protocols import LLM_BASE, LLM_MEMBERS, require_members
from vlmkit.registry import LLMS, MODELS, SELECTORS, TEMPLATES
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
        init_weights: checkpoints loaded in order once the model is built, each {path, layout, targets}:
            a previous vlmkit run (layout 'vlmkit', e.g. stage 2 from stage 1) or a published layout.
        selector: a SELECTORS config choosing ``num_selected`` of the decoded frames per video (null = all).
        selector_loss_weight: weight of the selector's own training loss in the total loss.
        stream_visual: stream the visual tokens into an LLM that reads windows (see the module docstring) when
            every branch has ``chunk_frames``; false builds all visual tokens and input embeddings first (the
            same result with memory growing with the video).
        allow_random_frozen: accept frozen parameters that no pretrained checkpoint or init_weights filled (they
            stay random): only for from-scratch work such as tiny test models and the demo. Off, building such a
            model fails naming the modules. ``weight_sources`` reports each module's source either way.
    """

    def __init__(self, llm: Component("llms"), branches: StructList(VisualBranch), sampling: Struct(VideoSampling),
                 template: Component("templates"), max_length: Optional[int] = None,
                 truncation: Literal["error", "answer_tail"] = "error",
                 shared_modules: Optional[dict[str, str]] = None,
                 selector: Optional[Component("selectors")] = None, selector_loss_weight: float = 1.0,
                 init_weights: Optional[StructList(WeightSource)] = None, stream_visual: bool = True,
                 allow_random_frozen: bool = False):
        super().__init__()
        check_weights_present({"llm": to_plain(llm), "branches": to_plain(branches), "selector": to_plain(selector),
                               "init_weights": to_plain(init_weights)})
        self.llm = LLMS.build(llm, path="model.llm")
        require_members(self.llm, LLM_MEMBERS, "model.llm", "the LLM (vlmkit.protocols.LanguageModel)", LLM_BASE)
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
        self.sampling = self._resolve_sampling(sampling)
        self.num_frames = self.sampling.max_frames  # decoded per video: the data contract
        self.selector = self._build_selector(selector) if selector is not None else None
        self.selector_loss_weight = selector_loss_weight
        self.instruction = self._instruction_needs()
        # frames each branch encodes
        self.encoded_frames = self.selector.num_selected if self.selector is not None else self.num_frames
        self.template = TEMPLATES.build(template, path="model.template")
        self.max_length, self.truncation = max_length, truncation
        self.stream_visual = stream_visual
        self.cached_depths: dict[int, int] = {}  # pixel branch -> stages its cached features went through
        self.branch_tokens = [branch.tokens(self.encoded_frames) for branch in self.branches]
        self.visual_tokens = sum(self.branch_tokens)
        check_room_for_text(self.branches, self.encoded_frames, self.visual_tokens, max_length)
        text_keys = (INSTRUCTION_IDS, INSTRUCTION_MASK) if self.instruction else ()
        self.batch_keys = tuple(dict.fromkeys([*(k for branch in self.branches for k in branch.batch_keys),
                                               *(self.selector.batch_keys if self.selector else ()),
                                               *text_keys]))
        for i, source in enumerate(to_plain(init_weights) or []):
            WeightSource(**source).load_into(self, f"model.init_weights[{i}]")
        self.weight_sources = source_report(self, self.component_paths())
        check_frozen_loaded(self, allow_random_frozen, self.component_paths())

    def component_paths(self) -> list[str]:
        """Module paths of the configured components: the LLM, each branch's encoder and stages, the selector."""
        paths = ["llm", *(["selector"] if self.selector is not None else [])]
        for b, branch in enumerate(self.branches):
            paths += [f"branches.{b}.encoder", *(f"branches.{b}.stages.{s}" for s in range(len(branch.stages)))]
        return paths

    def _resolve_sampling(self, sampling: VideoSampling) -> VideoSampling:
        """The frame size comes from the encoder. Branches with different input sizes (VideoGPT+: CLIP at 336,
        InternVideo2 at 224) each get their own encoder's size, so a single image_size cannot be set; a
        feature-only model (precomputed features) has no pixel contract to check against."""
        sizes = sorted({self.branches[i].preprocessing.size for i in self.pixel_branches})
        if len(sizes) == 1:
            return sampling.resolve(self.branches[self.pixel_branches[0]].preprocessing)
        if len(sizes) > 1 and sampling.image_size is not None:
            raise ValueError(f"model.sampling.image_size: the pixel branches take different input sizes {sizes}, "
                             f"each its encoder's; remove image_size")
        return sampling

    def _instruction_needs(self) -> Optional[dict[str, Any]]:
        """{tokenizer, max_length} of the instruction text the text-reading stages get from the data side (None
        without such a stage). One tokenizer serves every such stage: its own, else the selector's (VideoTGB's
        Q-Former and sampler both read bert-base-uncased ids)."""
        readers = [(f"model.branches[{b}].stages[{s}]", stage) for b, branch in enumerate(self.branches)
                   for s, stage in enumerate(branch.stages) if stage.reads_text]
        if not readers:
            return None
        fallback = self.selector.tokenizer if self.selector is not None else None
        found = {id(stage.tokenizer): (where, stage) for where, stage in readers if stage.tokenizer is not None}
        if len(found) > 1:
            raise ValueError(f"{', '.join(w for w, _ in found.values())} each set a tokenizer; the instruction is "
                             f"tokenized once, so set it on one stage only")
        if found:
            _, stage = next(iter(found.values()))
            tokenizer, max_length = stage.tokenizer, stage.max_text_length
        elif fallback is not None:
            tokenizer, max_length = fallback, min(s.max_text_length for _, s in readers)
        else:
            raise ValueError(f"{readers[0][0]} reads the instruction text, tokenized with its own tokenizer; set "
                             f"its tokenizer (the Q-Former's BERT tokenizer, e.g. a local bert-base-uncased "
                             f"folder) or configure a selector that reads the question")
        for where, stage in readers:
            vocab = stage.vocab_size
            if vocab is not None and len(tokenizer) > vocab:
                raise ValueError(f"{where} reads instruction ids of a tokenizer with {len(tokenizer)} tokens but its "
                                 f"vocabulary has {vocab} ids; give it its own tokenizer")
        return {"tokenizer": tokenizer, "max_length": max_length}

    def _build_selector(self, cfg: Any) -> FrameSelector:
        name = SELECTORS.name_of(cfg, "model.selector")
        preprocessing = self.branches[self.pixel_branches[0]].preprocessing if self.pixel_branches else None
        selector = SELECTORS.build_offering(cfg, "model.selector", num_frames=self.num_frames,
                                            preprocessing=preprocessing)
        if not isinstance(selector, FrameSelector):
            raise ValueError(f"model.selector: '{name}' is not a frame selector (flow estimators go inside one, "
                             f"as its flow_estimator)")
        return selector

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
                            extra={"encoder_decoder": self.llm.is_encoder_decoder, "batch_keys": self.batch_keys,
                                   UINT8_PIXELS: True,
                                   "selector": self.selector.data_needs() if self.selector is not None else {},
                                   **({"instruction": self.instruction} if self.instruction else {})})

    def use_cached_features(self, depths: Mapping[int, int]) -> None:
        """Read the ``pixel_values`` entry of each listed pixel branch as its features cached after the encoder
        and the first ``depth`` stages, ``(B, T', N', D')``, and run only the stages after them (the frozen-feature
        cache: ``vlmkit.runners.feature_cache`` checks the cache against these modules first). An empty mapping
        returns to pixels."""
        for branch, depth in depths.items():
            if branch not in self.pixel_branches or not 0 <= depth <= len(self.branches[branch].stages):
                raise ValueError(f"cached features for branch {branch} after {depth} stage(s): not a pixel branch "
                                 f"of this model (pixel branches {self.pixel_branches}) or no such stage")
        self.cached_depths = dict(depths)

    # ------------------------------------------------------------------ model side
    def encode_video(self, pixel_values: Optional[Sequence[torch.Tensor]] = None,
                     text_ids: Optional[torch.Tensor] = None, text_mask: Optional[torch.Tensor] = None,
                     inputs: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        """One (B, T, C, H, W) tensor per pixel branch, normalised float or uint8 (normalised by the branch just
        before its encoder, chunk by chunk on the encoder's device), (+ the batch entries other branches read)
        -> (B, visual_tokens, hidden)."""
        return self._encode(pixel_values, text_ids, text_mask, inputs)[0]

    def _encode(self, pixel_values, text_ids, text_mask, inputs) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Visual tokens and the selector's training loss (None without a learning selector)."""
        pixels_of, selector_loss, text_ids, text_mask = self._branch_inputs(pixel_values, text_ids, text_mask, inputs)
        tokens = []
        for i, branch in enumerate(self.branches):
            if i in self.cached_depths:
                out = branch.from_cached(pixels_of[i], self.cached_depths[i], text_ids, text_mask, inputs,
                                         frames=self.encoded_frames)
            else:
                out = branch(pixels_of.get(i), text_ids=text_ids, text_mask=text_mask, inputs=inputs,
                             frames=self.encoded_frames)
            if out.shape[1] != self.branch_tokens[i]:
                raise ValueError(f"branch {i} gave {out.shape[1]} visual tokens but announced "
                                 f"{self.branch_tokens[i]} for {self.encoded_frames} frames; check the frame count of "
                                 f"its input (batch keys {list(branch.batch_keys)})")
            tokens.append(out)
        return torch.cat(tokens, dim=1), selector_loss

    def _branch_inputs(self, pixel_values, text_ids, text_mask, inputs):
        """Each pixel branch's frames (after the selector), the selector's loss and the text stages read."""
        if isinstance(pixel_values, torch.Tensor):
            pixel_values = [pixel_values]
        pixel_values = list(pixel_values or [])
        if len(pixel_values) != len(self.pixel_branches):
            raise ValueError(f"got {len(pixel_values)} pixel tensors for {len(self.pixel_branches)} visual "
                             f"branches that read pixels")
        pixels_of = dict(zip(self.pixel_branches, pixel_values))
        for i, pixels in pixels_of.items():
            if i in self.cached_depths:  # features from the cache: their shape is checked by the branch
                continue
            if pixels.dim() != 5 or pixels.shape[1] != self.num_frames:
                raise ValueError(f"branch {i} expects pixels (B, T={self.num_frames}, C, H, W), got "
                                 f"{tuple(pixels.shape)}")
        selector_loss = None
        if self.selector is not None:
            # the selector reads normalised frames; the branches normalise uint8 ones just before their encoders
            selection = self.selector([normalise_frames(pixels_of[i], self.branches[i].preprocessing)
                                       if pixels_of[i].dtype == torch.uint8 else pixels_of[i]
                                       for i in self.pixel_branches], inputs or {})
            pixels_of = {i: gather_frames(pixels, selection.indices) for i, pixels in pixels_of.items()}
            selector_loss = selection.loss
        if self.instruction and text_ids is None:
            text_ids, text_mask = (inputs or {}).get(INSTRUCTION_IDS), (inputs or {}).get(INSTRUCTION_MASK)
            if text_ids is None:
                given = sorted(inputs) if inputs else []
                raise ValueError(f"a stage reads the instruction text but the batch has no '{INSTRUCTION_IDS}' "
                                 f"(made by the datasets from the model's data contract; given: {given})")
        return pixels_of, selector_loss, text_ids, text_mask

    def _inputs_embeds(self, input_ids: torch.Tensor, pixel_values, attention_mask,
                       inputs: Optional[Mapping[str, Any]] = None, packed: bool = False
                       ) -> tuple[torch.Tensor | StreamedEmbeddings, Optional[torch.Tensor]]:
        """LLM input embeddings with the visual tokens scattered in (streamed when the LLM reads windows), and
        the selector's training loss. ``packed``: rows hold several samples (``run.packing``), whose visual
        tokens fill the rows' visual positions in order (the packer put the samples in row order)."""
        if self.streaming:
            if packed:
                raise ValueError(f"packed rows: {self.packing_problem()}")
            return self._streamed_embeds(input_ids, pixel_values, attention_mask, inputs)
        visual, selector_loss = self._encode(pixel_values, None, None, inputs)
        if packed:
            visual = visual.reshape(-1, visual.shape[-1])
        embeds = self.llm.embed(input_ids)
        return scatter_visual_embeddings(embeds, input_ids, self.visual_token_id, visual), selector_loss

    @property
    def streaming(self) -> bool:
        """Whether the visual tokens go to the LLM as a stream (see the module docstring)."""
        return (self.stream_visual and bool(self.llm.streams_visual) and not self.cached_depths
                and all(branch.streams for branch in self.branches))

    def _streamed_embeds(self, input_ids, pixel_values, attention_mask, inputs):
        pixels_of, selector_loss, text_ids, text_mask = self._branch_inputs(pixel_values, None, None, inputs)

        def one(tensor: Optional[torch.Tensor], row: int) -> Optional[torch.Tensor]:
            return None if tensor is None else tensor[row:row + 1]

        def visual_row(row: int):
            """The row's visual tokens (n, D), chunk after chunk, branch after branch (their configured order)."""
            for i, branch in enumerate(self.branches):
                given = 0
                for tokens in branch.stream(pixels_of[i][row:row + 1], one(text_ids, row), one(text_mask, row),
                                            frames=self.encoded_frames):
                    given += tokens.shape[1]
                    yield tokens[0]
                if given != self.branch_tokens[i]:
                    raise ValueError(f"branch {i} gave {given} visual tokens but announced {self.branch_tokens[i]} "
                                     f"for {self.encoded_frames} frames")

        stream = StreamedEmbeddings(input_ids, self.llm.embed, self.visual_token_id, visual_row, self.visual_tokens)
        return stream, selector_loss

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, pixel_values=None,
                labels: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None, **inputs: Any):
        """The LLM's output (``.loss`` when labels are given, ``.logits``). Batch entries that no branch
        reads ("meta") are ignored. A learning selector's loss is added to ``.loss`` (weighted) and is also
        given as ``.selector_loss``. ``position_ids`` without ``attention_mask``: packed rows of several
        conversations each (``vlmkit.data.packing``; see ``packing_problem``)."""
        packed = position_ids is not None and attention_mask is None
        embeds, selector_loss = self._inputs_embeds(input_ids, pixel_values, attention_mask, inputs, packed=packed)
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                       **({"position_ids": position_ids} if position_ids is not None else {}),
                       **self._llm_visual_mask(input_ids))
        if selector_loss is not None:
            out["selector_loss"] = selector_loss.detach()
            if out.get("loss") is not None:
                out["loss"] = out["loss"] + self.selector_loss_weight * selector_loss
        return out

    def packing_problem(self) -> Optional[str]:
        """Why training rows of this model cannot hold several conversations (``run.packing``), or None. The
        visual side is per sample and packs as it is; the LLM decides (``packing_problem`` of the LLM wrapper)."""
        check = getattr(self.llm, "packing_problem", None)
        if check is None:
            return (f"its LLM ({type(self.llm).__name__}) does not say whether it takes packed rows (it has no "
                    f"packing_problem()); packing needs a causal_lm LLM")
        return check()

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values=None,
                 **gen_kwargs: Any) -> list[str]:
        """Decoded answers, cut at the template's stop strings. Entries of ``gen_kwargs`` named by a branch's
        ``batch_keys`` go to the visual side, the rest to the LLM's ``generate``."""
        inputs = {k: gen_kwargs.pop(k) for k in self.batch_keys if k in gen_kwargs}
        gen_kwargs.pop("meta", None)  # per-sample records of the data side, as in forward
        embeds, _ = self._inputs_embeds(input_ids, pixel_values, attention_mask, inputs)
        new_ids = self.llm.generate(embeds, attention_mask, **self._llm_visual_mask(input_ids), **gen_kwargs)
        texts = self.llm.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        return [self._cut_at_stop(text) for text in texts]

    def _llm_visual_mask(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"visual_mask": where the visual tokens are} for an LLM that declares ``reads_visual_mask`` (Video-XL's
        compressing LLM windows them); nothing for other LLMs."""
        if not self.llm.reads_visual_mask:
            return {}
        return {"visual_mask": input_ids == self.visual_token_id}

    def _cut_at_stop(self, text: str) -> str:
        for stop in self.template.stop_strings:
            if stop and stop in text:
                text = text[:text.index(stop)]
        return text.strip()


def _shape_signature(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]
