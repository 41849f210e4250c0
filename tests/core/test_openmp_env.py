"""The vlmkit commands let idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE) before torch loads, unless the user
chose a policy: OpenMP reads the variable once, when torch's library loads (vlmkit/openmp_env.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlmkit.openmp_env import quiet_openmp_workers

REPO = Path(__file__).resolve().parents[2]

# Records OMP_WAIT_POLICY at the moment torch is first imported, then runs the command given in argv.
PROBE = """
import os, runpy, sys
seen = []
class Probe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Probe())
sys.argv = sys.argv[1:]
try:
    if sys.argv[0] == "vlmkit":
        from vlmkit.cli import main
        main(sys.argv[1:])
        import torch
    elif sys.argv[0] == "-m":
        sys.argv = sys.argv[1:]
        try:
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        except SystemExit:
            pass
        import torch  # the demo imports torch lazily, after the policy was set
    else:
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("policy at torch import:", seen)
"""


def test_unset_policy_becomes_passive_and_a_chosen_one_is_kept():
    environ: dict[str, str] = {}
    quiet_openmp_workers(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    quiet_openmp_workers(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_says_whether_it_came_in_time():
    import torch  # noqa: F401  (loaded now: the policy can no longer change in this process)

    assert quiet_openmp_workers({}) is False


@pytest.mark.parametrize("command, chosen", [(["vlmkit", "list", "presets"], None), (["evaluate.py", "--help"], None),
                                             (["train.py", "--help"], None), (["evaluate.py", "--help"], "ACTIVE"),
                                             (["-m", "vlmkit.demo", "--help"], None)])
def test_commands_set_the_policy_before_torch_loads(command, chosen):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    done = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=env)
    assert f"policy at torch import: ['{chosen or 'PASSIVE'}']" in done.stdout, done.stdout + done.stderr
