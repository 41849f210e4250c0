"""Reruns of the demo into one output folder (python -m vlmkit.demo, at a tiny size): the same settings again,
predictions left by something else, other settings (refused in one line), other settings with --overwrite.
The figures are always the current run's: every reported prediction carries the current fingerprint."""
import json

import pytest

from vlmkit.demo import pipeline as demo

TINY = demo.DemoSize(train_videos=24, test_videos=3, stage1_steps=2, stage2_steps=2, batch_size=4, warmup_steps=1)


def run(capsys, out, *args):
    code = demo.main(["--quick", "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_current(out, seed):
    """results.json is this run's, and every prediction it scores was made by this run's weights and data."""
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == seed
    evaluation = results["evaluation"]
    assert evaluation["checkpoint"].startswith(str(out / "stage2"))
    for key, entry in evaluation["datasets"].items():
        records = [json.loads(line) for line in open(entry["predictions"])]
        assert len(records) == entry["num_predictions"] == entry["dataset_size"], key
        assert {r["fingerprint"] for r in records} == {entry["fingerprint"]["digest"]}, key
    return results


@pytest.mark.slow
def test_reruns_never_report_another_runs_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(demo.SIZES, "quick", TINY)
    out = tmp_path / "demo"
    assert run(capsys, out)[0] == 0
    assert_current(out, seed=0)

    # predictions in the folder made by something else (another checkpoint): recomputed, never reported
    shard = out / "eval" / "predictions" / "mc" / "rank000.jsonl"
    foreign = [{**json.loads(line), "fingerprint": "0" * 64} for line in shard.read_text().splitlines()]
    shard.write_text("".join(json.dumps(r) + "\n" for r in foreign))
    code, stdout, err = run(capsys, out)
    assert code == 0, err
    assert f"mc: recomputing {len(foreign)} predictions made by a different run" in stdout + err
    assert_current(out, seed=0)

    # another seed in the same folder: one line naming the difference and both ways out, no traceback
    code, stdout, err = run(capsys, out, "--seed", "1")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "seed: 0 on disk, 1 asked for" in err and "--out" in err and "--overwrite" in err
    assert_current(out, seed=0)  # the earlier run's figures stay, and are still that run's

    code, stdout, err = run(capsys, out, "--seed", "1", "--overwrite")
    assert code == 0, err
    assert_current(out, seed=1)
    assert "predicted earlier" not in (stdout + err).replace("0 samples predicted earlier", "")


def test_a_sizes_model_overrides_reach_every_stage(tmp_path, monkeypatch):
    """--quick trains a depthwise mixing (SIZES['quick'].model_overrides): stage 1, stage 2 and the evaluation
    must all build that model, or stage 2 could not load stage 1's weights."""
    assert "model.branches.0.encoder.local_mixing_depthwise=true" in demo.SIZES["quick"].model_overrides
    seen = []

    class Stop(Exception):
        pass

    def train_stage(config, overrides):
        seen.append(overrides)
        return {"last_checkpoint": str(tmp_path / "ckpt"), "losses": []}

    def evaluate_stage(overrides):
        seen.append(overrides)
        raise Stop

    monkeypatch.setattr(demo, "train_stage", train_stage)
    monkeypatch.setattr(demo, "evaluate_stage", evaluate_stage)
    size = demo.DemoSize(train_videos=4, test_videos=2, stage1_steps=1, stage2_steps=1, batch_size=2,
                         warmup_steps=0, model_overrides=("model.llm.config.num_attention_heads=1",))
    with pytest.raises(Stop):
        demo.run_demo(tmp_path / "demo", size=size)
    assert len(seen) == 3 and all("model.llm.config.num_attention_heads=1" in o for o in seen)


def test_torch_threads_default_to_two_and_to_one_on_a_single_core(monkeypatch):
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert demo.default_threads() == 2
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda pid: {0})
    assert demo.default_threads() == 1


def test_the_command_trains_on_the_default_threads_unless_told(monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(demo, "default_threads", lambda: 3)
    monkeypatch.setattr(demo, "_run", lambda *args: seen.append(torch.get_num_threads()) or {})
    before = torch.get_num_threads()
    assert demo.main(["--quick"]) == 0
    assert demo.main(["--quick", "--threads", "1"]) == 0
    assert seen == [3, 1] and torch.get_num_threads() == before


def test_threads_below_one_are_refused_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(demo, "_run", lambda *args: {})   # never a real run, even if the check went missing
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--quick", "--threads", "0"])
    assert exit_info.value.code == 2 and "--threads must be 1 or more, got 0" in capsys.readouterr().err
