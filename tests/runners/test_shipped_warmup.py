"""Warm-up is never a silent no-op: every shipped train config with warm-up steps starts below its peak and
reaches it when the warm-up ends, as the original recipes ramp (from 0, or from LAVIS's warmup_lr)."""
from pathlib import Path

import pytest
import torch

from vlmkit.config import load_config
from vlmkit.errors import ConfigError
from vlmkit.registry import SCHEDULERS
from vlmkit.schema import to_plain

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = sorted(ROOT.glob("train_configs/**/*.yaml"))


def build(cfg: dict, total_steps: int, steps_per_epoch: int):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return SCHEDULERS.build(cfg, optimizer=optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch)


def lr_at(scheduler, step: int) -> float:
    scheduler.set_step(step)
    return scheduler.optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_warmup_ramps_to_the_peak(path):
    cfg = to_plain(load_config(path, purpose="train").run.scheduler)
    warmup = cfg.get("warmup_steps", 0)
    if not warmup:
        pytest.skip("no warm-up in this recipe")
    # two epochs of warm-up length each keeps an epoch-granular cosine (LAVIS) at its peak when warm-up ends
    scheduler = build(cfg, total_steps=10 * warmup, steps_per_epoch=2 * warmup)
    first, middle, peak = lr_at(scheduler, 0), lr_at(scheduler, warmup // 2), lr_at(scheduler, warmup)
    assert first < middle < peak == pytest.approx(cfg["init_lr"])
    assert first == pytest.approx(cfg.get("warmup_lr") or 0.0)


def test_the_originals_that_ramp_are_shipped_with_warmup():
    with_warmup = [p for p in TRAIN_CONFIGS
                   if load_config(p, purpose="train").run.scheduler.get("warmup_steps", 0) > 0]
    assert len(with_warmup) == len(TRAIN_CONFIGS), sorted(set(TRAIN_CONFIGS) - set(with_warmup))


def test_warmup_ramps_from_zero_by_default_and_a_flat_warmup_is_an_error():
    scheduler = build({"name": "linear_warmup_cosine", "init_lr": 1e-3, "warmup_steps": 4}, 20, 20)
    assert [lr_at(scheduler, s) for s in range(5)] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3])
    with pytest.raises(ConfigError, match="warmup_lr: equals init_lr.*would be flat"):
        build({"name": "constant", "init_lr": 1e-3, "warmup_lr": 1e-3, "warmup_steps": 4}, 20, 20)
