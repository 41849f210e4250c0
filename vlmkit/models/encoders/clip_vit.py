"""CLIP ViT vision tower (transformers CLIPVisionModel), LLaVA style: a chosen hidden layer, CLS optional."""
from __future__ import annotations

from typing import Optional

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from vlmkit.contracts import CLIP_MEAN, CLIP_STD, ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.models.encoders.hf_vision import HFVisionEncoder
from vlmkit.models.stage import DType
from vlmkit.registry import ENCODERS
from vlmkit.schema import HFConfig

_OPENAI_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)

# Real config values of the OpenAI checkpoints (openai/clip-vit-*), for meta-device builds and shape checks.
CLIP_PRESETS = {
    "clip_vit_l14_336": {**_OPENAI_VIT_L14, "image_size": 336},
    "clip_vit_l14": {**_OPENAI_VIT_L14, "image_size": 224},
    "clip_vit_b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         patch_size=16, image_size=224, projection_dim=512, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5),
}


@ENCODERS.register("clip_vit", aliases=["clip"])
class CLIPViTEncoder(HFVisionEncoder):
    """CLIP ViT: ``hidden_states[select_layer]`` (no post-layernorm), optionally without the CLS token."""

    registry_name = "clip_vit"
    model_class = CLIPVisionModel
    config_class = CLIPVisionConfig
    presets = CLIP_PRESETS

    def __init__(self, pretrained: Optional[str] = None, arch: Optional[str] = None,
                 config: Optional[HFConfig("CLIPVisionConfig")] = None,
                 select_layer: int = -2, drop_cls: bool = True, freeze: bool = True, dtype: DType = "float32",
                 gradient_checkpointing: bool = False, checkpoint_offload: bool = False) -> None:
        super().__init__(pretrained=pretrained, arch=arch, config=config, freeze=freeze, dtype=dtype,
                         gradient_checkpointing=gradient_checkpointing, checkpoint_offload=checkpoint_offload)
        num_states = self.model.config.num_hidden_layers + 1  # the embeddings, then one per layer
        if not -num_states <= select_layer < num_states:
            raise ConfigError("clip_vit.select_layer", f"select_layer {select_layer} is outside the "
                                                       f"{num_states} hidden states (-{num_states}..{num_states - 1})")
        self.select_layer = select_layer
        self.freeze_after(select_layer)
        self.drop_cls = drop_cls

    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_frame + (0 if self.drop_cls else 1)

    @property
    def preprocessing(self) -> ImagePreprocessing:
        # CLIPImageProcessor: bicubic resize of the short side, center crop, OpenAI CLIP mean/std.
        return ImagePreprocessing(size=self.image_size, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic",
                                  crop=True)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[self.select_layer]
        return hidden[:, 1:] if self.drop_cls else hidden
