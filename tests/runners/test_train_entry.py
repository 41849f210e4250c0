"""train.py end to end: plain python, and torchrun with two processes killed mid-run and resumed."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from vlmkit.runners import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
imports: [tests.toy_video_plugin]
model: {preset: tiny/pooling}
datasets:
  train: {name: toy_colour_videos, size: 16}
run:
  name: trainer
  max_steps: {steps}
  batch_size: 2
  save_every: 3
  keep_last: 2
  loggers: [jsonl]
  scheduler: {name: linear_warmup_cosine, init_lr: 0.001, min_lr: 0.0001, warmup_steps: 2}
"""


def write_cfg(tmp_path, steps):
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent(CONFIG.replace("{steps}", str(steps))))
    return path


def final_weights(run_dir):
    return ckpt.load_tensors(ckpt.latest(Path(run_dir) / "checkpoints"))


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_train_py_dry_run_and_config_error(tmp_path):
    cfg = write_cfg(tmp_path, 2)
    dry = subprocess.run([sys.executable, "train.py", "--cfg-path", str(cfg), "--dry-run", "run.batch_size=4"],
                         cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "batch_size: 4" in dry.stdout and "clip_vit" in dry.stdout
    bad = subprocess.run([sys.executable, "train.py", "--cfg-path", str(cfg), "run.batch_sise=4"],
                         cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300)
    assert bad.returncode == 2
    assert "run.batch_sise: unknown key 'batch_sise' for runner 'trainer'. Did you mean 'batch_size'" in bad.stderr


def test_random_frozen_towers_stop_train_py_and_the_report_names_every_source(tmp_path):
    cfg = write_cfg(tmp_path, 1)
    frozen = "model.branches.0.encoder.freeze=true"  # tiny/pooling trains its ViT; frozen, nothing loads it
    refused = subprocess.run([sys.executable, "train.py", "--cfg-path", str(cfg), frozen,
                              "model.allow_random_frozen=false", f"run.output_dir={tmp_path / 'refused'}"],
                             cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "model.branches.0.encoder:" in refused.stderr and "model.llm" not in refused.stderr
    assert not (tmp_path / "refused" / "checkpoints").exists()
    ran = subprocess.run([sys.executable, "train.py", "--cfg-path", str(cfg), frozen,
                          f"run.output_dir={tmp_path / 'ran'}"],
                         cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300)
    assert ran.returncode == 0, ran.stderr
    sources = json.loads((tmp_path / "ran" / "startup_report.json").read_text())["weight_sources"]
    assert "random (frozen)" in sources["branches.0.encoder"]  # allowed by the tiny preset, still reported
    assert set(sources["llm"]) == {"random (trainable)"}


def torchrun(cfg, out, *extra):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "train.py", "--cfg-path", str(cfg), f"run.output_dir={out}", *extra]


@pytest.mark.slow
def test_torchrun_two_processes_killed_and_resumed_equals_uninterrupted(tmp_path):
    cfg = write_cfg(tmp_path, 24)
    straight = subprocess.run(torchrun(cfg, tmp_path / "straight"), cwd=ROOT, env=env(), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    # Kill the whole process group (torchrun and both workers) with SIGKILL once a checkpoint exists.
    proc = subprocess.Popen(torchrun(cfg, tmp_path / "killed"), cwd=ROOT, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not pointer.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = ckpt.read_manifest(ckpt.latest(pointer.parent))
    resumed = subprocess.run(torchrun(cfg, tmp_path / "killed", "run.resume_from=latest"), cwd=ROOT, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert stopped_at is not None
