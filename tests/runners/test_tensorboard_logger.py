"""The TensorBoard logger: its event files hold every logged step's scalars, as metrics.jsonl does, read back with
TensorBoard's own EventAccumulator; a resumed run replaces the interrupted attempt's later steps (purge_step)."""
import json

import pytest

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.registry import RUNNERS

KEYS = ("loss", "lr", "grad_norm")


def scalars(log_dir):
    """{tag: [(step, value), ...]} as TensorBoard shows them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def jsonl_rows(run_dir):
    """{step: metrics} from metrics.jsonl, later lines (a resumed run) replacing earlier ones."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows if "event" not in row}


def train(run_dir, **overrides):
    cfg = run_cfg(clip_grad_norm=1.0, loggers=["jsonl", {"name": "tensorboard", "subdir": "tb"}], **overrides)
    return RUNNERS.build(cfg, model=make_model(), datasets={"train": ToyTokens(16)}, output_dir=str(run_dir)).train()


def test_event_files_hold_the_logged_scalars(tmp_path):
    train(tmp_path, max_steps=3)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    logged, shown = jsonl_rows(tmp_path), scalars(tmp_path / "tb")
    assert sorted(logged) == [1, 2, 3]
    for key in KEYS:
        assert [step for step, _ in shown[key]] == [1, 2, 3], key
        for step, value in shown[key]:
            assert value == pytest.approx(logged[step][key], rel=1e-6), (key, step)  # stored as float32


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    train(tmp_path, max_steps=4, save_every=2, keep_last=None)
    train(tmp_path, max_steps=5, resume_from=str(tmp_path / "checkpoints" / "step_00000002"))
    shown = scalars(tmp_path / "tb")
    assert [step for step, _ in shown["loss"]] == [1, 2, 3, 4, 5]  # steps 3 and 4 once, from the resumed run
    logged = jsonl_rows(tmp_path)
    assert [value for _, value in shown["loss"]] == pytest.approx([logged[s]["loss"] for s in range(1, 6)], rel=1e-6)
