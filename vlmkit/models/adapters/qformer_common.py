"""Shared pieces of the Q-Former adapters: config assembly and the learned query tokens."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from vlmkit.errors import ConfigError
from vlmkit.models.stage import enable_checkpointing, resolve_dtype
from vlmkit.schema import HFConfig
from vlmkit.schema_index_file import config_class_keys

# Keys the adapters set themselves from their own parameters or from the previous stage's width.
QFORMER_OWNED_KEYS = {
    "encoder_hidden_size": "it is the previous stage's out_dim (in_dim), derived at build time",
    "num_hidden_layers": "use the adapter's 'num_layers' parameter",
    "cross_attention_frequency": "use the adapter's 'cross_attention_freq' parameter",
}
# The adapters' ``config:`` schemas: keys of the transformers Q-Former config, checked at validation.
BLIP2_QFORMER_CONFIG = HFConfig("Blip2QFormerConfig", owned=QFORMER_OWNED_KEYS)
INSTRUCTBLIP_QFORMER_CONFIG = HFConfig("InstructBlipQFormerConfig", owned=QFORMER_OWNED_KEYS)


def qformer_config(config_class: type, label: str, *, in_dim: int, num_layers: int, cross_attention_freq: int,
                   config: Optional[dict[str, Any]]):
    """A transformers Q-Former config: its class defaults (BERT-base, as in BLIP-2) + ``config`` + ours."""
    overrides = dict(config or {})
    for key, why in QFORMER_OWNED_KEYS.items():
        if key in overrides:
            raise ConfigError(f"{label}.config.{key}", f"do not set '{key}' in config: {why}")
    known = config_class_keys(config_class)  # the keys validation accepts (HFConfig)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{label}.config", f"unknown {config_class.__name__} keys {unknown}; accepted keys "
                                             f"include hidden_size, num_attention_heads, intermediate_size, "
                                             f"hidden_dropout_prob, attention_probs_dropout_prob, layer_norm_eps")
    if num_layers < 1 or cross_attention_freq < 1:
        raise ConfigError(label, f"num_layers ({num_layers}) and cross_attention_freq ({cross_attention_freq}) "
                                 f"must be >= 1")
    return config_class(**overrides, encoder_hidden_size=in_dim, num_hidden_layers=num_layers,
                        cross_attention_frequency=cross_attention_freq)


def query_tokens(num_query: int, hidden_size: int, std: float) -> nn.Parameter:
    """``(1, num_query, hidden)`` learned queries, initialised N(0, std) as in LAVIS."""
    if num_query < 1:
        raise ConfigError("num_query", f"num_query must be >= 1, got {num_query}")
    return nn.Parameter(torch.randn(1, num_query, hidden_size) * std)


def attach_qformer(stage: nn.Module, model_class: type, cfg: Any, num_query: int, dtype: str,
                   gradient_checkpointing: bool, freeze: bool) -> None:
    """Give ``stage`` its learned queries and transformers Q-Former, then its dtype, checkpointing and freezing
    (the same set-up for the BLIP-2, InstructBLIP and video Q-Formers)."""
    stage.out_dim = cfg.hidden_size
    stage.query_tokens = query_tokens(num_query, cfg.hidden_size, cfg.initializer_range)
    stage.qformer = model_class(cfg)
    stage.to(resolve_dtype(dtype))
    if gradient_checkpointing:
        enable_checkpointing(stage.qformer)
    if freeze:
        stage.freeze()
