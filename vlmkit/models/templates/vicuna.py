"""Vicuna-style templates: Vicuna v1 (LLaVA, VideoTGB) and Video-LLaMA's ``###Human:`` instruction style."""
from __future__ import annotations

from vlmkit.models.templates.base import FormattedTemplate, TurnFormat
from vlmkit.registry import TEMPLATES

VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")


@TEMPLATES.register("vicuna_v1", aliases=["vicuna"])
def vicuna_v1(system: str = VICUNA_SYSTEM) -> FormattedTemplate:
    """'{system} USER: {q} ASSISTANT: {a}</s>USER: ...'; generation ends with 'ASSISTANT:'. Empty system = none."""
    return FormattedTemplate("vicuna_v1", TurnFormat(
        system=system, system_format="{system} ", user="USER: {content} ", assistant_prefix="ASSISTANT: ",
        answer_end="</s>", generation_prefix="ASSISTANT:", stop=("</s>",)))


@TEMPLATES.register("video_llama", aliases=["video_llama_v0"])
def video_llama(system: str = "") -> FormattedTemplate:
    """Video-LLaMA instruction tuning: '###Human: {q}\\n###Assistant: {a}\\n'; generation stops at '###'."""
    return FormattedTemplate("video_llama", TurnFormat(
        system=system, system_format="{system}\n\n", user="###Human: {content}\n", assistant_prefix="###Assistant: ",
        answer_end="\n", generation_prefix="###Assistant:", stop=("###",)))
