"""InternVideo2's ViT as VideoGPT+ uses it: a chunked video encoder over groups of ``chunk_size`` frames.

Architecture of InternVideo2-1B (``pretrain_internvideo2_1b_patch14_224``): a Conv3d tubelet patch embedding,
a CLS token, a learned position table for one chunk, then pre-norm blocks with RMSNorm, bias-free qkv with
RMS q/k normalisation over the full width, LayerScale (``gamma``) and a GELU MLP (width 1408 * 48/11 = 6144).
VideoGPT+ reads the output of the second-to-last block (``x_vis_return_idx=-2``) and drops the CLS token, so
each chunk of 4 frames at 224 px gives 4 x 16 x 16 = 1024 tokens, i.e. 256 per frame.

Module names follow the published checkpoint (``InternVideo2-stage2_1b-224p-f4.pt``: ``vision_encoder.`` +
``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``img_pos_embed``, ``blocks.N.{norm1, attn.qkv, attn.q_norm,
attn.k_norm, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``), so its tensors load by name.  The
distillation heads of that checkpoint (``clip_projector``, ``clip_decoder``, ``final_clip_decoder``,
``clip_pos_embed``, ``clip_img_pos_embed``) are not used for features and are skipped on load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vlmkit.contracts import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.models.stage import DType, VisualStage, resolve_dtype
from vlmkit.models.weight_sources import recording_loads
from vlmkit.registry import ENCODERS
from vlmkit.schema import NonNegative, Positive, Struct

INTERNVIDEO2_PRESETS = {
    "internvideo2_1b_p14_224": dict(embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, patch_size=14,
                                    img_size=224, tubelet_size=1),
}


@dataclass(frozen=True)
class InternVideo2Architecture:
    """The ``config:`` of the InternVideo2 encoder: architecture values (over an ``arch`` preset's)."""

    embed_dim: Optional[Positive[int]] = None
    depth: Optional[Positive[int]] = None
    num_heads: Optional[Positive[int]] = None
    mlp_ratio: Optional[Positive[float]] = None
    patch_size: Optional[Positive[int]] = None
    img_size: Optional[Positive[int]] = None
    tubelet_size: Optional[Positive[int]] = None
    in_chans: Optional[Positive[int]] = None
    init_values: Optional[NonNegative[float]] = None


_CONFIG_KEYS = {f.name for f in fields(InternVideo2Architecture)}
# Parts of the stage-2 checkpoint outside the feature path (CLIP distillation heads, the text side).
_UNUSED = re.compile(r"^(clip_projector|clip_decoder|final_clip_decoder|clip_pos_embed|clip_img_pos_embed)\b")


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention with a fused bias-free qkv and RMS-normalised q and k (over all heads)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ConfigError("internvideo2.config", f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_norm = nn.RMSNorm(dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k = self.q_norm(q), self.k_norm(k)
        heads = [t.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2) for t in (q, k, v)]
        out = F.scaled_dot_product_attention(*heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, init_values: float):
        super().__init__()
        self.norm1 = nn.RMSNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.RMSNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch_size: int, tubelet_size: int):
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, t*h*w, D), time-major as the position table is laid out."""
        return self.proj(x).flatten(2).transpose(1, 2)


@ENCODERS.register("internvideo2", aliases=["internvideo2_1b"])
class InternVideo2Encoder(VisualStage):
    """Frames ``(B, T, C, H, W)`` -> ``(B, T, N, D)``: T/chunk_size chunks encoded independently.

    Args:
        pretrained: a local InternVideo2 checkpoint (.pt/.pth with 'model'/'module' or a bare state dict,
            keys with or without 'vision_encoder.', or a .safetensors file); loaded strictly.
        arch: a named full-size preset (internvideo2_1b_p14_224) for meta builds and shape checks.
        config: architecture values (embed_dim, depth, num_heads, mlp_ratio, patch_size, img_size,
            tubelet_size, in_chans, init_values); with ``arch`` they override the preset (tiny test towers).
        chunk_size: frames per chunk (the checkpoint's num_frames: 4 for the -f4 checkpoint).
        select_block: which block's output to return (-2 = second-to-last, VideoGPT+'s x_vis_return_idx).

    The CLS token is always dropped (as VideoGPT+ does), so each frame gives (img_size / patch_size)^2 tokens.
    """

    def __init__(self, pretrained: Optional[str] = None, arch: Optional[str] = None,
                 config: Optional[Struct(InternVideo2Architecture)] = None,
                 chunk_size: int = 4, select_block: int = -2, freeze: bool = True,
                 dtype: DType = "float32", gradient_checkpointing: bool = False) -> None:
        super().__init__()
        values = self._architecture(arch, config, pretrained)
        self.embed_dim = self.out_dim = int(values["embed_dim"])
        self.depth, self.patch_size = int(values["depth"]), int(values["patch_size"])
        self.image_size, self.tubelet_size = int(values["img_size"]), int(values["tubelet_size"])
        self.in_chans = int(values.get("in_chans", 3))
        if chunk_size < 1 or chunk_size % self.tubelet_size:
            raise ConfigError("internvideo2.chunk_size", f"chunk_size must be a positive multiple of tubelet_size "
                                                         f"{self.tubelet_size}, got {chunk_size}")
        if not -self.depth <= select_block < self.depth:
            raise ConfigError("internvideo2.select_block",
                              f"select_block {select_block} is outside the {self.depth} blocks "
                              f"(-{self.depth}..{self.depth - 1})")
        self.chunk_size = chunk_size
        self.blocks_used = select_block % self.depth + 1  # later blocks are never run
        self.gradient_checkpointing = gradient_checkpointing
        grid = self.image_size // self.patch_size
        self.patches_per_frame = grid * grid
        chunk_tokens = (chunk_size // self.tubelet_size) * self.patches_per_frame

        self.patch_embed = PatchEmbed(self.in_chans, self.embed_dim, self.patch_size, self.tubelet_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, chunk_tokens + 1, self.embed_dim))
        # The checkpoint's separate table for single images (use_image); kept so its keys load.
        self.img_pos_embed = nn.Parameter(torch.zeros(1, self.patches_per_frame + 1, self.embed_dim))
        self.blocks = nn.ModuleList(
            Block(self.embed_dim, int(values["num_heads"]), float(values["mlp_ratio"]),
                  float(values.get("init_values", 1e-5))) for _ in range(self.depth))
        self._init_weights()
        self.to(resolve_dtype(dtype))
        if pretrained is not None:
            with recording_loads(self, f"{pretrained} (internvideo2)"):
                self.load_checkpoint(pretrained)
        if freeze:
            self.freeze()

    @staticmethod
    def _architecture(arch: Optional[str], config: Optional[dict], pretrained: Optional[str]) -> dict[str, Any]:
        if arch is None and config is None:
            raise ConfigError("internvideo2", f"set 'arch' (one of {', '.join(INTERNVIDEO2_PRESETS)}) or 'config'"
                                              f"{' to describe the checkpoint' if pretrained else ''}")
        values: dict[str, Any] = {}
        if arch is not None:
            if arch not in INTERNVIDEO2_PRESETS:
                raise ConfigError("internvideo2.arch", f"unknown arch '{arch}'; accepted: "
                                                       f"{', '.join(INTERNVIDEO2_PRESETS)}")
            values.update(INTERNVIDEO2_PRESETS[arch])
        unknown = sorted(set(config or {}) - _CONFIG_KEYS)
        if unknown:
            raise ConfigError("internvideo2.config", f"unknown key(s) {unknown}; accepted: {sorted(_CONFIG_KEYS)}")
        values.update(config or {})
        missing = sorted({"embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "img_size",
                          "tubelet_size"} - set(values))
        if missing:
            raise ConfigError("internvideo2.config", f"missing {missing} (or give 'arch' to start from a preset)")
        return values

    def _init_weights(self) -> None:
        if self.cls_token.is_meta:
            return
        for param in (self.cls_token, self.pos_embed, self.img_pos_embed):
            nn.init.trunc_normal_(param, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ checkpoint
    def load_checkpoint(self, path: str) -> None:
        """Load the published weights by name; anything missing or unexpected (besides unused heads) raises."""
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for wrapper in ("model", "module"):
                if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                    state = state[wrapper]
                    break
        self.load_state_dict(internvideo2_state_dict(state, self), strict=True)

    # ------------------------------------------------------------------ contract
    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_frame

    @property
    def preprocessing(self) -> ImagePreprocessing:
        # VideoGPT+'s VideoTrainProcessor: cv2.resize (bilinear) to size x size, no crop, ImageNet mean/std.
        return ImagePreprocessing(size=self.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                  interpolation="bilinear", crop=False)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        if in_frames % self.chunk_size:
            raise ConfigError("internvideo2.chunk_size", f"{in_frames} frames do not split into chunks of "
                                                         f"{self.chunk_size}; sample a multiple of {self.chunk_size}")
        return in_frames // self.tubelet_size, self.patches_per_frame

    # ------------------------------------------------------------------ forward
    def encode_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """(K, C, chunk, H, W) -> (K, 1 + t*h*w, D): the selected block's output, CLS first."""
        x = self.patch_embed(chunks)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks[:self.blocks_used]:
            x = checkpoint(block, x, use_reentrant=False) if self.gradient_checkpointing and self.training \
                else block(x)
        return x

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        expected = (self.in_chans, self.image_size, self.image_size)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(f"internvideo2 expects frames (B, T, C, H, W) with (C, H, W)={expected}, got "
                             f"{tuple(frames.shape)}")
        b, t = frames.shape[:2]
        self.out_tokens(self.patches_per_frame, t)
        chunks = frames.reshape(b * (t // self.chunk_size), self.chunk_size, *expected).transpose(1, 2)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            x = self.encode_chunks(chunks.to(self.patch_embed.proj.weight.dtype))
        x = x[:, 1:]  # CLS dropped: the rest is time-major, one grid per frame
        return x.reshape(b, t // self.tubelet_size, self.patches_per_frame, self.embed_dim)


def internvideo2_state_dict(state: dict[str, torch.Tensor], encoder: nn.Module) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors renamed for ``InternVideo2Encoder``: the 'vision_encoder.' prefix removed, the
    distillation heads and the text side dropped; a position table for another chunk length raises."""
    prefix = "vision_encoder."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    kept = {k: v for k, v in state.items() if not _UNUSED.match(k)}
    expected = encoder.state_dict()
    if "pos_embed" in kept and kept["pos_embed"].shape != expected["pos_embed"].shape:
        raise ConfigError("internvideo2.chunk_size",
                          f"the checkpoint's pos_embed {tuple(kept['pos_embed'].shape)} is for another chunk "
                          f"length than {tuple(expected['pos_embed'].shape)}; set chunk_size to the checkpoint's "
                          f"num_frames (4 for InternVideo2-stage2_1b-224p-f4)")
    return kept
