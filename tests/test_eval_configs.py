"""The tiny evaluation configs run end to end: ``python evaluate.py --cfg-path eval_configs/tiny/X.yaml`` over
data that ``vlmkit.demo.tiny_eval_data`` generates, writing results.json and printing the metric table.

The configs run as real subprocesses, started together (the machine's cores work in parallel); the data
directory reaches them through command-line overrides."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.metrics.judge_server import FakeChatServer
from vlmkit.demo import tiny_benchmark_data
from vlmkit.demo.tiny_benchmark_data import generate as generate_benchmarks
from vlmkit.demo.tiny_eval_data import generate

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "eval_configs" / "tiny"


def data_overrides(data: Path) -> dict[str, list[str]]:
    """Per config, the overrides that point it at ``data`` (the configs' default is $VLMKIT_TINY_DATA)."""
    syn = data / "synthetic"
    gebc = data / "gebc"
    return {
        "multiple_choice": [f"datasets.synthetic_mc.ann_path={syn}/test_mc.json",
                            f"datasets.synthetic_mc.media_root={syn}", "datasets.synthetic_mc.max_samples=6"],
        "open_qa_exact": [f"datasets.synthetic_open_qa.ann_path={syn}/test_open_qa.json",
                          f"datasets.synthetic_open_qa.media_root={syn}"],
        "open_qa_judge": [f"datasets.synthetic_open_qa.ann_path={syn}/test_open_qa.json",
                          f"datasets.synthetic_open_qa.media_root={syn}",
                          f"evaluation.tasks.metrics.0.judge.model_path={data}/judge"],
        "captioning": [f"datasets.synthetic_captions.ann_path={syn}/test_captions.json",
                       f"datasets.synthetic_captions.media_root={syn}"],
        "gebc": [f"datasets.gebc.ann_path={gebc}/annotations.json",
                 f"datasets.gebc.video_info_path={gebc}/video_info.json",
                 *(f"datasets.gebc.features.{key}={gebc}/features/{key}"
                   for key in ("q_former_tokens", "intern_video", "omni", "clip"))],
        "needle": [f"datasets.niah.ann_path={data}/needle/needles.json", f"datasets.niah.media_root={data}/needle"],
        "vcgbench": [*(f"datasets.vcgbench.{kind}_path={data}/vcgbench/{kind}_qa.json"
                       for kind in ("generic", "temporal", "consistency")),
                     f"datasets.vcgbench.media_root={syn}/videos/test"],
        "mlvu": [f"datasets.{key}.{field}={data}/mlvu/{folder}" for key in ("mlvu_mc", "mlvu_generation")
                 for field, folder in (("ann_root", "json"), ("media_root", "video"))],
        "long_video": [f"datasets.videomme.ann_path={data}/videomme/videomme.json",
                       f"datasets.videomme.media_root={data}/videomme/data",
                       f"datasets.videomme.subtitle_root={data}/videomme/subtitle",
                       f"datasets.egoschema.ann_path={data}/egoschema/questions.json",
                       f"datasets.egoschema.answers_path={data}/egoschema/subset_answers.json",
                       f"datasets.egoschema.media_root={data}/egoschema/videos",
                       f"datasets.nextqa.ann_path={data}/nextqa/val.csv",
                       f"datasets.nextqa.media_root={data}/nextqa/videos",
                       f"datasets.nextqa.map_path={data}/nextqa/map_vid_vidorID.json"],
    }


def start(config: str, data: Path, out: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    # The data directory is unset in the environment: only the overrides can lead the run to it.
    env = {k: v for k, v in os.environ.items() if k != "VLMKIT_TINY_DATA"}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, str(ROOT / "evaluate.py"), "--cfg-path", str(TINY / f"{config}.yaml"),
               f"evaluation.output_dir={out}", *data_overrides(data)[config], *extra]
    return subprocess.Popen(command, cwd=out.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(process: subprocess.Popen, config: str) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"{config} failed:\n{output[-4000:]}"
    return output


def run_all(configs: list[str], data: Path, root: Path) -> dict[str, tuple[str, Path]]:
    """Run the configs two at a time; (console output, output dir) per config."""
    results = {}
    for i in range(0, len(configs), 2):
        batch = {c: root / f"out_{c}" for c in configs[i:i + 2]}
        processes = {c: start(c, data, out) for c, out in batch.items()}
        for config, process in processes.items():
            results[config] = (finish(process, config), batch[config])
    return results


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny_eval_data"), videos=2, seed=0)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, tuple[str, Path]]:
    return run_all(["multiple_choice", "open_qa_judge", "gebc", "needle", "open_qa_exact"], tiny_data,
                   tmp_path_factory.mktemp("runs"))


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def check_table(output: str, dataset: str, metrics: list[str]) -> None:
    """The console table: its header, and a row per metric naming the dataset."""
    assert "dataset" in output and "metric" in output and "value" in output
    rows = [line.split() for line in output.splitlines() if line.startswith(dataset)]
    for metric in metrics:
        assert any(metric in row for row in rows), f"no table row for {metric} in:\n{output}"


def test_every_tiny_config_has_a_test():
    shipped = {p.stem for p in TINY.glob("*.yaml")}
    assert shipped == set(data_overrides(Path("x"))), shipped


def test_multiple_choice(runs):
    output, out = runs["multiple_choice"]
    entry = results_of(out)["datasets"]["synthetic_mc"]
    metrics = entry["metrics"]
    assert entry["task"] == "multiple_choice" and entry["num_predictions"] == 6
    assert 0.0 <= metrics["accuracy"] <= 100.0 and metrics["num_samples"] == 6
    assert any(key.startswith("accuracy/") for key in metrics)  # per task type
    assert results_of(out)["overall"]["accuracy"] == metrics["accuracy"]
    # An untrained model's empty or option-less answers are never credited (mvbench's "(" prefix alone once was).
    written = [json.loads(line)["prediction"] for line in open(out / "predictions" / "synthetic_mc.jsonl")]
    assert metrics["num_no_answer"] >= sum(1 for text in written if not text.strip())
    assert metrics["accuracy"] <= 100.0 * (6 - metrics["num_no_answer"]) / 6
    check_table(output, "synthetic_mc", ["accuracy", "num_no_answer", "accuracy_micro"])


def test_open_qa_exact(runs):
    output, out = runs["open_qa_exact"]
    metrics = results_of(out)["datasets"]["synthetic_open_qa"]["metrics"]
    assert {"exact_match", "contains"} <= set(metrics) and metrics["num_samples"] == 2
    check_table(output, "synthetic_open_qa", ["exact_match", "contains"])


def test_open_qa_judge_reports_the_judge_and_reruns_from_the_cache(runs, tiny_data):
    output, out = runs["open_qa_judge"]
    entry = results_of(out)["datasets"]["synthetic_open_qa"]
    metrics = entry["metrics"]
    assert metrics["judge.kind"] == "transformers_judge" and metrics["judge.requests"] == 2
    assert metrics["num_judged"] + metrics["num_unparseable"] == 2 and metrics["num_cached"] == 0
    assert entry["judge"]["judge.model"].endswith("judge")
    assert any((out / "judge_cache").rglob("*")), "the judge's replies are cached under the output directory"
    check_table(output, "synthetic_open_qa", ["accuracy", "score", "num_unparseable", "judge.kind"])
    # A fresh output directory reuses the cache only if pointed at it: rerun in place instead.
    rerun = finish(start("open_qa_judge", tiny_data, out), "open_qa_judge (rerun)")
    again = results_of(out)["datasets"]["synthetic_open_qa"]["metrics"]
    assert again["judge.requests"] == 0 and again["num_cached"] == 2
    assert {k: v for k, v in again.items() if not k.startswith(("num_cached", "judge.requests"))} == \
        {k: v for k, v in metrics.items() if not k.startswith(("num_cached", "judge.requests"))}
    assert "2 samples predicted earlier" in rerun  # predictions resumed too, nothing regenerated


def test_gebc_features_mode(runs):
    output, out = runs["gebc"]
    entry = results_of(out)["datasets"]["gebc"]
    metrics = entry["metrics"]
    assert entry["num_predictions"] == 6  # 1 video x 2 boundaries x 3 caption types
    assert metrics["num_boundaries"] == 2 and metrics["num_missing_captions"] == 0
    for kind in ("subject", "status_before", "status_after", "avg"):
        assert f"{kind}/CIDEr" in metrics and f"{kind}/ROUGE_L" in metrics
    assert results_of(out)["generation"]["num_beams"] == 2
    record = json.loads((out / "predictions" / "gebc.jsonl").read_text().splitlines()[0])
    assert len(record["reference_points"]) == 2 and isinstance(record["prediction"], str)
    check_table(output, "gebc", ["avg/CIDEr", "subject/ROUGE_L"])


def test_needle_grid(runs):
    output, out = runs["needle"]
    metrics = results_of(out)["datasets"]["niah"]["metrics"]
    assert metrics["num_samples"] == 12  # 2 haystack lengths x 3 depths x 2 needles
    grid = json.loads((out / "niah" / "niah_grid.json").read_text())
    assert grid["haystack_frames"] == [8, 16] and grid["needle_depth"] == [0.0, 0.5, 1.0]
    assert grid["count"] == [[2, 2, 2], [2, 2, 2]]
    assert (out / "niah" / "niah_grid.png").stat().st_size > 0
    check_table(output, "niah", ["accuracy", "accuracy/frames=16/depth=0.5"])


@pytest.mark.slow
def test_captioning(tiny_data, tmp_path):
    # slow: pycocoevalcap's METEOR (and SPICE, when it can run) start a Java process
    output, out = run_all(["captioning"], tiny_data, tmp_path)["captioning"]
    metrics = results_of(out)["datasets"]["synthetic_captions"]["metrics"]
    for name in ("BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr"):
        assert name in metrics, metrics
    check_table(output, "synthetic_captions", ["CIDEr", "BLEU_4", "ROUGE_L"])


# ---------------------------------------------------------------------------------------------- judged benchmarks
def test_long_video_benchmarks(tiny_data, tmp_path):
    synthetic = tiny_data / "synthetic"
    mc = json.loads((synthetic / "test_mc.json").read_text())
    for write in (tiny_benchmark_data.write_videomme, tiny_benchmark_data.write_egoschema,
                  tiny_benchmark_data.write_nextqa):
        write(tiny_data, synthetic, mc)
    output, out = run_all(["long_video"], tiny_data, tmp_path)["long_video"]
    datasets = results_of(out)["datasets"]
    assert {name: datasets[name]["metrics"]["num_samples"] for name in ("videomme", "egoschema", "nextqa")} == {
        "videomme": 6, "egoschema": 5, "nextqa": 6}  # EgoSchema: only the subset with answers
    records = [json.loads(line) for line in open(out / "predictions" / "videomme.jsonl")]
    assert records[0]["subtitles"] == "The square appears.\nIt starts to move.\nPlain cue without a font tag"
    assert records[3]["subtitles"] == "No subtitles available"
    check_table(output, "videomme", ["accuracy", "num_no_answer", "accuracy/duration=short",
                                     "accuracy/domain=Knowledge", "accuracy/sub_category=Astronomy"])
    check_table(output, "egoschema", ["accuracy", "num_no_answer"])
    check_table(output, "nextqa", ["accuracy/type_group=causal", "accuracy/type_group=temporal",
                                   "accuracy/type_group=descriptive", "accuracy/TN"])


# The judged tiny configs run against a scripted OpenAI-style server on 127.0.0.1 instead of their offline judge.
JUDGE_KEYS = {"vcgbench": "evaluation.tasks.metrics.0.judge",
              "mlvu": "evaluation.tasks.mlvu_generation.metrics.0.judge"}
VCG_SCORES = {"factual accuracy": 4, "detail orientation": 3, "contextual understanding": 2,
              "temporal understanding": 1, "the consistency of generative outputs": 5}


def scripted_judge(messages: list[dict]) -> str:
    system = messages[0]["content"]
    if "sub-scene" in system:
        return "Both points are met. {'score_accuracy': 4, 'score_relevance': 3, 'total_score': 7}"
    if "video summaries" in system:
        return '{"score_completeness": 2, "score_reliability": 3, "total_score": 5}'
    return next(f"{{'score': {score}}}" for marker, score in VCG_SCORES.items() if marker in system)


@pytest.fixture(scope="module")
def judged_runs(tiny_data, tmp_path_factory) -> dict[str, tuple[str, Path, FakeChatServer]]:
    generate_benchmarks(tiny_data, videos=2, seed=0)
    root = tmp_path_factory.mktemp("judged_runs")
    with FakeChatServer(scripted_judge) as server:
        judge = (f"{{name: openai_judge, model: scripted-judge, base_url: '{server.base_url}', "
                 f"cache_dir: '{root / 'judge_cache'}', max_retries: 0, concurrency: 1}}")
        outs = {c: root / f"out_{c}" for c in JUDGE_KEYS}
        processes = {c: start(c, tiny_data, outs[c], (f"{JUDGE_KEYS[c]}={judge}",)) for c in JUDGE_KEYS}
        return {c: (finish(p, c), outs[c], server) for c, p in processes.items()}


def test_vcgbench_five_dimensions_and_average(judged_runs):
    output, out, server = judged_runs["vcgbench"]
    entry = results_of(out)["datasets"]["vcgbench"]
    metrics = entry["metrics"]
    assert entry["num_predictions"] == 6  # 2 generic, 2 temporal, 2 consistency items (re-paired halves)
    assert {k: metrics[k] for k in ("correctness", "detail", "context", "temporal", "consistency")} == \
        {"correctness": 4, "detail": 3, "context": 2, "temporal": 1, "consistency": 5}
    assert metrics["average"] == 3.0 and metrics["average_of"].startswith("CI,DO,CU,TU,CO")
    assert metrics["num_unparseable"] == 0 and metrics["judge.model"] == "scripted-judge"
    records = [json.loads(line) for line in (out / "predictions" / "vcgbench.jsonl").read_text().splitlines()]
    pairs = [r for r in records if r["task_type"] == "consistency"]
    assert len(pairs) == 2 and all(isinstance(r["prediction_2"], str) and r["question_2"].startswith("Tell me:")
                                   for r in pairs)
    judged = [r["body"]["messages"][1]["content"] for r in server.requests]
    for r in pairs:  # the consistency judge saw both questions and both answers of the item
        assert any(f"Question 2: {r['question_2']}\n" in u and f"Predicted Answer to Question 1: {r['prediction']}\n"
                   f"Predicted Answer to Question 2: {r['prediction_2']}\n" in u for u in judged), r
    check_table(output, "vcgbench", ["correctness", "detail", "context", "temporal", "consistency", "average"])


def test_mlvu_m_avg_and_g_avg(judged_runs):
    output, out, _ = judged_runs["mlvu"]
    results = results_of(out)
    mc = results["datasets"]["mlvu_mc"]["metrics"]
    gen = results["datasets"]["mlvu_generation"]["metrics"]
    assert mc["accuracy"] == pytest.approx((mc["accuracy/plotQA"] + mc["accuracy/order"]) / 2)  # M-Avg: macro
    assert gen["sub_scene"] == 7.0 and gen["summary"] == 5.0 and gen["g_avg"] == 6.0
    assert gen["num_sub_scene"] == 2 and gen["num_summary"] == 2 and gen["num_unparseable"] == 0
    assert results["overall"]["g_avg"] == 6.0 and results["overall"]["accuracy"] == mc["accuracy"]
    check_table(output, "mlvu_generation", ["sub_scene", "summary", "g_avg"])
    check_table(output, "mlvu_mc", ["accuracy", "accuracy/plotQA"])
