"""A tiny trained run and evaluate.py's predictions for it, laid out as the README's commands expect them
(``output/tiny_run``, ``output/tiny_eval_data/synthetic``) under one folder: the tests run there."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = """
model: {preset: tiny/pooling, llm: {freeze: true}}  # the LLM's random init comes from the seed, not the checkpoint
datasets:
  train: {preset: open_qa, ann_path: DATA/test_open_qa.json, media_root: DATA, train: true}
run: {name: trainer, max_steps: 2, batch_size: 2, loggers: [], output_dir: RUN,
      scheduler: {name: constant, init_lr: 0.001}}
"""
EVAL = """
datasets:
  val: {preset: open_qa, ann_path: DATA/test_open_qa.json, media_root: DATA}
evaluation:
  name: evaluator
  checkpoint: RUN
  tasks: {name: open_qa, metrics: [exact_match]}
  loggers: []
  output_dir: OUT
"""


def run_script(name, argv):
    spec = importlib.util.spec_from_file_location(f"vlmkit_{name}_script", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(argv) == 0


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(folder, run, data, {sample id: evaluate.py's record}) for a tiny/pooling run (frozen random LLM) trained 2
    steps on synthetic shape videos and evaluated with the evaluator's default generation settings."""
    from vlmkit.demo.synthetic import ensure_synthetic_dataset

    folder = tmp_path_factory.mktemp("inference")
    data, run = folder / "output" / "tiny_eval_data" / "synthetic", folder / "output" / "tiny_run"
    ensure_synthetic_dataset(data, train=0, test=3, seed=0, workers=1)
    for name, text in (("train", TRAIN), ("eval", EVAL)):
        (folder / f"{name}.yaml").write_text(text.replace("DATA", str(data)).replace("RUN", str(run))
                                             .replace("OUT", str(folder / "eval")))
    run_script("train", ["--cfg-path", str(folder / "train.yaml")])
    run_script("evaluate", ["--cfg-path", str(folder / "eval.yaml")])
    records = [json.loads(line) for line in (folder / "eval" / "predictions" / "val.jsonl").read_text().splitlines()]
    assert len(records) == 3 and any(r["prediction"] for r in records)  # a non-empty answer to compare
    return folder, run, data, {r["id"]: r for r in records}
