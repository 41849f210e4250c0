"""SigLIP vision tower (transformers SiglipVisionModel): patch tokens of a chosen hidden layer, no CLS."""
from __future__ import annotations

from typing import Optional

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from vlmkit.contracts import ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.models.encoders.hf_vision import HFVisionEncoder
from vlmkit.models.stage import DType
from vlmkit.registry import ENCODERS
from vlmkit.schema import HFConfig

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

# Real config values of google/siglip-* checkpoints.  The attention-pooling head is never used (tokens come
# from hidden states), so it is not built: that keeps unused trainable parameters out of DDP and optimizers.
SIGLIP_PRESETS = {
    "siglip_so400m_patch14_384": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                      num_attention_heads=16, patch_size=14, image_size=384),
    "siglip_base_patch16_224": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                    num_attention_heads=12, patch_size=16, image_size=224),
}


@ENCODERS.register("siglip", aliases=["siglip_vit"])
class SigLIPEncoder(HFVisionEncoder):
    """SigLIP ViT: ``hidden_states[select_layer]`` (no post-layernorm); SigLIP has no CLS token."""

    registry_name = "siglip"
    model_class = SiglipVisionModel
    config_class = SiglipVisionConfig
    presets = SIGLIP_PRESETS
    fixed_config = {"vision_use_head": False}

    def __init__(self, pretrained: Optional[str] = None, arch: Optional[str] = None,
                 config: Optional[HFConfig("SiglipVisionConfig")] = None,
                 select_layer: int = -2, freeze: bool = True, dtype: DType = "float32",
                 gradient_checkpointing: bool = False, checkpoint_offload: bool = False) -> None:
        super().__init__(pretrained=pretrained, arch=arch, config=config, freeze=freeze, dtype=dtype,
                         gradient_checkpointing=gradient_checkpointing, checkpoint_offload=checkpoint_offload)
        num_states = self.model.config.num_hidden_layers + 1
        if not -num_states <= select_layer < num_states:
            raise ConfigError("siglip.select_layer", f"select_layer {select_layer} is outside the "
                                                     f"{num_states} hidden states (-{num_states}..{num_states - 1})")
        self.select_layer = select_layer
        self.freeze_after(select_layer)

    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_frame

    @property
    def preprocessing(self) -> ImagePreprocessing:
        # SiglipImageProcessor: bicubic resize straight to size x size (no crop), mean = std = 0.5.
        return ImagePreprocessing(size=self.image_size, mean=SIGLIP_MEAN, std=SIGLIP_STD, interpolation="bicubic",
                                  crop=False)

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[self.select_layer]
