"""Initialise the sampler's encoder from a local BERT checkpoint (VideoTGB starts from bert-base-uncased).

Word / token-type embeddings, their LayerNorm, and each layer's self-attention and feed-forward weights are
copied by layer number; the flow embedding, the cross-attention and the span head keep their random init,
as in the published code (they do not exist in BERT).
"""
from __future__ import annotations

import torch

from vlmkit.errors import ConfigError

_LAYER_KEYS = {"attention.self.query": "attention.query", "attention.self.key": "attention.key",
               "attention.self.value": "attention.value", "attention.output.dense": "attention.output",
               "attention.output.LayerNorm": "attention.norm", "intermediate.dense": "intermediate",
               "output.dense": "output", "output.LayerNorm": "norm"}
_EMBEDDING_KEYS = {"embeddings.word_embeddings": "text_embedding.word_embeddings",
                   "embeddings.token_type_embeddings": "text_embedding.token_type_embeddings",
                   "embeddings.LayerNorm": "text_embedding.norm"}


def bert_key_map(encoder, bert_state: dict) -> dict[str, str]:
    """BERT state-dict key -> our key, for every BERT tensor we have a place for."""
    mapping = {}
    for key in bert_state:
        stem, _, leaf = key.removeprefix("bert.").rpartition(".")
        if stem in _EMBEDDING_KEYS:
            mapping[key] = f"{_EMBEDDING_KEYS[stem]}.{leaf}"
        elif stem.startswith("encoder.layer."):
            _, _, number, rest = stem.split(".", 3)
            ours = int(number) - encoder.first_layer
            if 0 <= ours < len(encoder.layers) and rest in _LAYER_KEYS:
                mapping[key] = f"layers.{ours}.{_LAYER_KEYS[rest]}.{leaf}"
    return mapping


def load_bert_weights(encoder, path: str) -> list[str]:
    """Copy matching tensors from ``path`` (a BERT checkpoint folder or hub id, like an LLM's ``pretrained``);
    returns our keys that stayed random."""
    from transformers import BertModel

    bert_state = BertModel.from_pretrained(path).state_dict()
    ours = encoder.state_dict()
    mapping = bert_key_map(encoder, bert_state)
    for theirs, mine in mapping.items():
        if ours[mine].shape != bert_state[theirs].shape:
            raise ConfigError("selector.pretrained", f"{path}: {theirs} has shape {tuple(bert_state[theirs].shape)}"
                                                     f" but the sampler's {mine} is {tuple(ours[mine].shape)}; "
                                                     f"match hidden_size / vocab_size to the checkpoint")
    with torch.no_grad():
        for theirs, mine in mapping.items():
            ours[mine].copy_(bert_state[theirs])
    return sorted(set(ours) - set(mapping.values()))
