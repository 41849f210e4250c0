"""The trainer switches the model back to training mode only when something (evaluation) left it in eval mode:
every training forward runs in training mode, every evaluation forward in eval mode."""
from __future__ import annotations

import torch

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.registry import RUNNERS


def test_training_steps_after_evaluations_run_in_training_mode(tmp_path):
    model = make_model()
    seen: list[tuple[bool, bool]] = []  # (grad enabled: a training forward, model.training)
    model.register_forward_pre_hook(lambda module, args: seen.append((torch.is_grad_enabled(), module.training)))
    datasets = {"train": ToyTokens(16, random_mask=False), "valid": ToyTokens(4, random_mask=False)}
    runner = RUNNERS.build(run_cfg(valid_splits=["valid"], eval_every=1, max_steps=3, eval_batch_size=4),
                           model=model, datasets=datasets, output_dir=str(tmp_path))
    runner.train()
    training = [mode for grad, mode in seen if grad]
    evaluation = [mode for grad, mode in seen if not grad]
    assert training == [True] * 3 and evaluation == [False] * 3
