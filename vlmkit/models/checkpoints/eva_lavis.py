"""LAVIS's EVA ViT-g file (``eva_vit_g.pth``, what BLIP-2 / Video-LLaMA's ``vit_model: eva_clip_g`` loads) -> the
``eva_vit_g`` tower (transformers Blip2VisionModel), the same mapping as transformers' BLIP-2 conversion script.

The file holds EVA-CLIP-g's 40 blocks; BLIP-2 builds 39 and LAVIS loads with strict=False, so block 39 (and any
final norm / head) is dropped here. ``ln_vision`` (the tower's post_layernorm) is in the BLIP-2 checkpoint, not
here: load it with layout ``blip2_lavis`` and ``encoder`` set. LAVIS keeps ``attn.q_bias`` and ``attn.v_bias``;
transformers fuses them into ``qkv.bias`` = [q_bias, 0, v_bias] (the key projection has no bias).
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from vlmkit.models.checkpoints.keymap import KeyMap, Rule, join

_WB = r"(weight|bias)"
_LAYER = r"encoder.layers.\1."
_BLOCK_PAIRS = [
    (r"norm1\." + _WB, "layer_norm1.\\2"), (r"norm2\." + _WB, "layer_norm2.\\2"),
    (r"attn\.qkv\.(weight|bias)", "self_attn.qkv.\\2"),
    (r"attn\.proj\." + _WB, "self_attn.projection.\\2"), (r"mlp\.(fc1|fc2)\." + _WB, "mlp.\\2.\\3"),
]


class EvaLavisKeyMap(KeyMap):
    def prepare(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        out = {k: v for k, v in state_dict.items() if not re.search(r"\.attn\.[qv]_bias$", k)}
        for key, q_bias in state_dict.items():
            if key.endswith(".attn.q_bias"):
                v_bias = state_dict[key[: -len("q_bias")] + "v_bias"]
                out[key[: -len("q_bias")] + "qkv.bias"] = torch.cat([q_bias, torch.zeros_like(v_bias), v_bias])
        return out


def eva_vit_lavis(encoder: str) -> KeyMap:
    tower = join(encoder, "model")
    embeddings, layers = join(tower, "embeddings"), join(tower, "encoder")
    rules = [Rule(r"cls_token", f"{embeddings}.class_embedding", embeddings),
             Rule(r"pos_embed", f"{embeddings}.position_embedding", embeddings),
             Rule(r"patch_embed\.proj\." + _WB, f"{embeddings}.patch_embedding.\\1", embeddings)]
    rules += [Rule(r"blocks\.([0-9]|[1-2][0-9]|3[0-8])\." + pattern, f"{tower}.{_LAYER}{replacement}", layers)
              for pattern, replacement in _BLOCK_PAIRS]
    drop = [r"blocks\.39\..*", r"(norm|fc_norm|head)\..*"]
    return EvaLavisKeyMap("eva_vit_lavis", rules, drop, [embeddings, layers])
