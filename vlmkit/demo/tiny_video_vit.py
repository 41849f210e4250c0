"""A small video ViT trained from scratch (the CPU demo's encoder): tubelet patches over frames and their
differences, joint space-time attention.

Why these choices (measured on the synthetic shape videos, see the demo notes): frame-difference channels
make motion visible to the very first layer, and 2-frame tubelets halve the tokens (and the step time)
without losing direction of motion. Output tokens are ``(B, T / tubelet, (size / patch)^2, width)``.
"""
from __future__ import annotations

import torch
from torch import nn

from vlmkit.contracts import ImagePreprocessing
from vlmkit.models.stage import VisualStage
from vlmkit.registry import ENCODERS


@ENCODERS.register("tiny_video_vit")
class TinyVideoViT(VisualStage):
    """Random-init ViT over (frame, frame - previous frame) tubelets.

    Args:
        image_size: input side in pixels (frames are resized to it, no crop).
        patch_size: side of a square patch; image_size must be a multiple.
        tubelet: frames per token along time; the number of frames must be a multiple.
        width, depth, heads, mlp_ratio: transformer size.
        frame_difference: add each frame's difference to the previous one as 3 more input channels
            (zero for the first frame).
        max_frames: longest video the temporal position table covers.
        init_std: std of the normal init of position embeddings and linear weights.
        local_mixing: kernel size of a convolution over each tubelet's grid of patch tokens, added to
            the patch embeddings before the transformer (0: none). An object at a random offset straddles up to four
            patches; this hands every patch its neighbours' fragments from the first layer (as CPVT's positional
            encoding generator and the early-convolution ViTs do), so each token sees the whole object. (Seeing is not
            carrying: linear probes still read an object's shape from one token far less well than its colour; see
            docs/demo_recipe.md.)
        local_mixing_depthwise: mix each channel only with the same channel of its neighbours (groups = width);
            False: a full convolution (every channel from every neighbouring channel).
        freeze: no gradients (for a stage-2 run that keeps a trained encoder fixed).
    """

    def __init__(self, image_size: int = 32, patch_size: int = 8, tubelet: int = 2, width: int = 128, depth: int = 3,
                 heads: int = 4, mlp_ratio: float = 2.0, frame_difference: bool = True, max_frames: int = 16,
                 init_std: float = 0.02, local_mixing: int = 0, local_mixing_depthwise: bool = True,
                 freeze: bool = False):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"tiny_video_vit: image_size {image_size} must be a multiple of patch_size {patch_size}")
        if tubelet < 1 or max_frames % tubelet:
            raise ValueError(f"tiny_video_vit: tubelet must be >= 1 and divide max_frames {max_frames}, got {tubelet}")
        if local_mixing < 0 or (local_mixing and local_mixing % 2 == 0):
            raise ValueError(f"tiny_video_vit: local_mixing must be 0 (off) or an odd kernel size, got {local_mixing}")
        if width % heads:
            raise ValueError(f"tiny_video_vit: width {width} must be a multiple of heads {heads}")
        self.image_size, self.patch_size, self.tubelet = image_size, patch_size, tubelet
        self.frame_difference, self.max_frames = frame_difference, max_frames
        self.out_dim = width
        channels = 6 if frame_difference else 3
        # A linear map of flattened tubelets (= a strided Conv3d, whose backward is slow on CPU).
        self.patchify = nn.Linear(channels * tubelet * patch_size * patch_size, width)
        # Zero padding keeps the grid's size. A full convolution (fan-in 9 x width) gives the most shape per token,
        # but it blurs every token into its neighbours at first (under Adam even from a zero init): the model left
        # the caption plateau (loss ~0.65) at step 200-275 instead of ~125, too late for a short run. Depthwise
        # (each channel mixes with the same channel of its neighbours; the blocks' MLPs combine them) does not.
        self.local_mixing = (nn.Conv2d(width, width, local_mixing, padding=local_mixing // 2,
                                       groups=width if local_mixing_depthwise else 1)
                             if local_mixing else None)
        self.space_pos = nn.Parameter(torch.zeros(1, 1, self.patches_per_frame, width))
        self.time_pos = nn.Parameter(torch.zeros(1, max_frames // tubelet, 1, width))
        layer = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self._init(init_std)
        if freeze:
            self.freeze()

    def _init(self, std: float) -> None:
        for param in (self.space_pos, self.time_pos):
            nn.init.normal_(param, std=std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.local_mixing is not None:
            nn.init.normal_(self.local_mixing.weight, std=std)
            nn.init.zeros_(self.local_mixing.bias)

    @property
    def patches_per_frame(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_frame

    @property
    def preprocessing(self) -> ImagePreprocessing:
        return ImagePreprocessing(size=self.image_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                                  interpolation="bilinear", crop=False)

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]:
        if in_frames % self.tubelet or in_frames > self.max_frames:
            raise ValueError(f"tiny_video_vit: {in_frames} frames per video; it takes a multiple of tubelet "
                             f"{self.tubelet} up to max_frames {self.max_frames}")
        return in_frames // self.tubelet, in_tokens

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T / tubelet, patches, width)."""
        if pixels.dim() != 5 or pixels.shape[2] != 3 or pixels.shape[-1] != self.image_size:
            raise ValueError(f"tiny_video_vit expects (B, T, 3, {self.image_size}, {self.image_size}) pixels, "
                             f"got {tuple(pixels.shape)}")
        frames_out, _ = self.out_tokens(self.patches_per_frame, pixels.shape[1])
        x = pixels.to(self.patchify.weight.dtype)
        if self.frame_difference:
            diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
            x = torch.cat([x, diff], dim=2)
        b, _, c = x.shape[:3]
        p, side = self.patch_size, self.image_size // self.patch_size
        x = x.reshape(b, frames_out, self.tubelet, c, side, p, side, p)
        x = x.permute(0, 1, 4, 6, 2, 3, 5, 7).reshape(b, frames_out, side * side, -1)
        x = self.patchify(x)                                       # (B, T', h*w, width)
        width = x.shape[-1]
        if self.local_mixing is not None:
            grid = x.reshape(b * frames_out, side, side, width).permute(0, 3, 1, 2)
            x = x + self.local_mixing(grid).permute(0, 2, 3, 1).reshape(b, frames_out, side * side, width)
        x = x + self.space_pos + self.time_pos[:, :frames_out]
        x = self.norm(self.blocks(x.reshape(b, -1, width)))
        return x.reshape(b, frames_out, self.patches_per_frame, width)
