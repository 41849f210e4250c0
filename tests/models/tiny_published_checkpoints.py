"""Tiny checkpoints under the published names, at the tiny presets' sizes, with random values.

The names and shapes come from the independent key lists in published_keys.py (each with its source there), never
from vlmkit's key maps or module names, so a loader test built on these can fail when a key map is wrong. Tests
check where values landed by comparing a loaded parameter with the tensor stored under a published name."""
from __future__ import annotations

import torch

from tests.models.published_keys import (BertQFormerSize, lavis_blip2_stage1, lavis_blip2_t5, lavis_eva_vit,
                                         video_llama_video_branch)

# video_llama/tiny: EVA tower 32 wide (FFN 64, 2 layers, 32 px images, 8 px patches); image Q-Former 32 wide,
# cross-attention every 2nd layer, 4 queries; video Q-Former cross-attention in every layer, 4 queries, 8 frame
# positions; the tiny LLaMA is 64 wide.
IMAGE_QFORMER = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=2, encoder_width=32,
                                vocab=100)
VIDEO_QFORMER = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=1, encoder_width=32)
QUERIES, FRAME_POSITIONS, LLM_WIDTH, VISION_WIDTH = 4, 8, 64, 32


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.arange(shape[-1])[None] if name.endswith("position_ids")
                   else torch.randn(shape, generator=generator)) for name, shape in shapes.items()}


def video_llama_checkpoint(seed: int = 0, audio: bool = True) -> dict[str, torch.Tensor]:
    """Video-LLaMA's trainable video branch (pretrain-vicuna7b.pth), plus ``audio_query_tokens`` of the audio branch
    its later releases carry (video_llama.py ``VideoLLAMA``: ``audio_query_tokens`` (1, num_audio_query, H))."""
    state = random_tensors(video_llama_video_branch(VIDEO_QFORMER, QUERIES, FRAME_POSITIONS, LLM_WIDTH), seed)
    if audio:
        state["audio_query_tokens"] = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(seed + 1))
    return state


def blip2_stage1_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """LAVIS BLIP-2 stage 1 (blip2_pretrained.pth): the Q-Former with its text parts and MLM head."""
    return random_tensors(lavis_blip2_stage1(IMAGE_QFORMER, QUERIES, VISION_WIDTH), seed)


def blip2_flant5_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """LAVIS BLIP-2 Flan-T5 (blip2_pretrained_flant5xxl.pth); t5_proj is not used by Video-LLaMA (any width)."""
    return random_tensors(lavis_blip2_t5(IMAGE_QFORMER, QUERIES, VISION_WIDTH, 48), seed)


def eva_vit_g_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """LAVIS's eva_vit_g.pth at the tiny tower's sizes."""
    return random_tensors(lavis_eva_vit(VISION_WIDTH, 64, 2, image_size=32, patch_size=8), seed)
