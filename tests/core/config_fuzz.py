"""Mutate shipped configs and hand them to `vlmkit validate` in-process: every mistake must come back as a clean
error (exit status 2), never a Python traceback.  ``python -m tests.core.config_fuzz 2000`` runs a larger batch."""
from __future__ import annotations

import contextlib
import io
import random
import sys
import traceback
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from vlmkit import cli
from vlmkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {  # config -> purpose
    "train_configs/demo/stage1_captions.yaml": "train",
    "train_configs/demo/stage2_instruct.yaml": "train",
    "train_configs/videogpt_plus/finetune_phi3_mini.yaml": "train",
    "train_configs/pllava/finetune_7b.yaml": "train",
    "eval_configs/tiny/captioning.yaml": "eval",
    "eval_configs/tiny/multiple_choice.yaml": "eval",
    "eval_configs/tiny/gebc.yaml": "eval",
    "eval_configs/tiny/open_qa_judge.yaml": "eval",
}
BAD_VALUES = [0, -1, -0.5, "???", "${oc.env:UNSET_VAR_X}", "${no.such.key}", [1, "a"], {"x": 1}, None, "",
              "typo_name", True, 1.0e9, ["/etc/hostname"], "/etc/hostname", 5]


def _paths(node, prefix=()):
    """Every key path of a plain nested structure (list items by index)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _mutate_file(data: dict, rng: random.Random) -> dict:
    paths = list(_paths(data))
    path = rng.choice(paths) if paths and rng.random() < 0.9 else (rng.choice(["defaults", "imports", "model"]),)
    op = rng.choice(["value", "value", "delete", "rename"])
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    leaf = path[-1]
    if op == "delete" and leaf in (parent if isinstance(parent, dict) else range(len(parent))):
        del parent[leaf]
    elif op == "rename" and isinstance(parent, dict) and leaf in parent:
        parent[f"{leaf}{rng.choice(['s', '_', 'x'])}"] = parent.pop(leaf)
    else:
        _set(data, path, rng.choice(BAD_VALUES))
    return data


def _mutate_overrides(resolved: dict, rng: random.Random) -> list[str]:
    paths = list(_paths(resolved))
    path = rng.choice(paths)
    dotted = ".".join(str(p) for p in path)
    if rng.random() < 0.3:
        bracket = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        return [f"~{rng.choice([dotted, bracket])}"]
    value = rng.choice(BAD_VALUES)
    return [f"{dotted}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]


def run(n: int, seed: int, tmp: Path) -> tuple[dict[str, int], list[str]]:
    """Counts of outcomes (ok / error / traceback) over ``n`` mutations, and the tracebacks' summaries."""
    rng = random.Random(seed)
    originals = {c: yaml.safe_load((ROOT / c).read_text()) for c in CONFIGS}
    resolved = {c: OmegaConf.to_container(load_config(ROOT / c, validate=False)) for c in CONFIGS}
    counts, failures = {"ok": 0, "error": 0, "traceback": 0}, []
    for i in range(n):
        config = rng.choice(sorted(CONFIGS))
        data, overrides = yaml.safe_load(yaml.safe_dump(originals[config])), []
        if rng.random() < 0.5:
            data = _mutate_file(data, rng)
        else:
            overrides = _mutate_overrides(resolved[config], rng)
        path = tmp / f"mutant_{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        out = io.StringIO()
        try:
            with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
                status = cli.main(["validate", str(path), "--purpose", CONFIGS[config], "--skip-files", *overrides])
            counts["ok" if status == 0 else "error"] += 1
            if status not in (0, 2):
                counts["traceback"] += 1
                failures.append(f"{config} {overrides}: exit status {status}")
        except SystemExit as exc:  # argparse: a malformed command line
            counts["error" if exc.code == 2 else "traceback"] += 1
        except Exception as exc:  # noqa: BLE001 - any other exception is the traceback a user would see
            counts["traceback"] += 1
            last = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(f"{config} {overrides} {data if not overrides else ''}"[:300]
                            + f"\n    {type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})")
    return counts, failures


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        counts, failures = run(int(sys.argv[1]) if len(sys.argv) > 1 else 200,
                               int(sys.argv[2]) if len(sys.argv) > 2 else 0, Path(folder))
    print("\n".join(failures))
    print(counts)
