"""train.py end to end: plain python, and torchrun with two processes killed mid-run (launcher and workers) and
resumed."""
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

from tests.runners.worker_processes import alive, children
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


def gone(pids: list[int]) -> bool:
    return not any(alive(pid) for pid in pids)


def kill_launcher_and_workers(launcher: subprocess.Popen) -> list[int]:
    """SIGKILL both workers' process groups (torchrun starts each worker in a session of its own, so killing the
    launcher's group leaves them running), then the launcher's; returns the worker pids, gone when this returns."""
    workers = children(launcher.pid)
    assert len(workers) == 2, f"torchrun should have 2 workers, found {workers}"
    for pid in workers:
        assert os.getpgid(pid) == pid, f"worker {pid} does not lead its own process group"
        os.killpg(pid, signal.SIGKILL)
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    deadline = time.time() + 30  # a liveness bound: SIGKILL takes effect at once, the kernel reaps soon after
    while not gone(workers) and time.time() < deadline:
        time.sleep(0.05)
    assert gone(workers), f"workers {workers} survived SIGKILL of their process groups"
    return workers


def restarts(run_dir: Path) -> list[int]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if '"event"' in line]


STEPS = 24


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc")
def test_torchrun_two_processes_killed_and_resumed_equals_uninterrupted(tmp_path):
    cfg = write_cfg(tmp_path, STEPS)
    straight = subprocess.run(torchrun(cfg, tmp_path / "straight"), cwd=ROOT, env=env(), capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    # Kill the launcher and both workers with SIGKILL once a checkpoint exists.
    killed = tmp_path / "killed"
    launcher = subprocess.Popen(torchrun(cfg, killed), cwd=ROOT, env=env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = killed / "checkpoints"
    try:
        deadline = time.time() + 300
        while not (ckpt_dir / "latest").exists() and launcher.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert launcher.poll() is None, "the run ended before it could be killed"
        kill_launcher_and_workers(launcher)
    finally:  # a failed test leaves nothing running
        if launcher.poll() is None:
            for pid in children(launcher.pid):
                os.killpg(pid, signal.SIGKILL)
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    stopped_at = ckpt.read_manifest(ckpt.latest(ckpt_dir))["progress"]["global_step"]
    assert 0 < stopped_at < STEPS  # killed mid-run: the resumed run has steps left to do
    assert not (ckpt_dir / f"step_{STEPS:08d}").exists()

    resumed = subprocess.run(torchrun(cfg, killed, "run.resume_from=latest"), cwd=ROOT, env=env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The resumed run started from the saved step (its logger's restart line), neither from 0 nor from the end ...
    assert restarts(killed) == [stopped_at], (restarts(killed), stopped_at)
    # ... trained the remaining steps, and ended with the uninterrupted run's weights.
    assert ckpt.read_manifest(ckpt.latest(ckpt_dir))["progress"]["global_step"] == STEPS
    a, b = final_weights(tmp_path / "straight"), final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
