"""A damaged transformers checkpoint file fails naming the file and what is wrong, never a bare library error."""
from __future__ import annotations

import pytest
import safetensors.torch
import torch

from vlmkit.errors import DataError
from vlmkit.tools.checkpoint_files import Checkpoint


def half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name, save, message", [
    ("model.safetensors", lambda t, p: safetensors.torch.save_file(t, str(p)), "not a readable safetensors file"),
    ("pytorch_model.bin", lambda t, p: torch.save(t, p), "cannot be (memory-mapped|read) by torch.load"),
])
def test_truncated_weights_are_named(tmp_path, name, save, message):
    save({"w": torch.ones(256, 256)}, tmp_path / name)
    half(tmp_path / name)
    with pytest.raises(DataError, match=f"{tmp_path / name}: {message}"):
        Checkpoint(tmp_path)


def test_garbled_index_and_config_are_named(tmp_path):
    safetensors.torch.save_file({"w": torch.ones(2)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"vocab_size": 3')
    with pytest.raises(DataError, match=f"{tmp_path / 'config.json'}: cannot be read as JSON"):
        Checkpoint(tmp_path).config()
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(DataError, match="model.safetensors.index.json: cannot be read as JSON"):
        Checkpoint(tmp_path)
