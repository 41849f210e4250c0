"""lmms-eval's own CLI (``lmms-eval eval --model vlmkit``) on a tiny local task in lmms-eval's format, against the tiny
trained run: its answers, option log-likelihoods and accuracies equal ``evaluate.py``'s on the same questions, for a
generated answer (MVBench's prompt and rule) and for likeliest-option scoring."""
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.inference.conftest import run_script
from vlmkit.data.datasets.multiple_choice import MVBENCH_ANSWER_PREFIX, MVBENCH_SYSTEM

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (make test installs it: pip install --no-deps "
                                        "lmms-eval==0.7.3 with the dev extra's pieces)")

TASK_FILES = Path(__file__).parent / "lmms_eval_task"
EVAL = """
datasets:
  mc_gen: {name: multiple_choice, ann_path: DATA/test_mc.json, media_root: DATA}
  mc_ll: {name: multiple_choice, ann_path: DATA/test_mc.json, media_root: DATA}
evaluation:
  name: evaluator
  checkpoint: RUN
  tasks:
    mc_gen:
      name: multiple_choice
      metrics: [{name: mc_accuracy, rule: mvbench, prediction_prefix: "(", first_line_only: true, overall: micro}]
    mc_ll: {name: multiple_choice, mode: loglik, score: sum, metrics: [mc_accuracy]}
  max_new_tokens: 8
  batch_size: 8
  loggers: []
  output_dir: OUT
"""


def vlmkit_records(folder, run, data):
    """({dataset: {sample id: evaluate.py's record}}, {dataset: its accuracy in %})."""
    out = folder / "lmms_compare_eval"
    (folder / "mc_eval.yaml").write_text(EVAL.replace("DATA", str(data)).replace("RUN", str(run))
                                         .replace("OUT", str(out)))
    run_script("evaluate", ["--cfg-path", str(folder / "mc_eval.yaml")])
    metrics = json.loads((out / "results.json").read_text())["datasets"]
    records = {key: [json.loads(line) for line in (out / "predictions" / f"{key}.jsonl").read_text().splitlines()]
               for key in ("mc_gen", "mc_ll")}
    return ({key: {r["id"]: r for r in rows} for key, rows in records.items()},
            {key: metrics[key]["metrics"]["accuracy"] for key in records})


def lmms_eval_samples(folder, run, data):
    tasks = folder / "lmms_tasks"
    tasks.mkdir(exist_ok=True)
    shutil.copy(TASK_FILES / "utils.py", tasks / "utils.py")
    for yaml in TASK_FILES.glob("*.yaml"):
        (tasks / yaml.name).write_text(yaml.read_text().replace("DATA", str(data)))
    system = folder / "mvbench_system.txt"
    system.write_text(MVBENCH_SYSTEM)
    out = folder / "lmms_out"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "VLMKIT_LMMS_MEDIA_ROOT": str(data),
           "HF_HOME": str(folder / "hf_home"), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [str(Path(sys.executable).parent / "lmms-eval"), "eval", "--model", "vlmkit",
               "--model_args", f"run={run},system_prompt={system},answer_prefix={MVBENCH_ANSWER_PREFIX}",
               "--tasks", "vlmkit_tiny_mc_gen,vlmkit_tiny_mc_ll", "--include_path", str(tasks),
               "--batch_size", "8", "--log_samples", "--output_path", str(out)]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    found = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    # lmms-eval logs an error and still exits 0: no results file is the failure
    assert done.returncode == 0 and found, done.stdout[-3000:] + done.stderr[-5000:]
    results = json.loads(Path(found[0]).read_text())
    samples = {}
    for task in ("vlmkit_tiny_mc_gen", "vlmkit_tiny_mc_ll"):
        path = glob.glob(str(out / "**" / f"*_samples_{task}.jsonl"), recursive=True)[0]
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        samples[task] = sorted(rows, key=lambda r: r["doc_id"])
    return results["results"], samples


def test_lmms_eval_reproduces_evaluate(tiny):
    folder, run, data, _ = tiny
    questions = json.loads((data / "test_mc.json").read_text())
    ours, accuracy = vlmkit_records(folder, run, data)
    scores, samples = lmms_eval_samples(folder, run, data)
    assert len(samples["vlmkit_tiny_mc_gen"]) == len(samples["vlmkit_tiny_mc_ll"]) == len(questions) > 1

    # generated answers: the same text per question, and the same accuracy (lmms-eval's task applies the
    # VideoChat2 notebook's check, evaluate.py its mvbench rule)
    answers = [s["filtered_resps"] for s in samples["vlmkit_tiny_mc_gen"]]
    assert answers == [ours["mc_gen"][str(q["id"])]["prediction"] for q in questions] and any(answers)
    assert 100 * scores["vlmkit_tiny_mc_gen"]["mvbench_accuracy,none"] == pytest.approx(accuracy["mc_gen"])

    # likeliest option: lmms-eval's per-option values are evaluate.py's summed option scores, negated (lmms-eval
    # picks the lowest), its pick is evaluate.py's prediction, and its acc is evaluate.py's accuracy
    for q, sample in zip(questions, samples["vlmkit_tiny_mc_ll"]):
        record = ours["mc_ll"][str(q["id"])]
        nlls = [float(resp[0]) for resp in sample["filtered_resps"]]  # logged as [value, greedy] strings
        assert nlls == pytest.approx([-v for v in record["option_scores"]], abs=1e-4)
        assert f"({'ABCDEFGH'[nlls.index(min(nlls))]})" == record["prediction"]
        assert sample["acc"] == float(record["prediction"] == f"({record['answer_letter']})")
    assert 100 * scores["vlmkit_tiny_mc_ll"]["acc,none"] == pytest.approx(accuracy["mc_ll"])
    assert len({tuple(r["option_scores"]) for r in ours["mc_ll"].values()}) > 1  # the scores depend on the input
