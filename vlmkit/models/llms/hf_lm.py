"""Common base of the causal and seq2seq wrappers (not registered itself)."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from vlmkit.errors import ConfigError
from vlmkit.models.llms.base import (AttnImplementation, DType, LMConfig, apply_lora, build_hf_model,
                                     count_parameters, set_lora_alpha)
from vlmkit.models.llms.lora_settings import LoraSettings
from vlmkit.models.weight_sources import mark_loaded, weight_source
from vlmkit.schema import Struct


class HFLanguageModel(nn.Module):
    """A transformers LM used through ``inputs_embeds``; subclasses pick the auto class and the LoRA task type.

    Args:
        pretrained: local path or hub id of weights; ``config`` then overrides values of its config.
        config: transformers config values; without ``pretrained`` the model gets random weights
            (tiny test variants and meta-device presets are the same class with small/real configs).
        arch: transformers ``model_type`` for ``config`` alone (llama, qwen2, opt, phi3, t5, ...).
        tokenizer: path or hub id of the tokenizer (defaults to ``pretrained``; none when both are unset), or
            'local:word' / 'local:word-eos' for the built-in offline word tokenizer of tests and demos.
        attn_implementation: 'auto' = flash_attention_2 when flash-attn and CUDA are there, else sdpa.
        freeze: stop gradients to every base weight. With ``lora`` the base weights are frozen by peft anyway.
        dtype: weight dtype; 'auto' keeps the checkpoint's dtype (float32 for random weights).
        gradient_checkpointing: recompute activations in backward (non-reentrant, works with frozen embeddings).
        lora: peft LoRA settings {r, alpha, dropout, target_modules ('all-linear' or names), bias, modules_to_save,
            eval_alpha}. ``eval_alpha`` (PLLaVA's post-training scaling) replaces ``alpha`` whenever the module
            is in eval mode: the LoRA update is scaled by eval_alpha / r there and by alpha / r in training.
        trust_remote_code: allow code from the checkpoint repo (off unless a config says so).
    """

    auto_class_name: str = ""
    lora_task_type: str = ""
    is_encoder_decoder: bool = False
    # Video-XL's window-reading capabilities (vlmkit.protocols.LanguageModel); plain LMs have neither.
    streams_visual: bool = False
    reads_visual_mask: bool = False

    def __init__(self, pretrained: Optional[str] = None, config: Optional[LMConfig] = None, arch: Optional[str] = None,
                 tokenizer: Optional[str] = None, attn_implementation: AttnImplementation = "auto",
                 freeze: bool = False, dtype: DType = "auto", gradient_checkpointing: bool = False,
                 lora: Optional[Struct(LoraSettings)] = None, trust_remote_code: bool = False):
        super().__init__()
        import transformers

        where = type(self).__name__
        auto_class = getattr(transformers, self.auto_class_name)
        model, self.attn_implementation = build_hf_model(
            auto_class, pretrained=pretrained, config=config, arch=arch, attn_implementation=attn_implementation,
            dtype=dtype, trust_remote_code=trust_remote_code, where=where)
        self.tokenizer = self._load_tokenizer(tokenizer or pretrained, trust_remote_code)
        if self.tokenizer is not None and len(self.tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(self.tokenizer))
        if freeze:
            model.requires_grad_(False)
        if gradient_checkpointing:
            # Non-reentrant checkpointing needs no input that requires grad (embeddings may be frozen).
            # transformers >= 5.2x renamed the switch; older releases only have gradient_checkpointing_enable.
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.lora_alpha = self.lora_eval_alpha = None
        if lora is not None:
            settings = LoraSettings.from_config(lora, f"{where}.lora")
            model = apply_lora(model, settings, self.lora_task_type)
            self.lora_alpha = settings.scale_alpha
            self.lora_eval_alpha = None if settings.eval_alpha is None else float(settings.eval_alpha)
        self.model = model
        self.hidden_size = int(self.base_config.get_text_config().hidden_size
                               if hasattr(self.base_config, "get_text_config") else self.base_config.hidden_size)

    @staticmethod
    def _load_tokenizer(source: Optional[str], trust_remote_code: bool) -> Any:
        if source is None:
            return None
        if source.startswith("local:"):
            from vlmkit.models.llms.local_tokenizer import builtin_tokenizer

            return builtin_tokenizer(source)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)

    # ------------------------------------------------------------------ LoRA scaling
    def set_lora_alpha(self, alpha: float) -> None:
        """Scale every LoRA update by ``alpha / r`` from now on (until the next train()/eval() switch)."""
        if self.lora_alpha is None:
            raise ConfigError(type(self).__name__, "set_lora_alpha needs LoRA adapters; set 'lora' in the config")
        set_lora_alpha(self.model, alpha)

    def train(self, mode: bool = True) -> "HFLanguageModel":
        super().train(mode)
        if self.lora_eval_alpha is not None:
            self.set_lora_alpha(self.lora_alpha if mode else self.lora_eval_alpha)
        return self

    # ------------------------------------------------------------------ introspection
    @property
    def base_config(self) -> Any:
        return self.model.config

    def parameter_count(self, trainable_only: bool = False) -> int:
        return count_parameters(self.model, trainable_only)

    # ------------------------------------------------------------------ tokens and embeddings
    def add_special_tokens(self, tokens: list[str]) -> list[int]:
        """Register tokens (e.g. the visual placeholder) with the tokenizer and grow the embedding table to fit."""
        if self.tokenizer is None:
            raise ConfigError(type(self).__name__, "adding tokens needs a tokenizer; set 'tokenizer' or 'pretrained'")
        self.tokenizer.add_tokens(list(tokens), special_tokens=True)
        if len(self.tokenizer) > self.model.get_input_embeddings().num_embeddings:
            sources = [weight_source(m.weight) for m in self._embedding_tables()]
            self.model.resize_token_embeddings(len(self.tokenizer))
            # the tables are new tensors holding the old rows; the added rows are placeholders, replaced in the input
            for table, source in zip(self._embedding_tables(), sources):
                if source is not None:
                    mark_loaded([table.weight], source)
        return self.tokenizer.convert_tokens_to_ids(list(tokens))

    def _embedding_tables(self) -> list[torch.nn.Module]:
        output = self.model.get_output_embeddings()
        return [self.model.get_input_embeddings(), *([output] if output is not None else [])]

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, L, hidden_size) from the model's own input embedding table."""
        return self.model.get_input_embeddings()(input_ids)

    def packing_problem(self) -> Optional[str]:
        """Why this LM cannot take packed rows (``run.packing``), or None when it can (decoder-only LMs)."""
        return (f"{type(self).__name__} is not a decoder-only LM; packed rows need a causal_lm LLM (each "
                f"conversation's position ids restart inside a row of one token sequence)")

    def _generation_defaults(self, gen_kwargs: dict) -> dict:
        if self.tokenizer is not None:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            gen_kwargs.setdefault("pad_token_id", pad)
            if self.tokenizer.eos_token_id is not None:
                gen_kwargs.setdefault("eos_token_id", self.tokenizer.eos_token_id)
        return gen_kwargs
