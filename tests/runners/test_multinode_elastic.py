"""torchrun beyond one launcher: two 'nodes' on 127.0.0.1 (c10d rendezvous), and an elastic restart after a
worker is killed; both end with the weights of an uninterrupted single-node run of the same world size."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.runners.test_train_entry import ROOT, env, final_weights, torchrun, write_cfg
from tests.runners.worker_processes import alive, children
from vlmkit.runners import checkpoint as ckpt

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc")]
STEPS = 24


@pytest.fixture(scope="module")
def single_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    run = subprocess.run(torchrun(write_cfg(tmp, STEPS), tmp / "run"), cwd=ROOT, env=env(), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return final_weights(tmp / "run")


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(launchers):
    """Kill what a failed test left running: the launchers and their workers (each in a session of its own)."""
    for launcher in launchers:
        workers = children(launcher.pid) if launcher.poll() is None else []
        launcher.kill()
        launcher.wait()
        for pid in workers:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_two_launchers_on_one_host_train_like_one_node(tmp_path, single_node):
    cfg, port = write_cfg(tmp_path, STEPS), free_port()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "two-nodes",
               "--local-addr", "127.0.0.1", "train.py", "--cfg-path", str(cfg), f"run.output_dir={tmp_path / 'run'}"]
    logs = [open(tmp_path / f"node{i}.log", "w") for i in range(2)]
    launchers = [subprocess.Popen(command, cwd=ROOT, env=env(), stdout=log, stderr=log) for log in logs]
    try:
        codes = [launcher.wait(timeout=600) for launcher in launchers]
        assert codes == [0, 0], [(tmp_path / f"node{i}.log").read_text()[-2000:] for i in range(2)]
    finally:
        stop(launchers)
        for log in logs:
            log.close()
    assert_same_weights(single_node, final_weights(tmp_path / "run"))


def rank_of(pid: int) -> int:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(v for v in environ if v.startswith(b"RANK=")).split(b"=", 1)[1])


def test_a_killed_worker_restarts_the_group_which_resumes_and_ends_like_an_uninterrupted_run(tmp_path, single_node):
    out = tmp_path / "run"
    command = torchrun(write_cfg(tmp_path, STEPS), out, "run.resume_from=auto")
    command[command.index("--standalone")] = "--max-restarts=1"
    command.insert(3, "--standalone")
    log = open(tmp_path / "torchrun.log", "w")
    launcher = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=log, stderr=log)
    try:
        pointer = out / "checkpoints" / "latest"
        deadline = time.time() + 300
        while not pointer.exists() and launcher.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        (victim,) = [pid for pid in children(launcher.pid) if rank_of(pid) == 1]
        os.kill(victim, signal.SIGKILL)  # one worker only; torchrun restarts the group
        killed_at = ckpt.read_manifest(ckpt.latest(out / "checkpoints"))["progress"]["global_step"]
        assert launcher.wait(timeout=600) == 0, (tmp_path / "torchrun.log").read_text()[-3000:]
    finally:
        stop([launcher])
        log.close()
    assert killed_at < STEPS
    restarts = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "event" in line]
    assert len(restarts) == 1 and killed_at <= restarts[0]["step"] < STEPS  # resumed from a checkpoint, once
    assert_same_weights(single_node, final_weights(out))
