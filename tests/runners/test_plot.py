"""metrics.jsonl restart markers and `vlmkit plot`: a resumed run's repeated steps are drawn once."""
import json

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.cli import main as cli
from vlmkit.plot import read_curves
from vlmkit.registry import RUNNERS
from vlmkit.runners import checkpoint as ckpt


def train(out, **overrides):
    cfg = run_cfg(**{"clip_grad_norm": 1.0, "save_every": 2, "keep_last": None, **overrides})
    return RUNNERS.build(cfg, model=make_model(), datasets={"train": ToyTokens(32)}, output_dir=str(out)).train()


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_writes_a_restart_marker_and_repeated_steps_keep_the_new_values(tmp_path):
    train(tmp_path, max_steps=5)  # logs steps 1..5; checkpoints at 2, 4 and 5
    train(tmp_path, max_steps=8, resume_from=str(tmp_path / "checkpoints" / "step_00000004"))
    records = lines(tmp_path / "metrics.jsonl")
    markers = [r for r in records if r.get("event") == "restart"]
    assert markers == [{"event": "restart", "step": 4, "time": markers[0]["time"]}]
    lr5 = [r["lr"] for r in records if r.get("step") == 5 and "lr" in r]
    assert len(lr5) == 2 and lr5[0] != lr5[1]  # a longer schedule: another learning rate at step 5
    curves = read_curves(tmp_path / "metrics.jsonl")
    for metric in ("loss", "lr", "grad_norm", "samples_per_s"):
        assert sorted(curves[metric]) == list(range(1, 9)), metric
    assert curves["lr"][5] == lr5[1]
    assert ckpt.latest(tmp_path / "checkpoints").name == "step_00000008"


def test_a_restart_drops_the_interrupted_attempts_later_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 10.0 + s} for s in range(1, 7)] + [{"event": "restart", "step": 3}] + \
           [{"step": s, "loss": float(s)} for s in (4, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "lo')  # the last line cut short
    assert read_curves(path) == {"loss": {1: 11.0, 2: 12.0, 3: 13.0, 4: 4.0, 5: 5.0}}


def test_plot_overlays_runs_into_a_png(tmp_path):
    train(tmp_path / "a", max_steps=6)
    train(tmp_path / "b", max_steps=6, clip_grad_norm=0.5, batch_size=2)
    out = tmp_path / "fig" / "curves.png"
    assert cli(["plot", str(tmp_path / "a"), str(tmp_path / "b" / "metrics.jsonl"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
