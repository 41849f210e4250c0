"""Key layouts of published checkpoints, as explicit maps onto vlmkit modules.

Target paths name sub-modules of the model being loaded (``locate(model, QFormer)`` finds them), e.g. in the
Video-LLaMA preset: encoder 'branches.0.encoder', Q-Former 'branches.0.stages.0', video Q-Former
'branches.0.stages.1', projection 'branches.0.stages.2'. A target left as None means "this part of the
checkpoint is deliberately not loaded" (its keys are dropped, not reported as unexpected).

Layouts:
- ``qformer_lavis``: LAVIS's BertModel-based Q-Former ('Qformer.bert.encoder.layer.0.attention.self.query...',
  text-only parts: word/position embeddings, the text FFN 'intermediate'/'output', 'cls').
- ``blip2_lavis``: LAVIS BLIP-2 checkpoints (Qformer, query_tokens, ln_vision, opt_proj/t5_proj/llm_proj...).
- ``instructblip_lavis``: LAVIS InstructBLIP checkpoints (blip2_vicuna_instruct / blip2_t5_instruct) into an
  ``instruct_qformer``: as ``blip2_lavis``, but the Q-Former's text parts load too (word/position embeddings and
  the text FFN 'intermediate'/'output'), since the instruction goes through it; the embedding LayerNorm is
  transformers' ``embeddings.layernorm`` there.
- ``blip2_hf``: transformers Blip2* checkpoints (qformer., query_tokens, vision_model., language_projection.).
- ``video_llama``: Video-LLaMA checkpoints (video_Qformer, video_query_tokens, video_frame_position_embedding,
  llama_proj; audio_* and LLM keys dropped). With projector=None it is LLMVA-GEBC's initialisation from a
  Video-LLaMA stage-1 checkpoint ('llama_proj*' deleted).
- ``minigpt4``: MiniGPT-4's trained linear layer (llama_proj), which Video-LLaMA starts from.
- ``gebc``: LLMVA-GEBC's video branch (the video_llama keys + temporal_pos_trans(+_norm) + opt_proj or the
  LLaMA variant's llama_project). The other-feature branch's checkpoint names are not published in the
  reference read for vlmkit, so they are not mapped (they would be reported as unexpected, never guessed).
- ``eva_vit_lavis``: LAVIS's eva_vit_g.pth (EVA-CLIP-g blocks) into the ``eva_vit_g`` tower; map in ``eva_lavis.py``.
- ``video_xl``: Video-XL's released LlavaQwenForCausalLM weights (LLM with beacon parameters, mm_projector,
  CLIP tower); the map lives in ``video_xl.py``.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from vlmkit.models.checkpoints.keymap import KeyMap, Rule, join, rules_under, scoped
from vlmkit.models.checkpoints.eva_lavis import eva_vit_lavis
from vlmkit.models.checkpoints.video_xl import video_xl

_LAYER = r"bert\.encoder\.layer\.(\d+)\."
_WB = r"(weight|bias)"

# LAVIS Q-Former (BertModel with query-specific FFNs) -> transformers Blip2QFormerModel.
_QFORMER_LAYERS = [
    (_LAYER + r"attention\.self\.(query|key|value)\." + _WB, r"encoder.layer.\1.attention.attention.\2.\3"),
    (_LAYER + r"crossattention\.self\.(query|key|value)\." + _WB,
     r"encoder.layer.\1.crossattention.attention.\2.\3"),
    (_LAYER + r"(attention|crossattention)\.output\.(dense|LayerNorm)\." + _WB,
     r"encoder.layer.\1.\2.output.\3.\4"),
    (_LAYER + r"intermediate_query\.dense\." + _WB, r"encoder.layer.\1.intermediate_query.dense.\2"),
    (_LAYER + r"output_query\.(dense|LayerNorm)\." + _WB, r"encoder.layer.\1.output_query.\2.\3"),
]
_QFORMER_PAIRS = [(r"bert\.embeddings\.LayerNorm\." + _WB, r"layernorm.\1"), *_QFORMER_LAYERS]
# The same Q-Former with its text side -> transformers InstructBlipQFormerModel (whose embedding LayerNorm sits in
# ``embeddings``): InstructBLIP feeds the instruction through the Q-Former, so these weights are used.
_INSTRUCT_QFORMER_PAIRS = [
    (r"bert\.embeddings\.(word_embeddings|position_embeddings)\.weight", r"embeddings.\1.weight"),
    (r"bert\.embeddings\.LayerNorm\." + _WB, r"embeddings.layernorm.\1"),
    *_QFORMER_LAYERS,
    (_LAYER + r"intermediate\.dense\." + _WB, r"encoder.layer.\1.intermediate.dense.\2"),
    (_LAYER + r"output\.(dense|LayerNorm)\." + _WB, r"encoder.layer.\1.output.\2.\3"),
]
# Parts of LAVIS's Q-Former that only the text side uses; a query-only Q-Former has no such weights.
_QFORMER_TEXT_ONLY = [r"bert\.embeddings\.(word_embeddings|position_embeddings)\.weight",
                      _LAYER + r"(intermediate|output)\.(dense|LayerNorm)\." + _WB]
# Never loaded: 'position_ids' is a buffer LAVIS's BertEmbeddings saves (transformers recomputes it) and 'cls' the
# masked-LM head of BLIP-2's first stage (InstructBLIP sets Qformer.cls = None; no vlmkit stage predicts tokens).
_QFORMER_UNUSED = [r"bert\.embeddings\.position_ids", r"cls\..*"]


def _prefix(source: str, patterns: list[str]) -> list[str]:
    return [r"\.".join(source.split(".")) + p if source else p for p in patterns]


def qformer_rules(source: str, qformer: Optional[str], text: bool = False) -> tuple[list[Rule], list[str]]:
    """Rules + drops for a LAVIS Q-Former stored under ``source`` ('Qformer.', 'video_Qformer.') into the
    vlmkit Q-Former stage at ``qformer`` (its transformers model is ``<qformer>.qformer``); ``text``: the stage
    reads text (``instruct_qformer``), so the text parts load instead of being dropped."""
    if qformer is None:
        return [], _prefix(source, [".*"])
    pairs = _INSTRUCT_QFORMER_PAIRS if text else _QFORMER_PAIRS
    rules = rules_under(source, join(qformer, "qformer") + ".", join(qformer, "qformer"), pairs)
    return rules, _prefix(source, _QFORMER_UNUSED + ([] if text else _QFORMER_TEXT_ONLY))


def _param(source_key: str, target: Optional[str], name: str) -> tuple[list[Rule], list[str]]:
    """One tensor (``query_tokens``...) or one sub-module's weight/bias (``source_key`` ends with '.')."""
    if source_key.endswith("."):
        pattern = re.escape(source_key) + _WB
        if target is None:
            return [], [pattern]
        return [Rule(pattern, join(target, name) + r".\1", join(target, name))], []
    pattern = re.escape(source_key)
    if target is None:
        return [], [pattern]
    return [Rule(pattern, join(target, name), join(target, name))], []


def _combine(name: str, parts, drop: list[str], required: list[str]) -> KeyMap:
    rules: list[Rule] = []
    drops = list(drop)
    for part_rules, part_drops in parts:
        rules += part_rules
        drops += part_drops
    return KeyMap(name, rules, drops, required)


def qformer_lavis(qformer: str) -> KeyMap:
    """A bare LAVIS Q-Former state dict (keys 'bert.…', 'cls.…') into the Q-Former stage ``qformer``."""
    return _combine("qformer_lavis", [qformer_rules("", qformer)], [], [join(qformer, "qformer")])


_BLIP2_OTHER = [r"visual_encoder\..*", r"(opt_model|t5_model|llm_model)\..*", r"(vision_proj|text_proj|itm_head)\..*",
                r"temp"]


def _blip2_parts(qformer: str, encoder: Optional[str], projector: Optional[str], text: bool) -> list:
    parts = [qformer_rules("Qformer.", qformer, text), _param("query_tokens", qformer, "query_tokens"),
             _param("ln_vision.", encoder and join(encoder, "model"), "post_layernorm")]
    return parts + [_param(name, projector, "proj") for name in ("opt_proj.", "t5_proj.", "llm_proj.")]


def blip2_lavis(qformer: str, encoder: Optional[str] = None, projector: Optional[str] = None) -> KeyMap:
    """LAVIS BLIP-2 checkpoint -> Q-Former stage (+ ln_vision into the EVA tower's post_layernorm, + the
    LLM projection opt_proj/t5_proj/llm_proj). LAVIS's EVA ViT keys are not mapped (load the tower from a
    transformers checkpoint with ``eva_vit_g pretrained``); stage-1 heads (vision_proj, text_proj, itm_head,
    temp) and LLM weights are dropped."""
    keymap = _combine("blip2_lavis", _blip2_parts(qformer, encoder, projector, text=False), _BLIP2_OTHER,
                      [join(qformer, "qformer"), join(qformer, "query_tokens")])
    keymap.hint = "if the Q-Former is an instruct_qformer (InstructBLIP), use layout 'instructblip_lavis'"
    return keymap


def instructblip_lavis(qformer: str, encoder: Optional[str] = None, projector: Optional[str] = None) -> KeyMap:
    """LAVIS InstructBLIP checkpoint (or a BLIP-2 one InstructBLIP starts from) -> an ``instruct_qformer`` stage
    with its text parts, + ln_vision and llm_proj/t5_proj as in ``blip2_lavis`` (the same keys are dropped)."""
    keymap = _combine("instructblip_lavis", _blip2_parts(qformer, encoder, projector, text=True), _BLIP2_OTHER,
                      [join(qformer, "qformer"), join(qformer, "query_tokens")])
    keymap.hint = "if the Q-Former is query-only (qformer, video_qformer), use layout 'blip2_lavis'"
    return keymap


def blip2_hf(qformer: str, encoder: Optional[str] = None, projector: Optional[str] = None) -> KeyMap:
    """transformers Blip2Model / Blip2ForConditionalGeneration checkpoint -> vlmkit stages."""
    rules = [Rule(r"qformer\.(.*)", join(qformer, "qformer") + r".\1", join(qformer, "qformer")),
             Rule(r"query_tokens", join(qformer, "query_tokens"), join(qformer, "query_tokens"))]
    drop = [r"language_model\..*"]
    if encoder is not None:
        rules.append(Rule(r"vision_model\.(.*)", join(encoder, "model") + r".\1", join(encoder, "model")))
    else:
        drop.append(r"vision_model\..*")
    if projector is not None:
        rules.append(Rule(r"language_projection\." + _WB, join(projector, "proj") + r".\1", join(projector, "proj")))
    else:
        drop.append(r"language_projection\..*")
    return KeyMap("blip2_hf", rules, drop, [join(qformer, "qformer"), join(qformer, "query_tokens")])


def _video_branch(video_qformer: str) -> list:
    return [qformer_rules("video_Qformer.", video_qformer),
            _param("video_query_tokens", video_qformer, "query_tokens"),
            _param("video_frame_position_embedding.", video_qformer, "frame_position_embedding")]


_VIDEO_LLAMA_OTHER = [r"audio_.*", r"llama_model\..*", r"visual_encoder\..*", r"imagebind.*"]


def video_llama(video_qformer: str, projector: Optional[str] = None, qformer: Optional[str] = None,
                encoder: Optional[str] = None) -> KeyMap:
    """Video-LLaMA checkpoint (trainable parts; full checkpoints also carry the BLIP-2 parts) -> stages."""
    parts = [*_video_branch(video_qformer), _param("llama_proj.", projector, "proj"),
             qformer_rules("Qformer.", qformer), _param("query_tokens", qformer, "query_tokens"),
             _param("ln_vision.", encoder and join(encoder, "model"), "post_layernorm")]
    # The video Q-Former's own parts, not the whole stage: a boundary_video_qformer (LLMVA-GEBC) starts its
    # boundary embedding fresh from a Video-LLaMA checkpoint.
    required = [join(video_qformer, part) for part in ("qformer", "query_tokens", "frame_position_embedding")]
    return _combine("video_llama", parts, _VIDEO_LLAMA_OTHER, scoped([*required, projector]))


def minigpt4(projector: str) -> KeyMap:
    """MiniGPT-4's checkpoint (the trained llama_proj) -> the linear projection."""
    return _combine("minigpt4", [_param("llama_proj.", projector, "proj")],
                    [r"(Qformer|visual_encoder|llama_model|ln_vision)\..*", r"query_tokens"], [projector])


def gebc(video_qformer: str, projector: Optional[str] = None) -> KeyMap:
    """LLMVA-GEBC checkpoint (video branch + boundary embedding + opt_proj / llama_project) -> stages."""
    parts = [*_video_branch(video_qformer),
             _param("temporal_pos_trans.", join(video_qformer, "boundary"), "proj"),
             _param("temporal_pos_trans_norm.", join(video_qformer, "boundary"), "norm"),
             _param("opt_proj.", projector, "proj"), _param("llama_project.", projector, "proj")]
    return _combine("gebc", parts, [r"(opt_model|llama_model)\..*"], scoped([video_qformer, projector]))


LAYOUTS: dict[str, Callable[..., KeyMap]] = {
    "qformer_lavis": qformer_lavis, "blip2_lavis": blip2_lavis, "instructblip_lavis": instructblip_lavis,
    "blip2_hf": blip2_hf,
    "video_llama": video_llama, "minigpt4": minigpt4, "gebc": gebc, "video_xl": video_xl,
    "eva_vit_lavis": eva_vit_lavis,
}
