"""apply_delta / make_delta on tiny LLaMA checkpoints: exact reconstruction, vocabulary growth, checks, CLI."""
from __future__ import annotations

import importlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tools.tiny_checkpoints import random_state, read_weights, save_state, tiny_config
from vlmkit.errors import DataError
from vlmkit.tools import apply_delta, make_delta
from vlmkit.tools.checksums import verify_checksums


def added(base: dict, delta: dict) -> dict:
    """What apply-delta promises: shared rows base + delta (summed in float32), extra rows from the delta."""
    out = {}
    for name, d in delta.items():
        b = base[name]
        t = d.float().clone()
        t[: b.shape[0]] += b.float()
        out[name] = t.to(d.dtype)
    return out


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """Base with 32 tokens; a delta and its target with 33 (one added token), as with Vicuna's 32000 -> 32001."""
    root = tmp_path_factory.mktemp("grown")
    base_config, target_config = tiny_config(32), tiny_config(33)
    base = random_state(base_config, seed=0)
    delta = random_state(target_config, seed=1, scale=0.002)
    return root, base_config, target_config, base, delta, added(base, delta)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("sharded", [False, True])
def test_base_plus_delta_reproduces_target_exactly(grown, fmt, sharded):
    root, base_config, target_config, base, delta, expected = grown
    case = root / f"{fmt}-{'sharded' if sharded else 'single'}"
    shard_size = "6KB" if sharded else None
    save_state(base, base_config, case / "base", fmt=fmt, shard_size=shard_size)
    save_state(delta, target_config, case / "delta", fmt=fmt, shard_size=shard_size, tokenizer=True)
    n_input_shards = len(list((case / "delta").glob("*.bin" if fmt == "bin" else "*.safetensors")))
    assert (n_input_shards > 1) == sharded

    report = apply_delta(case / "base", case / "delta", case / "target", max_shard_size="8KB", progress=False)

    result = read_weights(case / "target")
    assert result.keys() == expected.keys()
    for name in expected:
        assert torch.equal(result[name], expected[name]), name
    assert report.tensors == len(expected)
    assert len(list((case / "target").glob("model-*.safetensors"))) > 1  # written sharded, with an index
    for side_file in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (case / "target" / side_file).read_bytes() == (case / "delta" / side_file).read_bytes()


def test_row_ranges_stream_large_tensors_exactly(grown, monkeypatch, tmp_path):
    """Ranges of one row (64 bytes): the grown rows start mid-tensor and every tensor is cut into many parts."""
    module = importlib.import_module("vlmkit.tools.apply_delta")  # the package re-exports a function by that name

    monkeypatch.setattr(module, "MIN_CHUNK_BYTES", 1)
    monkeypatch.setattr(module, "MAX_CHUNK_BYTES", 64)
    _, base_config, target_config, base, delta, expected = grown
    save_state(base, base_config, tmp_path / "base", fmt="bin", shard_size="6KB")
    save_state(delta, target_config, tmp_path / "delta", shard_size="6KB")
    apply_delta(tmp_path / "base", tmp_path / "delta", tmp_path / "target", progress=False)
    result = read_weights(tmp_path / "target")
    assert all(torch.equal(result[name], expected[name]) for name in expected)
    assert module._row_ranges((33, 16), torch.float32, 64)[-1] == (32, 33)


def test_vocabulary_growth_rows_and_report(grown):
    root, base_config, target_config, base, delta, _ = grown
    save_state(base, base_config, root / "vg-base")
    save_state(delta, target_config, root / "vg-delta")
    report = apply_delta(root / "vg-base", root / "vg-delta", root / "vg-target", progress=False)
    result = read_weights(root / "vg-target")
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert result[name].shape == (33, 16)
        assert torch.equal(result[name][32], delta[name][32])  # the added token's row comes whole from the delta
        assert torch.equal(result[name][:32], base[name] + delta[name][:32])
    assert (report.growth.base_rows, report.growth.new_rows) == (32, 33)
    assert sorted(report.growth.tensors) == ["lm_head.weight", "model.embed_tokens.weight"]
    text = report.format()
    assert "grown from 32 to 33 rows (1 added)" in text and "rows 32..32 copied whole from the delta" in text


def test_result_loads_with_auto_model_and_matches_target_logits(grown):
    from transformers import AutoModelForCausalLM

    root, base_config, target_config, base, delta, expected = grown
    save_state(base, base_config, root / "lg-base", shard_size="6KB")
    save_state(delta, target_config, root / "lg-delta", shard_size="6KB")
    apply_delta(root / "lg-base", root / "lg-delta", root / "lg-target", max_shard_size="8KB", progress=False)
    reference = save_state(expected, target_config, root / "lg-reference")

    tokens = torch.tensor([[1, 5, 9, 32, 7]])  # 32 is the added token
    rebuilt = AutoModelForCausalLM.from_pretrained(root / "lg-target").eval()
    original = AutoModelForCausalLM.from_pretrained(reference).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(tokens).logits, original(tokens).logits)


def fine_tuned(base: dict, config, seed: int) -> dict:
    """A target the way fine-tuning makes one: base + updates (float32 sums), new vocabulary rows fresh."""
    update = random_state(config, seed=seed, scale=0.002)
    return added(base, update)


def _round_trip(tmp_path, base, base_config, target, target_config, fmt="safetensors", delta_dtype=None):
    save_state(base, base_config, tmp_path / "base", fmt=fmt, shard_size="6KB")
    save_state(target, target_config, tmp_path / "target", fmt=fmt, shard_size="6KB", tokenizer=True)
    made = make_delta(tmp_path / "base", tmp_path / "target", tmp_path / "delta", dtype=delta_dtype, progress=False)
    apply_delta(tmp_path / "base", tmp_path / "delta", tmp_path / "rebuilt", progress=False)
    return made, read_weights(tmp_path / "delta"), read_weights(tmp_path / "rebuilt")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_make_delta_then_apply_round_trips_bit_exactly_in_float32(tmp_path, fmt):
    base_config, target_config = tiny_config(32), tiny_config(33)
    base = random_state(base_config, seed=2)
    target = fine_tuned(base, target_config, seed=3)
    made, delta, rebuilt = _round_trip(tmp_path, base, base_config, target, target_config, fmt)

    assert made.round_trip.inexact_elements == 0
    assert made.round_trip.elements == sum(t.numel() for t in target.values())
    assert "reproduces the target exactly" in made.format()
    assert delta["lm_head.weight"].dtype == torch.float32
    assert torch.equal(delta["lm_head.weight"][32], target["lm_head.weight"][32])  # added row stored whole
    assert all(torch.equal(rebuilt[name], target[name]) for name in target)
    assert (tmp_path / "rebuilt" / "tokenizer.json").is_file()


def test_float64_delta_round_trips_an_unrelated_float32_target_exactly(tmp_path):
    config = tiny_config(32)
    base, target = random_state(config, seed=4), random_state(config, seed=5)  # large differences, sign changes
    made, delta, rebuilt = _round_trip(tmp_path, base, config, target, config, delta_dtype="float64")
    assert made.round_trip.inexact_elements == 0
    assert delta["lm_head.weight"].dtype == torch.float64
    assert all(rebuilt[name].dtype == torch.float32 and torch.equal(rebuilt[name], target[name]) for name in target)


@pytest.mark.parametrize("delta_dtype, hint", [("float16", "float64"), ("float32", "float64")])
def test_make_delta_reports_exactly_what_a_narrow_delta_loses(tmp_path, delta_dtype, hint):
    config = tiny_config(32)
    base, target = random_state(config, seed=4), random_state(config, seed=5)
    made, _, rebuilt = _round_trip(tmp_path, base, config, target, config, delta_dtype=delta_dtype)
    wrong = sum(int((rebuilt[name] != target[name]).sum()) for name in target)
    assert wrong > 0
    assert made.round_trip.inexact_elements == wrong
    assert f"--dtype {hint} for an exact round trip" in made.format()


@pytest.fixture
def base_dir(tmp_path):
    config = tiny_config(32)
    return save_state(random_state(config, seed=6), config, tmp_path / "base", shard_size="6KB")


def _delta_with(tmp_path, change) -> Path:
    config = tiny_config(32)
    state = random_state(config, seed=7)
    change(state)
    directory = tmp_path / "delta"
    directory.mkdir()
    from safetensors.torch import save_file

    save_file(state, directory / "model.safetensors")
    config.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("model.layers.1.mlp.down_proj.weight"),
     "model.layers.1.mlp.down_proj.weight: in the base but missing from the delta"),
    (lambda s: s.update({"model.layers.0.self_attn.q_proj.weight": torch.zeros(8, 16)}),
     "model.layers.0.self_attn.q_proj.weight: shape [16, 16] in the base but [8, 16] in the delta"),
    (lambda s: s.update({"model.layers.0.self_attn.k_proj.weight": torch.zeros(20, 16)}),
     "model.layers.0.self_attn.k_proj.weight: grows to 20 rows from 16, but the base config.json says "
     "vocab_size=32"),
    (lambda s: s.update({"model.extra.weight": torch.zeros(3)}),
     "model.extra.weight: in the delta but not in the base (unexpected tensor)"),
])
def test_mismatched_tensor_fails_naming_it_before_writing(tmp_path, base_dir, change, message):
    delta = _delta_with(tmp_path, change)
    with pytest.raises(DataError) as caught:
        apply_delta(base_dir, delta, tmp_path / "target", progress=False)
    assert message in str(caught.value)
    assert not (tmp_path / "target").exists()


def test_refuses_meta_checkpoint_and_occupied_output(tmp_path, base_dir):
    meta = tmp_path / "llama-meta"
    meta.mkdir()
    (meta / "params.json").write_text("{}")
    with pytest.raises(DataError, match="original Meta LLaMA checkpoint"):
        apply_delta(meta, base_dir, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="already holds weights"):
        apply_delta(base_dir, base_dir, _occupied(tmp_path), progress=False)


def _occupied(tmp_path) -> Path:
    out = tmp_path / "occupied"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"")
    return out


def test_cli_applies_with_dtype_and_checksums(grown, repo_root):
    root, base_config, target_config, base, delta, expected = grown
    save_state(base, base_config, root / "cli-base", fmt="bin", shard_size="6KB")
    save_state(delta, target_config, root / "cli-delta", shard_size="6KB", tokenizer=True)
    target = root / "cli-target"
    run = subprocess.run(
        [sys.executable, str(repo_root / "apply_delta.py"), "--base", str(root / "cli-base"), "--delta",
         str(root / "cli-delta"), "--target", str(target), "--dtype", "bfloat16", "--checksum", "--no-progress"],
        capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "grown from 32 to 33 rows" in run.stdout and "dtype:  bfloat16" in run.stdout
    result = read_weights(target)
    assert all(t.dtype == torch.bfloat16 for t in result.values())
    assert torch.equal(result["lm_head.weight"], expected["lm_head.weight"].bfloat16())
    listed = (target / "SHA256SUMS").read_text()
    assert "model.safetensors.index.json" in listed and "tokenizer.json" in listed and "config.json" in listed
    assert verify_checksums(target / "SHA256SUMS", target) == len(listed.splitlines())

    (target / "tokenizer.json").write_text("{}")
    with pytest.raises(DataError, match="tokenizer.json: sha256 differs"):
        verify_checksums(target / "SHA256SUMS", target)


def test_default_dtype_comes_from_the_delta_config(tmp_path, base_dir):
    config = tiny_config(32)
    save_state(random_state(config, seed=8), config, tmp_path / "delta", dtype=torch.float16)
    assert json.loads((tmp_path / "delta" / "config.json").read_text())["dtype"] == "float16"
    report = apply_delta(base_dir, tmp_path / "delta", tmp_path / "target", progress=False)
    assert report.dtype.startswith("float16")
    assert all(t.dtype == torch.float16 for t in read_weights(tmp_path / "target").values())


def test_never_overwrites_without_overwrite_and_lists_the_files(tmp_path, base_dir, repo_root):
    config = tiny_config(32)
    delta = save_state(random_state(config, seed=9), config, tmp_path / "delta", shard_size="6KB", tokenizer=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")  # no weights, but a file the run would replace
    (out / "pytorch_model.bin").write_bytes(b"old")  # stale weights the new index would not mention
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError) as caught:
        apply_delta(base_dir, delta, out, progress=False)
    assert "- config.json" in str(caught.value) and "- pytorch_model.bin" in str(caught.value)
    assert "--overwrite" in str(caught.value)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "pytorch_model.bin"]

    cli = runpy.run_path(str(repo_root / "apply_delta.py"))["main"]
    assert cli(["--base", str(base_dir), "--delta", str(delta), "--target", str(out), "--overwrite",
                "--no-progress"]) == 0
    assert (out / "config.json").read_bytes() == (delta / "config.json").read_bytes()
    assert not (out / "pytorch_model.bin").exists() and (out / "notes.txt").read_text() == "mine"
    assert read_weights(out).keys() == read_weights(delta).keys()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.parametrize("damage, message", [
    (lambda shard: shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2]), "truncated"),
    (lambda shard: __import__("safetensors.torch").torch.save_file({"other": torch.ones(1)}, str(shard)),
     "cannot read tensor"),
])
def test_shard_failing_mid_run_is_named_and_partial_output_removed(tmp_path, base_dir, monkeypatch, damage,
                                                                   message):
    """The last delta shard breaks after the headers were checked, once earlier output shards are written."""
    module = importlib.import_module("vlmkit.tools.apply_delta")
    config = tiny_config(32)
    delta = save_state(random_state(config, seed=10), config, tmp_path / "delta", shard_size="6KB")
    last_shard = sorted(delta.glob("model-*.safetensors"))[-1]
    pair_tensors = module.pair_tensors

    def pair_then_damage(*args, **kwargs):
        result = pair_tensors(*args, **kwargs)
        damage(last_shard)
        return result

    monkeypatch.setattr(module, "pair_tensors", pair_then_damage)
    for target, overwrite in ((tmp_path / "new", False), (_occupied(tmp_path), True)):
        before = sorted(p.name for p in target.iterdir()) if target.exists() else None
        save_state(random_state(config, seed=10), config, delta, shard_size="6KB")  # undamaged again
        with pytest.raises(DataError, match=f"{last_shard}: .*{message}") as caught:
            apply_delta(base_dir, delta, target, max_shard_size="4KB", progress=False, overwrite=overwrite)
        assert "partial output was removed" in str(caught.value)
        assert (sorted(p.name for p in target.iterdir()) if target.exists() else None) == before
        assert (target / "model.safetensors").exists() == overwrite  # the occupied folder's file is untouched
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
