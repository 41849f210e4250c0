"""`vlmkit estimate`: the memory formulas against hand-worked cases, the figures a meta-device build gives, and the
README's table for every full-size recipe."""
import re
import subprocess
from pathlib import Path

import pytest

from vlmkit.estimate import formulas
from vlmkit.estimate.command import main
from vlmkit.estimate.formulas import ParamBytes, state_memory

ROOT = Path(__file__).resolve().parents[2]
GB = 1e9


def test_fp32_adamw_is_16_bytes_per_trainable_parameter_replicated_by_ddp():
    params = ParamBytes(frozen=0, trainable=4 * 1e9)  # 1e9 fp32 parameters
    for world in (1, 8):
        states = state_memory(params, "replicate", world, optimizer_states=2)
        assert (states.weights, states.gradients, states.optimizer) == (4 * GB, 4 * GB, 8 * GB)
        assert states.total == 16 * GB


def test_fsdp_shards_weights_gradients_and_optimizer_state_by_world_size():
    states = state_memory(ParamBytes(frozen=0, trainable=4e9), "full_shard", 8, optimizer_states=2)
    assert states.total == 2 * GB
    frozen = state_memory(ParamBytes(frozen=14e9, trainable=0), "full_shard", 8, optimizer_states=2)
    assert frozen.weights == 14 * GB / 8


def test_zero1_shards_only_the_optimizer_state():
    states = state_memory(ParamBytes(frozen=0, trainable=4e9), "shard_optimizer", 8, optimizer_states=2)
    assert (states.weights, states.gradients, states.optimizer) == (4 * GB, 4 * GB, 1 * GB)


def test_frozen_bf16_7b_llm_is_14_gb_of_weights_and_nothing_else():
    states = state_memory(ParamBytes(frozen=7e9 * 2, trainable=0), "replicate", 8, optimizer_states=2)
    assert (states.weights, states.gradients, states.optimizer) == (14 * GB, 0, 0)


def test_layer_activations_follow_korthikanti_and_drop_the_quadratic_term_with_memory_efficient_attention():
    s, b, h, a = 4096, 1, 4096, 32  # a LLaMA-7B layer at 4k tokens, bf16
    eager = formulas.layer_activations(s, b, h, a, 2, quadratic=True)
    assert eager == s * b * h * (34 + 5 * a * s / h) == 3_254_779_904
    assert formulas.layer_activations(s, b, h, a, 2, quadratic=False) == 34 * s * h == 570_425_344
    assert formulas.layer_activations(s, b, h, a, 4, quadratic=False) == 2 * 570_425_344  # fp32 activations


def test_checkpointing_keeps_each_layers_input_plus_one_layer():
    s, b, h, a = 4096, 1, 4096, 32
    assert formulas.stack_activations(32, s, b, h, a, 2, False, checkpointing=False) == 32 * 570_425_344
    assert formulas.stack_activations(32, s, b, h, a, 2, False, checkpointing=True) == 32 * 2 * s * h + 570_425_344


def test_verdict_leaves_ten_percent_headroom():
    assert [formulas.verdict(x * GB, 80 * GB) for x in (72, 72.1, 80, 80.1)] == ["yes", "tight", "tight", "no"]


def estimate_rows(capsys, *argv):
    assert main(list(argv)) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    header, rows = lines[0], lines[1:]
    names = [c.strip() for c in header.strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in r.strip("|").split("|")))) for r in rows]


def test_frozen_fp16_vicuna_7b_of_video_llama_reads_as_its_bytes_on_the_meta_device(capsys):
    # Video-LLaMA stage 2: Vicuna-7B (6.74e9) and EVA ViT-g (~1.0e9) frozen in fp16, the Q-Formers train in fp32
    (row,) = estimate_rows(capsys, "train_configs/video_llama/stage2_instruct.yaml", "--gpus", "8")
    assert row["params"] == "7.85 B" and row["trainable"] == "22.1 M"
    assert row["weights"] == "16.0" and row["grads"] == "0.1" and row["optimizer"] == "0.2"
    assert row["visual tokens"] == "32" and row["seq len"] == "512" and row["micro-batch"] == "4"


def test_flags_override_the_run_section(capsys):
    config = "train_configs/videotgb/joint_stage.yaml"  # flan-t5-xl trains in full: ~12 GB fp32 weights
    (ddp,) = estimate_rows(capsys, config, "--gpus", "8")
    (fsdp,) = estimate_rows(capsys, config, "--gpus", "8", "--strategy", "fsdp", "--micro-batch", "1",
                            "--precision", "fp32")
    assert (ddp["strategy x GPUs"], fsdp["strategy x GPUs"]) == ("ddp x 8", "fsdp x 8")
    assert float(fsdp["grads"]) == pytest.approx(float(ddp["grads"]) / 8, abs=0.05)
    assert float(fsdp["optimizer"]) == pytest.approx(float(ddp["optimizer"]) / 8, abs=0.05)
    assert fsdp["micro-batch"] == "1" and fsdp["precision"] == "fp32"


def test_single_process_strategy_refuses_several_gpus(capsys):
    from vlmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="'single' runs one process"):
        main(["train_configs/videotgb/joint_stage.yaml", "--gpus", "2", "--strategy", "single"])


def readme_estimate():
    """The README's estimate command (its shell globs expanded by bash) and the table under it."""
    text = (ROOT / "README.md").read_text()
    command = re.search(r"^vlmkit estimate (.+)$", text, re.M).group(1)
    table = [line for line in text[text.index(command):].splitlines() if line.startswith("| ")]
    args = subprocess.run(["bash", "-c", f"printf '%s\\n' {command}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()
    return args, table


@pytest.mark.slow  # every full-size recipe built on the meta device: ~30 s on 2 cores
def test_readme_table_is_the_commands_output_for_every_full_size_recipe(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    args, table = readme_estimate()
    configs = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("train_configs/*/*.yaml")
               if p.parent.name not in ("demo", "tiny"))  # tiny by design: the demo and the first run
    assert sorted(a for a in args if a.endswith(".yaml")) == configs
    assert main(args) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert printed == table


def test_vlmkit_command_delegates_estimate(capsys):
    from vlmkit.cli import main as vlmkit_main

    with pytest.raises(SystemExit) as exit_info:
        vlmkit_main(["estimate", "--help"])
    assert exit_info.value.code == 0 and "--gpu-mem" in capsys.readouterr().out
