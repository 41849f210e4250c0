"""EVA ViT-g/14 as BLIP-2 uses it, through transformers' Blip2VisionModel.

BLIP-2 keeps 39 of EVA-CLIP's 40 blocks (the last is dropped), is 1408 wide and gives 257 tokens (CLS + 16x16
patches) at 224 px.  The output is the last hidden state after ``post_layernorm``, which is LAVIS's
``ln_vision``: exactly what the BLIP-2 Q-Former cross-attends to.
"""
from __future__ import annotations

from typing import Optional

import torch
from transformers import Blip2VisionConfig, Blip2VisionModel

from vlmkit.contracts import CLIP_MEAN, CLIP_STD, ImagePreprocessing
from vlmkit.models.encoders.hf_vision import HFVisionEncoder
from vlmkit.models.stage import DType
from vlmkit.registry import ENCODERS
from vlmkit.schema import HFConfig

# Real values of the BLIP-2 / InstructBLIP vision config (Salesforce/blip2-*: 39 layers of EVA ViT-g/14).
EVA_PRESETS = {
    "eva_vit_g14": dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                        image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True),
}


@ENCODERS.register("eva_vit_g", aliases=["eva_clip_g", "blip2_vision"])
class EVAViTEncoder(HFVisionEncoder):
    """EVA ViT-g/14 of BLIP-2 (Blip2VisionModel); ``pretrained``: a full BLIP-2 or a vision-only checkpoint."""

    registry_name = "eva_vit_g"
    model_class = Blip2VisionModel
    config_class = Blip2VisionConfig
    presets = EVA_PRESETS
    # Full BLIP-2 checkpoints hold the tower under ``vision_model.``.
    checkpoint_key_mapping = {r"^vision_model\.": ""}

    def __init__(self, pretrained: Optional[str] = None, arch: Optional[str] = None,
                 config: Optional[HFConfig("Blip2VisionConfig")] = None,
                 drop_cls: bool = False, freeze: bool = True, dtype: DType = "float32",
                 gradient_checkpointing: bool = False, checkpoint_offload: bool = False) -> None:
        super().__init__(pretrained=pretrained, arch=arch, config=config, freeze=freeze, dtype=dtype,
                         gradient_checkpointing=gradient_checkpointing, checkpoint_offload=checkpoint_offload)
        self.drop_cls = drop_cls

    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_frame + (0 if self.drop_cls else 1)

    @property
    def preprocessing(self) -> ImagePreprocessing:
        # BlipImageProcessor / LAVIS blip_image_eval: bicubic resize to size x size, no crop, CLIP mean/std.
        return ImagePreprocessing(size=self.image_size, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic",
                                  crop=False)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state
        return hidden[:, 1:] if self.drop_cls else hidden
