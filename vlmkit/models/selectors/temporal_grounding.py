"""VideoTGB's temporal grounding sampler (TGB / "LSTP"): optical flow + the question -> K frames to encode.

Flow between consecutive frames is embedded per position (``rope_bert.FlowEmbedding``), a BERT-style encoder
with rotary positions whose upper layers cross-attend to the question gives start/end logits over the flow
positions, and two Gumbel-max span draws (``spans.gumbel_span_draws``) are united and reduced to K decoded
frames (``spans.span_frames``). While it trains, the loss is the mean cross-entropy of start and end against
pseudo-label spans (``vlmkit.tools.tgb_pseudo_labels``), which the composite adds to the LM loss.

Batch entries (made by ``vlmkit.data.datasets.tgb_inputs``): ``question_ids`` / ``question_mask`` (the question
alone, tokenized with this sampler's tokenizer), ``flow`` (B, L, 2, S, S) / ``flow_lengths`` (B,) unless a
``flow_estimator`` computes flow from the decoded frames, and ``tgb_span`` (B, 2): the pseudo-label span as
[start, end] fractions of the video, needed while the sampler trains or with ``train_frames: label_span``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F

from vlmkit.contracts import ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.models.selectors.base import FrameSelector, Selection
from vlmkit.models.selectors.flow_common import FlowEstimator
from vlmkit.models.selectors.rope_bert import RopeBertSpanEncoder
from vlmkit.models.selectors.spans import gumbel_span_draws, ratio_span_frames, span_frames
from vlmkit.registry import SELECTORS
from vlmkit.schema import Component, Runtime

QUESTION_IDS, QUESTION_MASK, FLOW, FLOW_LENGTHS, SPAN = (
    "question_ids", "question_mask", "flow", "flow_lengths", "tgb_span")


@SELECTORS.register("temporal_grounding_sampler", aliases=["tgb_sampler", "lstp_sampler"])
class TemporalGroundingSampler(FrameSelector):
    """Learned frame sampler of VideoTGB. Defaults are the published sizes (BERT-base, fusion_layer 6, 224 px
    flow in 16 px patches, 2 span draws, K = 4).

    Args:
        num_selected: K, the frames the encoders see.
        tokenizer: the question tokenizer (a local path of bert-base-uncased; 'local:word' in tests).
        pretrained: a local BERT checkpoint folder whose weights initialise the text embedding and the layers
            (VideoTGB starts from bert-base-uncased); null = random weights.
        mode: 'fusion' runs the layers from ``fusion_layer`` on (published training); 'multi_modal' runs all.
        temperature: sampling temperature of the span draws (1.0 = the published behaviour).
        train_frames: frames used while the model trains: 'gumbel' draws (the joint stage) or K frames spread
            over the pseudo-label span (the fixed-sampler stage, as VideoTGB's dataset crops to the label).
        flow_estimator: a flow estimator (raft_flow, frame_difference_flow_standin) run on the decoded frames
            of the first pixel branch; null = flow comes from the batch (precomputed .npy files).
        max_question_length: question tokens kept by the data side (128 as published).
        freeze: no gradients (the fixed-sampler stage).

    The weighting of this loss against the LM loss is the composite's ``selector_loss_weight``.
    """

    batch_keys = (QUESTION_IDS, QUESTION_MASK, FLOW, FLOW_LENGTHS, SPAN)

    def __init__(self, tokenizer: str, num_selected: int = 4, pretrained: Optional[str] = None,
                 hidden_size: int = 768, num_layers: int = 12, num_heads: int = 12, intermediate_size: int = 3072,
                 fusion_layer: int = 6, vocab_size: int = 30522, max_positions: int = 512, flow_size: int = 224,
                 flow_patch: int = 16, dropout: float = 0.1, layer_norm_eps: float = 1e-12,
                 mode: Literal["fusion", "multi_modal"] = "fusion", span_draws: int = 2, temperature: float = 1.0,
                 train_frames: Literal["gumbel", "label_span"] = "gumbel",
                 flow_estimator: Optional[Component("selectors")] = None, max_question_length: int = 128,
                 freeze: bool = False, *, num_frames: Runtime[int],
                 preprocessing: Runtime[Optional[ImagePreprocessing]] = None):
        super().__init__(num_selected, num_frames)
        from vlmkit.models.llms.hf_lm import HFLanguageModel

        self.tokenizer = HFLanguageModel._load_tokenizer(tokenizer, trust_remote_code=False)
        if len(self.tokenizer) > vocab_size:
            raise ConfigError("selector.vocab_size", f"the tokenizer has {len(self.tokenizer)} tokens but the "
                                                     f"sampler's vocabulary is {vocab_size}")
        self.encoder = RopeBertSpanEncoder(hidden_size, num_layers, num_heads, intermediate_size, fusion_layer,
                                           vocab_size, max_positions, flow_size, flow_patch, dropout,
                                           layer_norm_eps, mode)
        if pretrained is not None:
            from vlmkit.models.selectors.bert_init import load_bert_weights
            from vlmkit.models.weight_sources import recording_loads

            with recording_loads(self.encoder, f"{pretrained} (bert)"):
                load_bert_weights(self.encoder, pretrained)
        self.flow_size, self.span_draws, self.temperature = flow_size, span_draws, temperature
        self.train_frames, self.max_question_length = train_frames, max_question_length
        self.flow_estimator = None
        if flow_estimator is not None:
            self.flow_estimator = SELECTORS.build(flow_estimator, path="model.selector.flow_estimator")
            if not isinstance(self.flow_estimator, FlowEstimator):
                raise ConfigError("model.selector.flow_estimator", f"{type(self.flow_estimator).__name__} is not "
                                  f"a flow estimator; use raft_flow or frame_difference_flow_standin")
            if preprocessing is None:
                raise ConfigError("model.selector.flow_estimator", "flow from frames needs a pixel branch")
            self.register_buffer("pixel_mean", torch.tensor(preprocessing.mean).view(3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor(preprocessing.std).view(3, 1, 1), persistent=False)
        if freeze:
            self.freeze()

    def data_needs(self) -> dict[str, Any]:
        return {"question_tokenizer": self.tokenizer, "question_max_length": self.max_question_length,
                "flow": self.flow_estimator is None, "flow_size": self.flow_size,
                "max_positions": self.encoder.flow_embedding.positions.num_embeddings - 2}

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _need(inputs: Mapping[str, Any], key: str, why: str) -> torch.Tensor:
        if key not in inputs or inputs[key] is None:
            raise ValueError(f"temporal_grounding_sampler needs the batch entry '{key}' ({why}); the data side "
                             f"makes it when the dataset is wrapped in tgb_inputs (given: {sorted(inputs)})")
        return inputs[key]

    def flow(self, pixels: torch.Tensor, inputs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, 2, S, S) flow normalised by its largest magnitude per video, and valid lengths (B,)."""
        if self.flow_estimator is None:
            flow = self._need(inputs, FLOW, "precomputed flow, (B, L, 2, S, S)")
            lengths = self._need(inputs, FLOW_LENGTHS, "valid flow positions per video")
            return flow, lengths.to(flow.device)
        frames = (pixels * self.pixel_std + self.pixel_mean).clamp(0, 1)
        flow = self.flow_estimator(frames)
        if flow.shape[-1] != self.flow_size or flow.shape[-2] != self.flow_size:
            flow = F.interpolate(flow.flatten(0, 1), size=(self.flow_size,) * 2, mode="bilinear",
                                 align_corners=False).unflatten(0, flow.shape[:2])
        flow = flow / (flow.norm(dim=2).amax(dim=(1, 2, 3)).view(-1, 1, 1, 1, 1) + 1e-5)
        return flow, torch.full((flow.shape[0],), flow.shape[1], device=flow.device)

    def logits(self, pixels: torch.Tensor, inputs: Mapping[str, Any]) -> tuple[torch.Tensor, ...]:
        """start and end logits (B, L) over the flow positions (padding at the smallest value), lengths (B,)."""
        flow, lengths = self.flow(pixels, inputs)
        ids = self._need(inputs, QUESTION_IDS, "the question tokenized with the sampler's tokenizer")
        mask = inputs.get(QUESTION_MASK)
        mask = torch.ones_like(ids) if mask is None else mask
        start, end = self.encoder(flow, lengths, ids.to(flow.device), mask.to(flow.device))
        return start, end, lengths

    # ------------------------------------------------------------------ selection
    def forward(self, pixels: Sequence[torch.Tensor], inputs: Mapping[str, Any]) -> Selection:
        decoded = pixels[0] if pixels else None
        if decoded is None and self.flow_estimator is not None:
            raise ValueError("the sampler's flow_estimator needs decoded frames; no pixel branch gave any")
        use_labels = self.model_training and self.train_frames == "label_span"
        if use_labels and not self.learns:  # the fixed-sampler stage: frames from the labels, no sampler pass
            spans = self._need(inputs, SPAN, "pseudo-label [start, end] fractions for train_frames: label_span")
            return Selection(self._label_frames(spans))
        start, end, lengths = self.logits(decoded, inputs)
        loss = self.loss(start, end, lengths, self._need(inputs, SPAN, "pseudo-label [start, end] fractions, "
                                                                         "needed while the sampler trains")) \
            if self.learns else None
        if use_labels:
            return Selection(self._label_frames(inputs[SPAN]), loss)
        draws = gumbel_span_draws(start.detach(), end.detach(), self.span_draws, self.temperature).tolist()
        rows = [span_frames(pairs, int(length), self.num_frames, self.num_selected)
                for pairs, length in zip(draws, lengths.tolist())]
        return Selection(torch.tensor(rows, dtype=torch.long, device=start.device), loss)

    def _label_frames(self, spans: torch.Tensor) -> torch.Tensor:
        rows = [ratio_span_frames(s, e, self.num_frames, self.num_selected) for s, e in spans.tolist()]
        return torch.tensor(rows, dtype=torch.long, device=spans.device)

    @staticmethod
    def targets(spans: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[start, end] fractions (B, 2) -> flow positions (B, 2): int(fraction * (length - 1)), as published."""
        if spans.dim() != 2 or spans.shape[1] != 2:
            raise ValueError(f"tgb_span must be (B, 2) [start, end] fractions, got {tuple(spans.shape)}")
        return (spans.float().clamp(0, 1) * (lengths[:, None].float() - 1)).long()

    def loss(self, start: torch.Tensor, end: torch.Tensor, lengths: torch.Tensor,
             spans: torch.Tensor) -> torch.Tensor:
        """Mean of the start and end cross-entropies against the pseudo-label span."""
        target = self.targets(spans.to(start.device), lengths.to(start.device))
        return (F.cross_entropy(start, target[:, 0]) + F.cross_entropy(end, target[:, 1])) / 2
