"""FSDP options on two CPU processes (gloo) training tiny PLLaVA: saves gather only the trainable parameters;
activation checkpointing, CPU offload and whole frozen parameters train exactly as one process does; the mixed
precision policy's reduce_dtype is the dtype gradients are reduce-scattered in; the model is sharded in host
memory before any of it moves to the device."""
from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.fsdp_worker import main
from tests.runners.test_distributed import free_port
from tests.runners.varying_answers import build_tiny_pllava, train_layout
from vlmkit.runners.checkpoint import latest, load_tensors

ATOL = 1e-5  # two processes reduce in another order than one; the token-weighted loss tests use the same bound


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp_options")
    mp.spawn(main, args=(2, free_port(), str(out)), nprocs=2, join=True)
    train_layout(out, "single", batch_size=4)  # the same global batch of 4 in one process
    return out


def result(out, name):
    return torch.load(out / f"{name}.pt", weights_only=True), json.loads((out / f"{name}.json").read_text())


def assert_same_weights(weights, reference):
    assert weights.keys() == reference.keys()
    for key, tensor in reference.items():
        assert torch.allclose(weights[key], tensor, atol=ATOL), key


@pytest.mark.slow
def test_saves_gather_only_trainable_parameters_and_hold_only_them(runs, tmp_path):
    run, log = result(runs, "fsdp")
    assert log["frozen"] > 10 * log["trainable"]  # the frozen CLIP tower and LLaMA base dwarf LoRA + projector
    assert log["frozen_sharded"] > 0 and log["offloaded"] == [False]
    # every save (the runner's last checkpoint, then the worker's own) all-gathers exactly the trainable elements
    assert log["gathered"] == [log["trainable"], log["trainable"]]
    single = torch.load(runs / "single.pt", weights_only=True)["weights"]
    saved = load_tensors(latest(runs / "fsdp" / "checkpoints"))
    trainable = {n for n, p in build_tiny_pllava(tmp_path).named_parameters() if p.requires_grad}
    assert saved.keys() == trainable
    assert_same_weights(saved, single)
    assert_same_weights(run["weights"], single)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp_units_ckpt", "fsdp_offload", "fsdp_frozen_whole"])
def test_option_trains_as_one_process(runs, name):
    run, log = result(runs, name)
    single = torch.load(runs / "single.pt", weights_only=True)
    assert run["losses"] == pytest.approx(single["losses"], abs=ATOL)
    assert_same_weights(run["weights"], single["weights"])
    assert log["gathered"] == [log["trainable"], log["trainable"]]
    assert log["offloaded"] == [name == "fsdp_offload"]  # CPUOffloadPolicy: every shard kept on the CPU
    frozen_parameters = 0 if name == "fsdp_frozen_whole" else result(runs, "fsdp")[1]["frozen_sharded"]
    assert log["frozen_sharded"] == frozen_parameters  # shard_frozen: false leaves them whole (not DTensors)
    if name == "fsdp_units_ckpt":  # checkpoint wrappers sharded as FSDP units
        assert log["wrappers"] == ["FSDPCheckpointWrapper"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsdp", "fsdp_units_ckpt", "fsdp_offload", "fsdp_bf16"])
def test_the_model_is_sharded_before_it_moves_to_the_device(runs, name):
    """Each rank's model holds its half of the parameters (plus dim-0 padding) when it first gets device storage;
    DDP's replica is the reference, moved whole."""
    log, whole = result(runs, name)[1], result(runs, "ddp_ckpt")[1]
    total = log["trainable"] + log["frozen"]
    assert all(held < 0.51 * total for _, held in log["moves"]), log["moves"]
    (device, held), = log["moves"]
    assert device == "cpu" and total / 2 <= held
    assert whole["moves"] == [["cpu", total]]


@pytest.mark.slow
def test_frozen_parameters_left_whole_move_whole_and_the_rest_as_shards(runs):
    log = result(runs, "fsdp_frozen_whole")[1]
    (device, held), = log["moves"]
    assert log["frozen"] + log["trainable"] / 2 <= held < log["frozen"] + 0.51 * log["trainable"]


@pytest.mark.slow
def test_resuming_with_every_option_is_exact(runs):
    (straight, _), (resumed, _) = result(runs, "resume_straight"), result(runs, "resumed")
    assert resumed["losses"] == straight["losses"][2:]  # step 3 only, the same loss
    assert straight["weights"].keys() == resumed["weights"].keys()
    for key, tensor in straight["weights"].items():
        assert torch.equal(resumed["weights"][key], tensor), key


@pytest.mark.slow
def test_ddp_with_checkpointed_layers_trains_as_one_process(runs):
    run, log = result(runs, "ddp_ckpt")
    single = torch.load(runs / "single.pt", weights_only=True)
    assert log["wrappers"] == ["CheckpointWrapper"]
    assert run["losses"] == pytest.approx(single["losses"], abs=ATOL)
    assert_same_weights(run["weights"], single["weights"])


@pytest.mark.slow
def test_reduce_dtype_is_the_dtype_gradients_are_reduce_scattered_in(runs):
    assert result(runs, "fsdp")[1]["reduce_dtypes"] == ["torch.float32"]
    assert result(runs, "fsdp_bf16")[1]["reduce_dtypes"] == ["torch.bfloat16"]  # default: param_dtype
    assert result(runs, "fsdp_bf16_reduce_fp32")[1]["reduce_dtypes"] == ["torch.float32"]
    for name in ("fsdp_bf16", "fsdp_bf16_reduce_fp32"):
        assert all(torch.isfinite(t).all() for t in result(runs, name)[0]["weights"].values())


def check_strategy(strategy: dict) -> str:
    from vlmkit.registry import RUNNERS

    return "\n".join(map(str, RUNNERS.check({"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1.0},
                                             "max_steps": 1, "strategy": strategy}, "run")))


def test_mixed_precision_and_offload_settings_are_validated():
    from vlmkit.errors import ConfigError
    from vlmkit.registry import STRATEGIES

    errors = check_strategy({"name": "fsdp", "reduce_dtype": "bf17", "offload": "gpu"})
    assert "run.strategy.reduce_dtype" in errors and "'fp32', 'bf16', 'fp16'" in errors
    assert "run.strategy.offload" in errors and "'cpu'" in errors
    narrow = {"name": "fsdp", "param_dtype": "bf16", "reduce_dtype": "fp16"}
    assert "run.strategy.reduce_dtype: fp16 cannot hold every bf16 gradient" in check_strategy(narrow)
    with pytest.raises(ConfigError, match="fp16 cannot hold every bf16 gradient"):
        STRATEGIES.build(narrow, "run.strategy")
    with pytest.raises(ConfigError, match=r"run.strategy.output_dtype: unknown floating-point type 'half'.*bf16"):
        STRATEGIES.get("fsdp")(output_dtype="half")  # built in code, past the schema
    assert check_strategy({"name": "fsdp", "param_dtype": "bf16", "reduce_dtype": "fp32", "output_dtype": "fp32",
                           "offload": "cpu", "shard_frozen": False}) == ""
