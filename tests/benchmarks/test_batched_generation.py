"""benchmarks/batched_generation.py runs at the machine's default thread count unless --threads pins one, with the
OpenMP wait policy the vlmkit commands use, and times only sides whose predictions match."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fresh_python(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_default_threads_are_torchs_own_and_predictions_match():
    default = int(fresh_python("-c", "import torch; print(torch.get_num_threads())"))
    out = fresh_python("benchmarks/batched_generation.py", "--samples", "3", "--batch-size", "2",
                       "--max-new-tokens", "2", "--rounds", "1")
    result = json.loads(out.strip().splitlines()[-1])
    assert result["threads"] == default and result["threads_pinned"] is False
    assert result["omp_wait_policy"] == "PASSIVE" and result["same_predictions"] is True
    assert result["batched"]["cpu_s"] > 0 and result["one_by_one"]["cpu_s"] > 0
