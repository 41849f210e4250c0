"""FSDP's bytes per rank: every full-size recipe built on the meta device and sharded by the fsdp strategy itself
(torch fully_shard) as rank 0 of 8 on a fake process group; what the rank holds (parameter shards, gradient shards,
AdamW moments after a step) equals the sharding plan `vlmkit estimate --fsdp-plan` prints, which is the whole
model's figure / 8 within one dim-0 row per parameter. docs/training.md's table is that command's output."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from vlmkit.estimate.command import build_parser, main, meta_model
from vlmkit.estimate.fsdp_plan import rank_bytes

ROOT = Path(__file__).resolve().parents[2]
WORLD = 8
FULL_SIZE = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("train_configs/*/*.yaml")
                   if p.parent.name not in ("demo", "tiny"))


def local_bytes(tensors) -> int:
    return sum((t.to_local() if isinstance(t, DTensor) else t).numel() * t.element_size() for t in tensors)


@pytest.fixture(scope="module")
def fake_world():
    """This process as rank 0 of WORLD on torch's fake process group (collectives do nothing)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=WORLD)
    yield
    dist.destroy_process_group()


def shard_on_meta(config: str, **strategy_overrides):
    """The recipe's model on the meta device, sharded by its fsdp settings (or fsdp's defaults), and its optimizer
    after one step (so AdamW has created its moments)."""
    from omegaconf import DictConfig, OmegaConf

    from vlmkit.estimate.command import load
    from vlmkit.registry import OPTIMIZERS, STRATEGIES

    args = build_parser().parse_args([config, "--gpus", str(WORLD), "--strategy", "fsdp"])
    args.overrides = []
    model, settings = meta_model(config, args)
    run = load(config, [], hub=False).run
    spec = run.get("strategy")
    own = OmegaConf.to_container(spec) if isinstance(spec, DictConfig) and spec.get("name") == "fsdp" else {}
    strategy = STRATEGIES.build({**own, "name": "fsdp", **strategy_overrides}, "run.strategy")
    plan = rank_bytes(model, WORLD, settings.optimizer_states, strategy.shard_frozen)
    whole = rank_bytes(model, 1, settings.optimizer_states)
    strategy.shard(model, torch.device("meta"))
    optimizer = strategy.create_optimizer(OPTIMIZERS.build(run.get("optimizer", "adamw"), "run.optimizer"), model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    moments = [v for state in optimizer.state.values() for k, v in state.items() if k != "step"]
    held = {"weights": local_bytes(model.parameters()), "gradients": local_bytes(p.grad for p in trainable),
            "optimizer": local_bytes(moments)}
    return held, plan, whole, model


@pytest.mark.slow  # every full-size recipe built and sharded on the meta device
@pytest.mark.parametrize("config", FULL_SIZE)
def test_a_rank_holds_the_plans_bytes_the_whole_figure_over_the_world_size(fake_world, config):
    held, plan, whole, model = shard_on_meta(config)
    assert all(isinstance(p, DTensor) for p in model.parameters())  # frozen ones too (shard_frozen by default)
    assert held == {"weights": plan.weights, "gradients": plan.gradients, "optimizer": plan.optimizer}
    assert whole.total / WORLD <= plan.total <= whole.total / WORLD + plan.slack
    assert plan.total * WORLD / whole.total < 1.01  # padding dim 0 costs well under 1 % on every recipe
    assert plan.gradients > 0


@pytest.mark.slow
def test_frozen_parameters_left_whole_are_counted_whole(fake_world):
    held, plan, whole, model = shard_on_meta("train_configs/pllava/finetune_13b.yaml", shard_frozen=False)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and not any(isinstance(p, DTensor) for p in frozen)
    assert held["weights"] == plan.weights
    frozen_bytes = sum(p.numel() * p.element_size() for p in frozen)
    assert plan.weights > frozen_bytes > 0.9 * whole.weights  # the frozen 13B LLM and CLIP tower on every rank


def docs_table():
    text = (ROOT / "docs" / "training.md").read_text()
    command = re.search(r"^vlmkit estimate (.+--fsdp-plan.*)$", text, re.M).group(1)
    table = [line for line in text[text.index(command):].splitlines() if line.startswith("| ")]
    args = subprocess.run(["bash", "-c", f"printf '%s\\n' {command}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()
    return args, table


@pytest.mark.slow
def test_docs_table_is_the_commands_output_for_every_full_size_recipe(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    args, table = docs_table()
    assert sorted(a for a in args if a.endswith(".yaml")) == FULL_SIZE
    assert main(args) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert printed == table
