"""Parameter groups and learning-rate schedules."""
from __future__ import annotations

import math

import pytest
import torch

from tests.runners.toy import make_model
from vlmkit.errors import ConfigError
from vlmkit.registry import OPTIMIZERS, SCHEDULERS
from vlmkit.runners.strategies.base import Strategy


def optimizer_for(model, **cfg):
    spec = OPTIMIZERS.build({"name": "adamw", **cfg})
    return spec.create(spec.param_groups(Strategy().trainable_parameters(model)))


def group_of(optimizer, param):
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


def test_groups_skip_decay_on_norms_and_biases_and_leave_frozen_out():
    model = make_model()
    opt = optimizer_for(model, weight_decay=0.1, lr_scale={"projector": 10.0})
    assert group_of(opt, model.head.weight)["weight_decay"] == 0.1
    assert group_of(opt, model.head.bias)["weight_decay"] == 0.0
    assert group_of(opt, model.norm.weight)["weight_decay"] == 0.0
    assert group_of(opt, model.projector.weight)["lr_scale"] == 10.0
    assert group_of(opt, model.head.weight)["lr_scale"] == 1.0
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.frozen.weight) not in in_optimizer and id(model.frozen.bias) not in in_optimizer


def test_lr_scale_with_an_unknown_prefix_names_the_modules():
    with pytest.raises(ConfigError, match="no trainable parameter name starts with 'projecter'.*projector"):
        optimizer_for(make_model(), lr_scale={"projecter": 10.0})


def schedule(name, steps, **cfg):
    model = make_model()
    opt = optimizer_for(model, lr_scale={"projector": 10.0})
    sched = SCHEDULERS.build({"name": name, **cfg}, optimizer=opt, total_steps=steps, steps_per_epoch=5)
    rates = []
    for step in range(steps):
        sched.set_step(step)
        rates.append((group_of(opt, model.head.weight)["lr"], group_of(opt, model.projector.weight)["lr"]))
    return rates


@pytest.mark.parametrize("name,cfg", [
    ("linear_warmup_cosine", {"init_lr": 1e-3, "min_lr": 1e-5, "warmup_lr": 1e-6, "warmup_steps": 4}),
    ("linear_warmup_step", {"init_lr": 1e-3, "min_lr": 1e-5, "warmup_lr": 1e-6, "warmup_steps": 4,
                            "decay_rate": 0.5}),
    ("constant", {"init_lr": 1e-3, "warmup_lr": 1e-6, "warmup_steps": 4}),
])
def test_every_scheduler_warms_up_and_honours_group_scales(name, cfg):
    rates = schedule(name, 20, **cfg)
    base = [r[0] for r in rates]
    assert base[0] == pytest.approx(1e-6)
    assert base[2] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 2 / 4)
    assert base[4] == pytest.approx(1e-3)
    for head, projector in rates:
        assert projector == pytest.approx(10 * head)
    assert min(base[4:]) >= 1e-5 - 1e-12


def test_cosine_reaches_min_lr_and_step_decays_per_epoch():
    cosine = [r[0] for r in schedule("cosine", 11, init_lr=1.0, min_lr=0.1, warmup_steps=1)]
    assert cosine[1] == pytest.approx(1.0) and cosine[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.9)))
    step = [r[0] for r in schedule("step", 15, init_lr=1.0, decay_rate=0.5)]
    assert step[4] == 1.0 and step[5] == 0.5 and step[10] == 0.25  # steps_per_epoch = 5
    lavis = [r[0] for r in schedule("cosine", 10, init_lr=1.0, min_lr=0.0, granularity="epoch")]
    assert lavis[0] == lavis[4] == 1.0 and lavis[5] == pytest.approx(0.5)  # 2 epochs: cos(pi/2) after the first


class NamedLikeNorms(torch.nn.Module):
    """2-D weights whose names contain norm-ish letters ('bn' in 'subnet', 'ln' in 'kiln', 'norm' in 'normal_proj')."""

    def __init__(self):
        super().__init__()
        self.subnet = torch.nn.Linear(4, 4)
        self.kiln = torch.nn.Linear(4, 4)
        self.normal_proj = torch.nn.Linear(4, 4)
        self.bn = torch.nn.BatchNorm1d(4)
        self.ln_post = torch.nn.LayerNorm(4)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, 3, 4))
        self.pos_embed_scale = torch.nn.Parameter(torch.zeros(2, 4))


def test_no_decay_is_decided_by_shape_and_whole_name_parts_not_substrings():
    model = NamedLikeNorms()
    opt = optimizer_for(model, weight_decay=0.1, no_decay=["pos_embed"])
    for decayed in (model.subnet.weight, model.kiln.weight, model.normal_proj.weight, model.pos_embed_scale):
        assert group_of(opt, decayed)["weight_decay"] == 0.1
    for kept in (model.subnet.bias, model.bn.weight, model.bn.bias, model.ln_post.weight, model.pos_embed):
        assert group_of(opt, kept)["weight_decay"] == 0.0
