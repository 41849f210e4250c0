"""Video-XL's released weights (LLaVA-NeXT's ``LlavaQwenForCausalLM`` with beacon parameters) as a key map.

The released layout:
  LLM           ``model.embed_tokens``, ``model.layers.N.*`` (with ``self_attn.beacon_{q,k,v}_proj``),
                ``model.beacon_embed_tokens``, ``model.norm``, ``lm_head``
  projector     ``model.mm_projector.{0,2}`` (mlp2x_gelu: Linear, GELU, Linear)
  vision tower  ``model.vision_tower.vision_tower.vision_model.*`` (a transformers CLIPVisionModel's tower)
onto the ``video_xl`` presets: the ``beacon_qwen2`` LLM (a transformers Qwen2ForCausalLM at ``<llm>.model``, the
summary-token parameters named as in the release), branch 0's ``clip_vit`` encoder (its CLIPVisionModel at
``<encoder>.model``) and its ``mlp_gelu`` projector (``<projector>.layers.{0,2}``). Every parameter of the three
targets must come from the file: a checkpoint without, say, ``beacon_k_proj`` is refused by name rather than
silently keeping the copies of ``k_proj`` the model starts from. A target set to None drops its keys.
"""
from __future__ import annotations

import re
from importlib.metadata import version
from typing import Optional

from vlmkit.models.checkpoints.keymap import KeyMap, Rule, join, scoped

# transformers < 5 nests CLIPVisionModel's weights under 'vision_model.'; 5.x does not.
_CLIP_NESTED = int(version("transformers").split(".")[0]) < 5
_TOWER = re.escape("model.vision_tower.vision_tower.vision_model.")


def video_xl(llm: Optional[str] = "llm", encoder: Optional[str] = "branches.0.encoder",
             projector: Optional[str] = "branches.0.stages.0") -> KeyMap:
    """Released Video-XL checkpoint -> the LLM, the CLIP tower and the projector of a ``video_xl`` model."""
    rules: list[Rule] = []
    drop = [_TOWER + r"embeddings\.position_ids"]  # a buffer some releases saved; the model recomputes it
    if llm is not None:
        decoder = join(llm, "model", "model")
        rules += [Rule(r"model\.(embed_tokens|beacon_embed_tokens|norm)\.weight", decoder + r".\1.weight", llm),
                  Rule(r"model\.layers\.(\d+)\.(.+)", decoder + r".layers.\1.\2", llm),
                  Rule(r"lm_head\.weight", join(llm, "model", "lm_head") + ".weight", llm)]
    else:
        drop += [r"model\.(embed_tokens|beacon_embed_tokens|norm|layers)\..*", r"lm_head\..*"]
    if projector is not None:
        rules.append(Rule(r"model\.mm_projector\.(\d+)\.(weight|bias)", join(projector, "layers") + r".\1.\2",
                          projector))
    else:
        drop.append(r"model\.mm_projector\..*")
    if encoder is not None:
        tower = join(encoder, "model", "vision_model" if _CLIP_NESTED else None)
        rules.append(Rule(_TOWER + r"(?!embeddings\.position_ids$)(.+)", tower + r".\1", join(encoder, "model")))
    else:
        drop.append(r"model\.vision_tower\..*")
    return KeyMap("video_xl", rules, drop, scoped([llm, projector, encoder and join(encoder, "model")]))
