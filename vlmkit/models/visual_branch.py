"""One visual branch: an encoder followed by adapter/pooler stages, ending at the LLM's width.

Most encoders read pixel frames. An encoder with ``reads_pixels = False`` (precomputed features) reads
tensors from the batch instead, under the keys it lists in ``batch_keys``; a stage that needs per-sample
conditioning from the batch (LLMVA-GEBC's boundary reference points) lists its keys the same way.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional

import torch
from torch import nn

from vlmkit.contracts import normalise_frames
from vlmkit.protocols import with_stage_defaults
from vlmkit.registry import ENCODERS, STAGES
from vlmkit.schema import Component, ComponentList, Runtime


class VisualBranch(nn.Module):
    """``encoder`` then ``stages`` (Q-Formers, projectors, poolers, in order); widths are chained automatically.

    Every stage gets the previous stage's width as ``in_dim``; a stage that asks for ``out_dim`` (a projector)
    gets the LLM's hidden size. The last stage must end at that width.

    ``chunk_frames``: encode and project the frames this many at a time (each chunk moved to the encoder's
    device on its own), so that encoder activations never span the whole video: the streaming path for
    hour-long input (Video-XL). Only for branches whose encoder and stages treat frames independently.
    ``stream`` yields those chunks one by one, for a composite that feeds them to the LLM as it reads them.
    """

    def __init__(self, encoder: Component("encoders"), stages: ComponentList("stages") = (),
                 chunk_frames: Optional[int] = None,
                 *, llm_width: Runtime[int], path: Runtime[str] = "model.branches[0]"):
        super().__init__()
        # a user's plain nn.Module gets the members it may leave out (vlmkit.protocols); what cannot be guessed
        # (out_dim, out_tokens) is required here, by name, before anything runs
        self.encoder = with_stage_defaults(ENCODERS.build(encoder, path=f"{path}.encoder"), f"{path}.encoder",
                                           encoder=True)
        built, width = [], self.encoder.out_dim
        self.stage_paths = [f"{path}.stages[{i}]" for i in range(len(stages))]
        for i, stage_cfg in enumerate(stages):
            # projectors also take the LLM's width as out_dim; other stages keep theirs
            stage = STAGES.build_offering(stage_cfg, self.stage_paths[i], in_dim=width, out_dim=llm_width)
            built.append(with_stage_defaults(stage, self.stage_paths[i]))
            width = stage.out_dim
        if width != llm_width:
            raise ValueError(f"{path}: the branch ends at width {width} but the LLM's hidden size is {llm_width}; "
                             f"end the stages with a projector (linear, mlp_gelu, llava_projector)")
        self.stages = nn.ModuleList(built)
        self.chunk_frames = chunk_frames
        if chunk_frames is not None and (chunk_frames <= 0 or not self._frame_local(chunk_frames)):
            raise ValueError(f"{path}.chunk_frames: chunked encoding needs a positive chunk ({chunk_frames} given) "
                             f"and an encoder and stages that keep one output frame per input frame (no temporal "
                             f"pooling or video Q-Former); leave chunk_frames null for this branch")

    def _frame_local(self, chunk: int) -> bool:
        for frames in (chunk, 2 * chunk + 1):
            t, n = self.encoder.out_tokens(self.encoder.tokens_per_frame, frames)
            steps = [t]
            for stage in self.stages:
                t, n = stage.out_tokens(n, t)
                steps.append(t)
            if any(step != frames for step in steps):
                return False
        return True

    @property
    def streams(self) -> bool:
        """Whether ``stream`` can give this branch's tokens chunk by chunk (pixels, chunk_frames, no batch
        entries that would have to be split per sample)."""
        return self.chunk_frames is not None and self.reads_pixels and not self.batch_keys

    @property
    def reads_pixels(self) -> bool:
        return self.encoder.reads_pixels

    @property
    def preprocessing(self):
        """The encoder's pixel contract; None for a branch fed with precomputed features."""
        return self.encoder.preprocessing if self.reads_pixels else None

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """Batch entries (besides pixels and text) that the encoder or a stage reads."""
        keys = [*self.encoder.batch_keys]
        for stage in self.stages:
            keys += [k for k in stage.batch_keys if k not in keys]
        return tuple(keys)

    @staticmethod
    def _take(component: Any, inputs: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        keys = component.batch_keys
        missing = [k for k in keys if inputs is None or k not in inputs]
        if missing:
            given = sorted(inputs) if inputs else []
            raise ValueError(f"{type(component).__name__} reads batch entries {list(keys)} but {missing} "
                             f"{'is' if len(missing) == 1 else 'are'} missing from the batch (given: {given})")
        return {k: inputs[k] for k in keys}

    def tokens(self, frames: int) -> int:
        """Visual tokens this branch gives one video of ``frames`` frames (no forward pass needed)."""
        t, n = self.prefix_tokens(len(self.stages), frames)
        return t * n

    def prefix_tokens(self, depth: int, frames: int) -> tuple[int, int]:
        """(T, N) per video after the encoder and the first ``depth`` stages."""
        t, n = self.encoder.out_tokens(self.encoder.tokens_per_frame, frames)
        for stage in self.stages[:depth]:
            t, n = stage.out_tokens(n, t)
        return t, n

    def prefix_width(self, depth: int) -> int:
        """Token width after the encoder and the first ``depth`` stages."""
        return self.stages[depth - 1].out_dim if depth else self.encoder.out_dim

    def encode_prefix(self, pixels: torch.Tensor, depth: int) -> torch.Tensor:
        """(B, T, C, H, W) pixels -> (B, T', N', D') after the encoder and the first ``depth`` stages: what the
        frozen-feature cache stores (those stages read no text and no batch entries)."""
        return self._stages(self._encode(pixels), None, None, None, stop=depth)

    def from_cached(self, features: torch.Tensor, depth: int, text_ids: Optional[torch.Tensor] = None,
                    text_mask: Optional[torch.Tensor] = None, inputs: Optional[Mapping[str, Any]] = None,
                    frames: Optional[int] = None) -> torch.Tensor:
        """(B, T', N', D') features cached after the encoder and the first ``depth`` stages -> (B, K, llm_width):
        the stages after them, as ``forward`` would run them on the pixels."""
        if frames is not None:
            expected = (*self.prefix_tokens(depth, frames), self.prefix_width(depth))
            if features.dim() != 4 or tuple(features.shape[1:]) != expected:
                raise ValueError(f"cached features of shape {tuple(features.shape)} reached a branch that expects "
                                 f"(B, T, N, D) with (T, N, D)={expected} after its encoder and {depth} stage(s); "
                                 f"rebuild the cache with `vlmkit cache-features`")
        x = self._stages(features, text_ids, text_mask, inputs, start=depth)
        return x.reshape(x.shape[0], -1, x.shape[-1])

    def forward(self, pixels: Optional[torch.Tensor] = None, text_ids: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None,
                inputs: Optional[Mapping[str, Any]] = None, frames: Optional[int] = None) -> torch.Tensor:
        """(B, T, C, H, W) pixels (or the batch ``inputs`` a feature encoder reads) -> (B, K, llm_width).

        ``frames``: the frames per video the model was built for; the encoder's output is checked against it.
        """
        if self.chunk_frames is not None and self.reads_pixels and pixels.shape[1] > self.chunk_frames:
            return self._forward_chunked(pixels, text_ids, text_mask, inputs, frames)
        x = self._encode(pixels) if self.reads_pixels else self.encoder(self._take(self.encoder, inputs))
        if frames is not None:
            expected = self.encoder.out_tokens(self.encoder.tokens_per_frame, frames)
            if tuple(x.shape[1:3]) != tuple(expected):
                raise ValueError(f"{type(self.encoder).__name__} gave (T, N)={tuple(x.shape[1:3])} per sample but "
                                 f"the model was built for (T, N)={tuple(expected)} ({frames} frames per video)")
        x = self._stages(x, text_ids, text_mask, inputs)
        return x.reshape(x.shape[0], -1, x.shape[-1])

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """The encoder's output; uint8 pixels (as the datasets deliver them) are scaled and normalised first, on
        the device they are on, with the encoder's preprocessing."""
        if pixels.dtype == torch.uint8:
            pixels = normalise_frames(pixels, self.encoder.preprocessing)
        return self.encoder(pixels)

    def _stages(self, x: torch.Tensor, text_ids, text_mask, inputs, start: int = 0,
                stop: Optional[int] = None) -> torch.Tensor:
        for stage, where in zip(self.stages[start:stop], self.stage_paths[start:stop]):
            extra = self._take(stage, inputs)
            if stage.reads_text:
                extra.update(text_ids=text_ids, text_mask=text_mask)
            announced = stage.out_tokens(x.shape[2], x.shape[1]) if x.dim() == 4 else None
            x = stage(x, **extra)
            _check_stage_output(stage, where, x, announced)
        return x

    def _forward_chunked(self, pixels: torch.Tensor, text_ids, text_mask, inputs, frames) -> torch.Tensor:
        return torch.cat(list(self.stream(pixels, text_ids, text_mask, inputs, frames)), dim=1)

    def stream(self, pixels: torch.Tensor, text_ids: Optional[torch.Tensor] = None,
               text_mask: Optional[torch.Tensor] = None, inputs: Optional[Mapping[str, Any]] = None,
               frames: Optional[int] = None) -> Iterator[torch.Tensor]:
        """(B, T, C, H, W) pixels -> (B, k, llm_width) tokens of ``chunk_frames`` frames at a time, in order;
        each chunk is encoded only when asked for."""
        if self.chunk_frames is None or not self.reads_pixels:
            raise ValueError("a branch streams its tokens only with chunk_frames set and an encoder reading pixels")
        if frames is not None and pixels.shape[1] != frames:
            raise ValueError(f"got {pixels.shape[1]} frames per video but the model was built for {frames}")
        weights = next(self.encoder.parameters(), None)
        device = weights.device if weights is not None else pixels.device
        for start in range(0, pixels.shape[1], self.chunk_frames):
            chunk = pixels[:, start:start + self.chunk_frames].to(device, non_blocking=True)
            x = self._stages(self._encode(chunk), text_ids, text_mask, inputs)
            yield x.reshape(x.shape[0], -1, x.shape[-1])




def _check_stage_output(stage: nn.Module, where: str, x: torch.Tensor, announced: Optional[tuple[int, int]]) -> None:
    """A stage's output must be ``(B, T', N', out_dim)`` with the ``(T', N')`` its ``out_tokens`` announced: the
    visual-token count (and so the placeholders the data side wrote) was computed from it."""
    label = f"{where} ({type(stage).__name__})"
    if x.dim() != 4:
        raise ValueError(f"{label} returned a {x.dim()}-d tensor of shape {tuple(x.shape)}; stages hand on "
                         f"(B, T, N, D) tokens (keep the frame axis, of size 1 after pooling over time)")
    if announced is not None and tuple(x.shape[1:3]) != tuple(announced):
        raise ValueError(f"{label} returned (T, N)={tuple(x.shape[1:3])} but its out_tokens announced "
                         f"{tuple(announced)} for that input; out_tokens(in_tokens, in_frames) must return the "
                         f"(frames, tokens per frame) its forward gives: the number of visual tokens is computed "
                         f"from it before anything runs")
    if x.shape[-1] != stage.out_dim:
        raise ValueError(f"{label} returned width {x.shape[-1]} but declares out_dim={stage.out_dim}; the next "
                         f"stage was built for out_dim")
