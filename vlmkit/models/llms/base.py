"""Shared machinery of the transformers LM wrappers: build, attention backend, dtype, freezing, LoRA.

The wrappers use transformers' public API only (``from_pretrained``/``from_config``, ``inputs_embeds``,
``labels``, ``generate``), so a new transformers release does not break a private fork of a model class.
"""
from __future__ import annotations

import importlib.util
from typing import Any, Literal, Optional

import torch
from torch import nn

from vlmkit.dtypes import torch_dtype
from vlmkit.errors import ConfigError
from vlmkit.models.llms.lora_settings import LoraSettings
from vlmkit.models.weight_paths import TRANSFORMERS_FOLDER, require_local
from vlmkit.models.weight_sources import mark_loaded
from vlmkit.schema import HFConfig

AttnImplementation = Literal["auto", "flash_attention_2", "sdpa", "eager"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
# An LM's ``config:``: keys of the transformers config class of its ``arch`` (or of its checkpoint's model type).
LMConfig = HFConfig(model_type_from="arch", checkpoint_from="pretrained")


def flash_attention_available() -> bool:
    """flash-attn is importable and there is a CUDA device to run it on."""
    return importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()


def resolve_attn_implementation(requested: str, model_class: Optional[type]) -> str:
    """'auto' -> flash_attention_2 when usable, else sdpa, else eager; explicit values are honoured.

    An unknown class (remote code) gets sdpa, which transformers itself falls back from when unsupported.
    """
    if requested != "auto":
        return requested
    if model_class is None:
        return "sdpa"
    if flash_attention_available() and getattr(model_class, "_supports_flash_attn", False):
        return "flash_attention_2"
    if getattr(model_class, "_supports_sdpa", False):
        return "sdpa"
    return "eager"


def resolve_dtype(dtype: str) -> Optional[torch.dtype]:
    """None means 'auto': the checkpoint's dtype for pretrained weights, torch's default otherwise."""
    return None if dtype == "auto" else torch_dtype(dtype)


def apply_lora(model: nn.Module, lora: LoraSettings, task_type: str) -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters; peft freezes every base weight, only adapters train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.scale_alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules, bias=lora.bias, modules_to_save=lora.modules_to_save,
                        task_type=task_type)
    return get_peft_model(model, config)


def set_lora_alpha(model: nn.Module, alpha: float) -> int:
    """Set every LoRA layer's scaling to ``alpha / r`` (peft's formula without rsLoRA); returns the layers touched.

    The adapters' weights are unchanged; only the factor their update is multiplied by moves.
    """
    from peft.tuners.lora import LoraLayer

    touched = 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for adapter, rank in module.r.items():
                module.lora_alpha[adapter] = alpha
                module.scaling[adapter] = alpha / rank
            touched += 1
    return touched


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_hf_model(auto_class: Any, *, pretrained: Optional[str], config: Optional[dict], arch: Optional[str],
                   attn_implementation: str, dtype: str, trust_remote_code: bool, where: str) -> tuple[nn.Module, str]:
    """Load weights from ``pretrained`` (with ``config`` as overrides) or build random weights from ``config``."""
    from transformers import AutoConfig

    if pretrained is None and config is None:
        raise ConfigError(where, "give 'pretrained' (a local path or hub id) or 'config' (+ 'arch') for random weights")
    torch_dtype = resolve_dtype(dtype)
    overrides = dict(config or {})
    require_local(pretrained, f"{where}.pretrained", TRANSFORMERS_FOLDER)
    if pretrained is not None:
        hf_config = AutoConfig.from_pretrained(pretrained, trust_remote_code=trust_remote_code, **overrides)
    else:
        if not arch:
            raise ConfigError(f"{where}.arch", "building from 'config' needs 'arch', the transformers model type "
                                               "(e.g. llama, qwen2, opt, phi3, t5)")
        try:
            hf_config = AutoConfig.for_model(arch, **overrides)
        except ValueError as err:
            raise ConfigError(f"{where}.arch", f"transformers does not know model type {arch!r}: {err}") from err
    model_class = _model_class(auto_class, hf_config, where, trust_remote_code)
    attn = resolve_attn_implementation(attn_implementation, model_class)
    if pretrained is not None:
        model, info = auto_class.from_pretrained(pretrained, config=hf_config, attn_implementation=attn,
                                                 dtype=torch_dtype if torch_dtype is not None else "auto",
                                                 trust_remote_code=trust_remote_code, output_loading_info=True)
        missing = set(info.get("missing_keys") or ())  # initialised randomly by transformers
        mark_loaded((p for name, p in model.named_parameters() if name not in missing),
                    f"{pretrained} (transformers)")
    else:
        # built in the dtype, as from_pretrained does: buffers kept in float32 (rotary inv_freq) stay float32, so
        # the same weights compute the same whether read from a checkpoint or an export (``.to`` would cast them)
        model = auto_class.from_config(hf_config, attn_implementation=attn, trust_remote_code=trust_remote_code,
                                       **({"dtype": torch_dtype} if torch_dtype is not None else {}))
    return model, getattr(model.config, "_attn_implementation", attn) or attn


def _model_class(auto_class: Any, hf_config: Any, where: str, trust_remote_code: bool) -> Optional[type]:
    """The class the auto class will build (to read its attention support); None for remote-code models."""
    mapping = auto_class._model_mapping
    if type(hf_config) not in mapping:
        if trust_remote_code:
            return None
        raise ConfigError(where, f"{auto_class.__name__} has no model for config type {type(hf_config).__name__} "
                                 f"(model_type {getattr(hf_config, 'model_type', '?')!r})")
    return mapping[type(hf_config)]
