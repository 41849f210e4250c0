"""Video-XL's compressing LLM: a transformers Qwen2 that summarises visual tokens window by window.

Per sample: the text before the video is processed uncompressed and kept; the visual tokens are processed in
windows of ``window`` tokens, each with a compression ratio r from ``ratios`` (mixed by ``ratio_mix``), one
summary ("beacon") token inserted after every r visual tokens (the remainder carried to the next window);
summary tokens use their own q/k/v projections, initialised as copies of the originals; after each window only
the summary tokens' keys and values are kept, at compact positions. The text after the video (question,
answer) is processed without compression on top of that memory. The loss is the token-weighted average over
windows; returned logits exclude summary positions. With ``compress: false`` (or no visual tokens) the
plain transformers model runs unchanged.

The composite tells the wrapper where the visual tokens are through ``visual_mask`` (``reads_visual_mask``),
and, while compressing, may hand ``inputs_embeds`` as ``StreamedEmbeddings`` (``streams_visual``): each row is
then read window by window, so the video is encoded as the windows reach it and neither all its visual tokens
nor the whole input-embedding sequence ever exist at once.
"""
from __future__ import annotations

import copy
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.errors import ConfigError, DataError
from vlmkit.models.llms.base import AttnImplementation, DType, LMConfig
from vlmkit.models.llms.beacon.schedule import RatioSchedule, interleave_layout
from vlmkit.models.llms.beacon.window import BEACON_PARAMS, KVMemory, run_window
from vlmkit.models.llms.causal_lm import CausalLM
from vlmkit.models.streamed_embeddings import RowEmbeddings, StreamedEmbeddings
from vlmkit.models.weight_sources import mark_loaded, weight_source
from vlmkit.registry import LLMS



def _copy_with_source(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters keep the originals' weight sources (deepcopy drops them)."""
    clone = copy.deepcopy(module)
    for mine, theirs in zip(clone.parameters(), module.parameters()):
        if weight_source(theirs):
            mark_loaded([mine], weight_source(theirs))
    return clone


@LLMS.register("beacon_qwen2", aliases=["video_xl_qwen2"])
class BeaconQwen2(CausalLM):
    """Qwen2 with visual summary tokens (Activation Beacon as used by Video-XL).

    Args (besides those of ``causal_lm``; LoRA is not supported here):
        compress: turn the compression on; off, the model is exactly the plain Qwen2.
        window: visual tokens per window (1440 = 10 frames of 144 tokens); every ratio must divide it.
        ratios: compression ratios to mix in training (0 keeps a window uncompressed).
        eval_ratios: ratios used in eval mode (e.g. [16] for needle-in-a-haystack); null = ``ratios``.
        ratio_mix: 'step-random' | 'instance-random' | 'sequence' | 'adapt' (published 'adapt-X' is 'adapt'
            with ``adapt_margin: X``).
        adapt_margin: tokens expected after the input, for 'adapt'.
        beacon_params: which attention projections have separate summary-token copies (q, k, v, o).
        seed: seed of the ratio sampler (numpy default_rng, as published).
    """

    reads_visual_mask = True
    # why run.strategy.activation_checkpointing: [llm_layers] cannot wrap the decoder layers (its own switch can)
    layer_wrappers_bypassed = ("calls each decoder layer's submodules directly in its compressing windows, so a "
                               "wrapper around the layer would be bypassed")

    def __init__(self, pretrained: Optional[str] = None, config: Optional[LMConfig] = None,
                 arch: Optional[str] = "qwen2",
                 tokenizer: Optional[str] = None, attn_implementation: AttnImplementation = "auto",
                 freeze: bool = False, dtype: DType = "auto", gradient_checkpointing: bool = False,
                 trust_remote_code: bool = False, compress: bool = True, window: int = 1440,
                 ratios: list[int] = (2, 4, 8), eval_ratios: Optional[list[int]] = None,
                 ratio_mix: Literal["step-random", "instance-random", "sequence", "adapt"] = "step-random",
                 adapt_margin: int = 0, beacon_params: list[str] = ("q", "k", "v"), seed: int = 42):
        super().__init__(pretrained=pretrained, config=config, arch=arch, tokenizer=tokenizer,
                         attn_implementation=attn_implementation, freeze=freeze, dtype=dtype,
                         gradient_checkpointing=gradient_checkpointing, lora=None,
                         trust_remote_code=trust_remote_code)
        where = type(self).__name__
        if self.base_config.model_type != "qwen2":
            raise ConfigError(f"{where}.arch", f"the compressing wrapper is built on Qwen2 decoder layers, got "
                                               f"model type {self.base_config.model_type!r}")
        if getattr(self.base_config, "use_sliding_window", False):
            raise ConfigError(f"{where}.config.use_sliding_window", "sliding-window attention is not supported "
                                                                    "with summary tokens; set it to false")
        if window <= 0:
            raise ConfigError(f"{where}.window", f"the window must be a positive token count, got {window}")
        for key, values in (("ratios", list(ratios)), ("eval_ratios", list(eval_ratios or [1]))):
            if not values or any(r < 0 for r in values):
                raise ConfigError(f"{where}.{key}", f"compression ratios must be a non-empty list of integers "
                                                    f">= 0, got {values}")
        unknown = set(beacon_params) - set(BEACON_PARAMS)
        if unknown:
            raise ConfigError(f"{where}.beacon_params", f"unknown projection(s) {sorted(unknown)}; accepted: "
                                                        f"{list(BEACON_PARAMS)}")
        self.compress, self.window = compress, window
        self.ratios, self.eval_ratios = list(ratios), list(eval_ratios) if eval_ratios else None
        self.ratio_mix, self.adapt_margin = ratio_mix, adapt_margin
        self.rng = np.random.default_rng(seed)
        self.checkpointing = gradient_checkpointing
        self._add_beacon_parameters(list(beacon_params), freeze)

    # ------------------------------------------------------------------ parameters
    @property
    def decoder(self) -> nn.Module:
        return self.model.model

    def _add_beacon_parameters(self, names: list[str], freeze: bool) -> None:
        """Summary-token copies of the chosen projections (named as in Video-XL checkpoints:
        ``self_attn.beacon_q_proj``) and the summary-token embedding, initialised from the eos embedding. The copies
        hold values of the checkpoint the originals came from, and are recorded as read from it."""
        for layer in self.decoder.layers:
            for name in names:
                original = getattr(layer.self_attn, f"{name}_proj")
                setattr(layer.self_attn, f"beacon_{name}_proj", _copy_with_source(original))
        table = self.model.get_input_embeddings().weight
        embedding = nn.Embedding(1, table.shape[1], device=table.device, dtype=table.dtype)
        eos = self.base_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        if eos is None:
            raise ConfigError(f"{type(self).__name__}.config.eos_token_id",
                              "the summary-token embedding is initialised from the eos embedding; set eos_token_id")
        with torch.no_grad():
            if table.device.type != "meta":
                embedding.weight.copy_(table[eos][None])
        if weight_source(table):
            mark_loaded([embedding.weight], weight_source(table))
        self.decoder.beacon_embed_tokens = embedding
        if freeze:
            self.model.requires_grad_(False)

    @property
    def streams_visual(self) -> bool:
        """Whether ``inputs_embeds`` may come as ``StreamedEmbeddings`` (read window by window)."""
        return self.compress

    def packing_problem(self) -> Optional[str]:
        if self.compress:
            return ("it is Video-XL's compressing LLM (beacon_qwen2 with compress: true): it reads each row window by "
                    "window and compresses the visual tokens it finds, so a row must hold one conversation; packing "
                    "needs a causal_lm LLM (or beacon_qwen2 with compress: false, a plain Qwen2)")
        return super().packing_problem()

    def active_ratios(self) -> list[int]:
        return self.ratios if self.training or self.eval_ratios is None else self.eval_ratios

    # ------------------------------------------------------------------ training / scoring
    def forward(self, inputs_embeds: torch.Tensor | StreamedEmbeddings, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, visual_mask: Optional[torch.Tensor] = None,
                **kwargs: Any) -> Any:
        """Loss over labels != -100 (token-weighted over windows) and, outside training, logits at every input
        position (summary positions excluded). Training returns no logits: they are never needed in full."""
        if not self._compressing(visual_mask):
            return super().forward(_materialized(inputs_embeds), attention_mask=attention_mask, labels=labels,
                                   **kwargs)
        if kwargs:
            raise ValueError(f"{type(self).__name__}: unsupported arguments with compression on: {sorted(kwargs)}")
        batch, length = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        want_logits = not self.training
        logits = (torch.zeros(batch, length, self.base_config.vocab_size, dtype=inputs_embeds.dtype,
                              device=inputs_embeds.device) if want_logits else None)
        loss_sum, count = torch.zeros((), device=inputs_embeds.device), 0
        for row in range(batch):
            valid = _valid_positions(attention_mask[row])
            row_labels = None if labels is None else labels[row, valid]
            out = self._compressed_row(_row(inputs_embeds, row, valid), visual_mask[row, valid], row_labels,
                                       want_logits)
            if want_logits:
                logits[row, valid] = out["logits"].to(logits.dtype)
            if row_labels is not None:
                loss_sum, count = loss_sum + out["loss_sum"], count + out["count"]
        loss = loss_sum / max(count, 1) if labels is not None else None
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def _compressing(self, visual_mask: Optional[torch.Tensor]) -> bool:
        return self.compress and visual_mask is not None and bool(visual_mask.any())

    def _compressed_row(self, embeds: torch.Tensor | RowEmbeddings, visual: torch.Tensor,
                        labels: Optional[torch.Tensor], want_logits: bool, stop: Optional[int] = None) -> dict:
        """One sample through the windows: its embeddings (L, D), or a stream of them read window by window.
        ``stop``: process only positions [0, stop) (generation)."""
        read = _reader(embeds)
        length = visual.shape[0] if stop is None else stop
        where = torch.nonzero(visual).flatten()
        first, last = (int(where[0]), int(where[-1]) + 1) if where.numel() else (length, length)
        shifted = None
        if labels is not None:  # each position carries its own next-token target, so windows need no overlap
            shifted = torch.cat([labels[1:], labels.new_full((1,), IGNORE_INDEX)])
        memory = KVMemory(len(self.decoder.layers))
        schedule = RatioSchedule(self.active_ratios(), self.ratio_mix, self.rng, self.window,
                                 self.base_config.max_position_embeddings, length, self.adapt_margin, self.training)
        out = {"loss_sum": torch.zeros((), device=visual.device), "count": 0, "logits": [], "windows": [],
               "hidden": None}
        remainder = 0
        for start, end, compressed in _segments(length, first, last, self.window, self.training):
            chunk = read(start, end)[None]
            beacon_mask, keep = None, "all"
            if compressed:
                ratio = schedule.next(end - start)
                if ratio > 0:
                    raw_mask, remainder = interleave_layout(end - start, ratio, remainder)
                    beacon_mask = raw_mask
                    chunk = self._with_beacons(chunk, beacon_mask)
                    keep = "beacons"
                out["windows"].append((end - start, ratio))
            hidden = run_window(self.decoder, chunk, memory, beacon_mask, keep,
                                checkpointing=self.checkpointing and self.training)
            if beacon_mask is not None:
                hidden = hidden[:, ~beacon_mask.to(hidden.device)]
            out["hidden"] = hidden
            if shifted is not None:
                targets = shifted[start:end]
                supervised = targets != IGNORE_INDEX
                if bool(supervised.any()):
                    chunk_logits = self.model.lm_head(hidden[0, supervised])
                    out["loss_sum"] = out["loss_sum"] + F.cross_entropy(chunk_logits.float(), targets[supervised],
                                                                        reduction="sum")
                    out["count"] += int(supervised.sum())
            if want_logits:
                out["logits"].append(self.model.lm_head(hidden[0]))
        if want_logits:
            out["logits"] = torch.cat(out["logits"])
        out["memory"] = memory
        return out

    def _with_beacons(self, chunk: torch.Tensor, beacon_mask: torch.Tensor) -> torch.Tensor:
        """The window's embeddings with the summary-token embedding at the slots of ``beacon_mask``."""
        beacon_mask = beacon_mask.to(chunk.device)
        beacon = self.decoder.beacon_embed_tokens.weight[0].to(chunk.dtype)
        full = beacon.expand(1, beacon_mask.numel(), chunk.shape[-1])
        raw_index = torch.nonzero(~beacon_mask).flatten()
        return full.index_copy(1, raw_index, chunk)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor | StreamedEmbeddings, attention_mask: Optional[torch.Tensor] = None,
                 visual_mask: Optional[torch.Tensor] = None, **gen_kwargs: Any) -> torch.Tensor:
        """New token ids (B, n_new). The prompt is compressed into a KV cache (all but its last token), then
        transformers' ``generate`` continues from that cache with the plain Qwen2 (the text after the video
        uses no summary tokens). Rows are generated one by one (each has its own compressed length)."""
        if not self._compressing(visual_mask):
            return super().generate(_materialized(inputs_embeds), attention_mask, **gen_kwargs)
        from transformers import DynamicCache

        batch, length = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=inputs_embeds.device)
        gen_kwargs = self._generation_defaults(gen_kwargs)
        rows = []
        for row in range(batch):
            valid = _valid_positions(attention_mask[row])
            embeds, visual = _row(inputs_embeds, row, valid), visual_mask[row, valid]
            if bool(visual[-1]):
                raise DataError("generate: the prompt ends with visual tokens; the compressing LLM needs at least "
                                "one text token after the video (the template's generation prompt)")
            length = visual.shape[0]
            memory = self._compressed_row(embeds, visual, None, False, stop=length - 1)["memory"]
            last = _reader(embeds)(length - 1, length)  # a stream is read on from where the windows stopped
            cache = DynamicCache(config=self.base_config)
            for i in range(len(self.decoder.layers)):
                cache.update(*memory.get(i), i)
            cached = len(memory)
            # generate() reads only the embeddings past the cache: the first ``cached`` rows are placeholders.
            feed = torch.cat([last.new_zeros(cached, last.shape[-1]), last])[None]
            mask = torch.ones(1, cached + 1, dtype=torch.long, device=last.device)
            rows.append(self.model.generate(inputs_embeds=feed, attention_mask=mask, past_key_values=cache,
                                            **gen_kwargs)[0])
        pad = gen_kwargs.get("pad_token_id", 0)
        width = max(r.numel() for r in rows)
        return torch.stack([F.pad(r, (0, width - r.numel()), value=pad) for r in rows])


def _materialized(inputs_embeds: torch.Tensor | StreamedEmbeddings) -> torch.Tensor:
    return inputs_embeds.materialize() if isinstance(inputs_embeds, StreamedEmbeddings) else inputs_embeds


def _row(inputs_embeds: torch.Tensor | StreamedEmbeddings, row: int,
         valid: torch.Tensor) -> torch.Tensor | RowEmbeddings:
    """One row's valid positions: a (L, D) tensor, or a stream of them counted from the first valid one."""
    if isinstance(inputs_embeds, StreamedEmbeddings):
        return inputs_embeds.row(row, offset=int(valid[0]))
    return inputs_embeds[row, valid]


def _reader(embeds: torch.Tensor | RowEmbeddings):
    """``read(start, end)`` -> the embeddings of positions [start, end)."""
    return embeds.span if isinstance(embeds, RowEmbeddings) else (lambda start, end: embeds[start:end])


def _valid_positions(mask_row: torch.Tensor) -> torch.Tensor:
    """Indices of one row's valid tokens, which must form one contiguous run (left or right padding)."""
    index = torch.nonzero(mask_row.bool()).flatten()
    if index.numel() == 0:
        raise DataError("a batch row has no valid tokens (attention_mask is all 0)")
    if int(index[-1] - index[0]) + 1 != index.numel():
        raise DataError("attention_mask rows must be one contiguous run of 1s (left or right padding)")
    return index


def _segments(length: int, first: int, last: int, window: int, training: bool):
    """(start, end, compressed) chunks: the text before the video whole, the visual span [first, last) in
    windows (the last one ends at ``last``), the rest in uncompressed chunks of ``window`` tokens. In training a
    visual window reaching the end of the sequence stays uncompressed, as published (its summaries would never
    be read)."""
    if first > 0:
        yield 0, first, False
    start = first
    while start < min(last, length):
        end = min(start + window, last, length)
        yield start, end, not (training and end == length)
        start = end
    while start < length:
        end = min(start + window, length)
        yield start, end, False
        start = end
