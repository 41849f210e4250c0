"""run.packing: training tiny PLLaVA (answers of 1-12 words) on packed rows follows the unpacked run step for step
(losses and weights, token-weighted loss), and bad settings are refused naming the setting and what is accepted."""
from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from tests.runners.packed_ddp_worker import main as ddp_packed
from tests.runners.test_distributed import free_port
from tests.runners.varying_answers import VaryingAnswers, build_tiny_pllava, train_layout
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import RUNNERS


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("packing")
    plain = train_layout(out, "plain", batch_size=2, grad_accum_steps=2)
    packed = train_layout(out, "packed", batch_size=2, grad_accum_steps=2, packing={"max_length": 120})
    return out, plain, packed


def test_packed_training_gives_the_unpacked_losses_and_weights(runs):
    out, plain, packed = runs
    assert packed["losses"] == pytest.approx(plain["losses"], abs=1e-5)
    weights = {name: torch.load(out / f"{name}.pt", weights_only=True)["weights"] for name in ("plain", "packed")}
    assert weights["plain"].keys() == weights["packed"].keys()
    for key, tensor in weights["plain"].items():
        assert torch.allclose(weights["packed"][key], tensor, atol=1e-5), key


@pytest.mark.slow
def test_packed_ddp_over_two_processes_trains_as_one_unpacked_process(runs):
    """Each rank packs its own micro-batches; the step's supervised tokens, summed over ranks, are unchanged."""
    out, _, _ = runs
    single = train_layout(out, "single_1x4", batch_size=4)
    mp.spawn(ddp_packed, args=(2, free_port(), str(out)), nprocs=2, join=True)
    ddp = torch.load(out / "ddp_packed.pt", weights_only=True)
    assert ddp["losses"] == pytest.approx(single["losses"], abs=1e-5)
    reference = torch.load(out / "single_1x4.pt", weights_only=True)["weights"]
    for key, tensor in reference.items():
        assert torch.allclose(ddp["weights"][key], tensor, atol=1e-5), key


def test_the_packed_run_really_packed(tmp_path):
    """Each micro-batch of two conversations fits one row of 120 tokens: position ids restart inside it."""
    model = build_tiny_pllava(tmp_path)
    runner = RUNNERS.build({"name": "trainer", "strategy": "single", "max_steps": 1, "loggers": [], "shuffle": False,
                            "batch_size": 2, "scheduler": {"name": "constant", "init_lr": 1e-3},
                            "packing": {"max_length": 120}},
                           model=model, datasets={"train": VaryingAnswers(model)}, output_dir=str(tmp_path / "run"))
    runner.data.start_epoch(0, 0)
    batch = runner.data.draw()[0][0]
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    assert batch["position_ids"][0].eq(0).sum() >= 2


def trainer(tmp_path, model, packing, data=None):
    return RUNNERS.build({"name": "trainer", "strategy": "single", "max_steps": 1, "loggers": [], "batch_size": 4,
                          "shuffle": False, "scheduler": {"name": "constant", "init_lr": 1e-3}, "packing": packing},
                         model=model, datasets={"train": data or VaryingAnswers(model)},
                         output_dir=str(tmp_path / "run"))


def test_a_max_length_shorter_than_a_conversation_is_refused_naming_it(tmp_path):
    model = build_tiny_pllava(tmp_path)
    with pytest.raises(ConfigError, match=r"run\.packing\.max_length: 16 tokens cannot hold one conversation: its "
                                          r"video alone takes 16 visual tokens"):
        trainer(tmp_path, model, {"max_length": 16})
    runner = trainer(tmp_path, model, {"max_length": 30})  # room for the video, not for the longest conversation
    with pytest.raises(DataError, match=r"run\.packing\.max_length=30 is shorter than conversation\(s\) .* set "
                                        r"run\.packing\.max_length to \d+ or more"):
        runner.train()


def test_packing_settings_are_validated_with_the_config():
    base = {"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1.0}, "max_steps": 1}
    for packing, needle in (({"max_length": 0}, "run.packing.max_length"), ({"max_len": 8}, "max_len"),
                            (128, "run.packing")):
        errors = "\n".join(map(str, RUNNERS.check({**base, "packing": packing}, "run")))
        assert needle in errors, (packing, errors)
