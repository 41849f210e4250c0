"""`make setup TORCH_INDEX=URL` takes torch and torchvision from the named wheel index (PyTorch's CPU-only build,
say) for that one pip command, and everything else from the standard index; without it nothing changes.

The commands are read from `make -n` (a dry run into a temporary VENV, so the project's .venv is never touched), and
the torch command is then run for real against a local PEP 503 index served on 127.0.0.1 that holds stand-in wheels
versioned like PyTorch's CPU builds (2.14.1+cpu): this shows pip really takes them from the named index and that the
pinned `torch==2.14.1` accepts the `+cpu` build.
"""

import base64
import functools
import hashlib
import http.server
import os
import shlex
import shutil
import subprocess
import threading
import zipfile

import pytest

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make, which `make test` runs under")

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _clean_env():
    # A parent `make test TORCH_INDEX=...` passes its variables down in MAKEFLAGS, and pip reads PIP_* and its
    # config files (this machine's find-links and constraints): none of them may steer what these tests see.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "MAKE", "MFLAGS", "TORCH_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _setup_commands(repo_root, venv, *assignments):
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "setup", f"VENV={venv}", *assignments],
        cwd=repo_root, capture_output=True, text=True, check=True, env=_clean_env(),
    ).stdout
    return [shlex.split(line) for line in out.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _pip_installs(commands):
    return [c for c in commands if c[1:4] == ["-m", "pip", "install"]]


def _index_options(command):
    return [a for a in command if a.split("=")[0] in ("--index-url", "-i", "--extra-index-url", "--find-links", "-f")]


def test_torch_index_applies_to_the_torch_command_only(repo_root, tmp_path):
    installs = _pip_installs(_setup_commands(repo_root, tmp_path / "venv", f"TORCH_INDEX={CPU_INDEX}"))
    torch_cmds = [c for c in installs if any(a.startswith("torch==") for a in c)]
    assert len(torch_cmds) == 1, installs
    torch_cmd = torch_cmds[0]
    i = torch_cmd.index("--index-url")
    assert torch_cmd[i + 1] == CPU_INDEX
    assert {a for a in torch_cmd if a.startswith("torch")} == {"torch==2.14.1", "torchvision==0.29.1"}
    others = [c for c in installs if c is not torch_cmd]
    assert any("-e" in c for c in others), "vlmkit itself is installed by a later command"
    for command in others:
        assert _index_options(command) == [], f"only the torch command may use the named index: {command}"


def test_default_setup_uses_the_standard_index_everywhere(repo_root, tmp_path):
    installs = _pip_installs(_setup_commands(repo_root, tmp_path / "venv"))
    assert any("torch==2.14.1" in c for c in installs), installs
    for command in installs:
        assert _index_options(command) == [], command


def _stand_in_wheel(folder, name, version):
    """A minimal valid wheel: one module recording where it came from, its dist-info and RECORD."""
    files = {
        f"{name}/__init__.py": f"__version__ = '{version}'\nFROM_LOCAL_INDEX = True\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(text.encode())}" for path, text in files.items()
    ]
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record + [f"{name}-{version}.dist-info/RECORD,,"]) + "\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(folder / filename, "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return filename


@pytest.fixture
def local_cpu_index(tmp_path):
    """A PEP 503 simple index on 127.0.0.1 holding torch 2.14.1+cpu and torchvision 0.29.1+cpu stand-ins."""
    root = tmp_path / "index"
    for name, version in (("torch", "2.14.1+cpu"), ("torchvision", "0.29.1+cpu")):
        project = root / name
        project.mkdir(parents=True)
        filename = _stand_in_wheel(project, name, version)
        href = filename.replace("+", "%2B")  # as PyTorch's index writes its links
        (project / "index.html").write_text(f'<html><body><a href="{href}">{filename}</a></body></html>\n')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_torch_command_installs_from_the_named_index(repo_root, tmp_path, local_cpu_index):
    venv = tmp_path / "venv"
    commands = _setup_commands(repo_root, venv, f"TORCH_INDEX={local_cpu_index}")
    make_venv, torch_cmd = commands[0], commands[1]
    assert make_venv[1:3] == ["-m", "venv"] and "--index-url" in torch_cmd, commands[:2]
    for command in (make_venv, torch_cmd):
        done = subprocess.run(command, cwd=repo_root, capture_output=True, text=True, env=_clean_env(), timeout=300)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout}\n{done.stderr}"
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.FROM_LOCAL_INDEX)"],
        capture_output=True, text=True, env=_clean_env(),
    )
    assert site.stdout.split() == ["2.14.1+cpu", "0.29.1+cpu", "True"], site.stdout + site.stderr
