"""Tiny LLaMA checkpoints with random weights, saved the ways real ones are (sharded or not, safetensors or .bin)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def tiny_config(vocab_size: int = 32, **overrides) -> LlamaConfig:
    settings = dict(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaConfig(**{**settings, **overrides})


def random_state(config: LlamaConfig, seed: int, scale: float = 0.02) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    names_shapes = {k: v.shape for k, v in LlamaForCausalLM(config).state_dict().items()}
    return {name: torch.randn(shape, generator=generator) * scale for name, shape in names_shapes.items()}


def save_state(state: dict[str, torch.Tensor], config: LlamaConfig, directory: Path, *, fmt: str = "safetensors",
               shard_size: str | None = None, dtype: torch.dtype = torch.float32, tokenizer: bool = False) -> Path:
    """save_pretrained of a model holding `state`; .bin shards are rewritten from it with torch.save."""
    config.dtype = dtype
    model = LlamaForCausalLM(config)
    model.load_state_dict(state)
    model.to(dtype).save_pretrained(directory, max_shard_size=shard_size or "1GB")
    if fmt == "bin":
        _convert_to_bin(directory)
    if tokenizer:
        make_tokenizer(config.vocab_size).save_pretrained(directory)
    return directory


def _convert_to_bin(directory: Path) -> None:
    # transformers 5 writes only safetensors; old checkpoints (Vicuna deltas) are torch.save'd .bin shards.
    index_file = directory / "model.safetensors.index.json"
    if not index_file.exists():
        torch.save(load_file(directory / "model.safetensors"), directory / "pytorch_model.bin")
        (directory / "model.safetensors").unlink()
        return
    weight_map = json.loads(index_file.read_text())["weight_map"]
    renamed = {}
    for shard in dict.fromkeys(weight_map.values()):
        bin_name = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
        torch.save(load_file(directory / shard), directory / bin_name)
        (directory / shard).unlink()
        renamed[shard] = bin_name
    index = {"metadata": {}, "weight_map": {name: renamed[shard] for name, shard in weight_map.items()}}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    index_file.unlink()


def make_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def read_weights(directory: Path) -> dict[str, torch.Tensor]:
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    state = {}
    for shard in dict.fromkeys(index["weight_map"].values()):
        state.update(load_file(directory / shard))
    return state
