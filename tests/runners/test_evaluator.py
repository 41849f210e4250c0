"""The evaluation runner on a tiny real VideoLLM: batching, resume, checkpoints, results."""
from __future__ import annotations

import json

import pytest
import torch

from tests.metrics.judge_server import FakeChatServer
from tests.tasks.tiny import (
    CountingGenerate,
    TinyVideoQA,
    TinyVideoQAWithIds,
    mc_records,
    tiny_model,
)
from vlmkit.errors import ConfigError
from vlmkit.registry import METRICS, RUNNERS
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners.distributed import DistEnv


def evaluator(model, cfg, datasets, out, **settings):
    settings = {"name": "evaluator", "tasks": {"name": "multiple_choice"}, "max_new_tokens": 3,
                "output_dir": str(out), **settings}
    return RUNNERS.build(settings, "evaluation", model=model, datasets=datasets, config=cfg)


def predictions(out, key="mc"):
    return [json.loads(line) for line in (out / "predictions" / f"{key}.jsonl").read_text().splitlines()]


def test_batched_generation_equals_one_by_one_and_results_are_complete(tmp_path, capsys):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(6))}
    counter = CountingGenerate(model)
    single = evaluator(model, cfg, data, tmp_path / "single", batch_size=1).evaluate()
    assert counter.calls == 6
    batched = evaluator(model, cfg, data, tmp_path / "batched", batch_size=4).evaluate()
    assert counter.calls == 6 + 2  # 4 + 2 rows, prompts of different lengths left-padded together
    one, many = predictions(tmp_path / "single"), predictions(tmp_path / "batched")
    assert [r["id"] for r in one] == [f"q{i:03d}" for i in range(6)]
    assert [r["prediction"] for r in one] == [r["prediction"] for r in many]
    assert any(r["prediction"] for r in one)  # the tiny model really wrote something
    assert single["datasets"]["mc"]["metrics"] == batched["datasets"]["mc"]["metrics"]

    results = json.loads((tmp_path / "batched" / "results.json").read_text())
    assert results["config"]["model"] == cfg["model"]
    assert results["generation"] == {"max_new_tokens": 3, "num_beams": 1, "do_sample": False,
                                     "repetition_penalty": 1.0}
    entry = results["datasets"]["mc"]
    assert entry["task"] == "multiple_choice" and entry["num_predictions"] == entry["dataset_size"] == 6
    metrics = entry["metrics"]
    assert metrics == METRICS.build("mc_accuracy").compute(many)  # scored on the merged records
    assert {"accuracy", "accuracy/colour", "accuracy/shape", "num_no_answer"} <= set(metrics)
    assert entry["primary"] == {"name": "accuracy", "value": metrics["accuracy"]}
    assert results["overall"] == {"accuracy": metrics["accuracy"], "num_no_answer": metrics["num_no_answer"],
                                  "num_datasets": 1.0}
    assert (tmp_path / "batched" / "config.yaml").is_file()
    table = capsys.readouterr().err
    assert "accuracy/colour" in table and "overall" in table
    rows = [line.split() for line in table.splitlines()]
    assert sum(1 for row in rows if row[-2] == "accuracy") >= 2  # the datasets and the overall ones
    for k, row in enumerate(rows):  # every accuracy row is followed by its no-answer count
        if row[-2] == "accuracy":
            assert rows[k + 1][-2] == "num_no_answer" and rows[k + 1][0] == row[0], table


@pytest.mark.parametrize("dataset_cls", [TinyVideoQAWithIds, TinyVideoQA], ids=["ids_known", "ids_after_loading"])
def test_interrupted_evaluation_resumes_without_recomputing(tmp_path, dataset_cls):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": dataset_cls(model.data_contract(), mc_records(6))}
    out = tmp_path / "run"
    first = evaluator(model, cfg, data, out, batch_size=2)
    original, steps = first.tasks["mc"].valid_step, []

    def crashing_step(model, batch):
        steps.append(1)
        if len(steps) == 3:
            raise RuntimeError("simulated crash")
        return original(model, batch)

    first.tasks["mc"].valid_step = crashing_step
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.evaluate()
    shard = out / "predictions" / "mc" / "rank000.jsonl"
    assert len(shard.read_text().splitlines()) == 4
    with open(shard, "a") as f:  # a record torn by the crash: ignored, recomputed
        f.write('{"id": "q004", "predic')

    counter = CountingGenerate(model)
    resumed = evaluator(model, cfg, data, out, batch_size=2).evaluate()
    assert counter.rows == 2  # only q004 and q005
    assert resumed["datasets"]["mc"]["num_predictions"] == 6

    fresh = evaluator(model, cfg, data, tmp_path / "fresh", batch_size=2, num_workers=1).evaluate()
    assert predictions(out) == predictions(tmp_path / "fresh")
    assert resumed["datasets"]["mc"]["metrics"] == fresh["datasets"]["mc"]["metrics"]
    # a second rerun has nothing left to do; resume: false starts over
    evaluator(model, cfg, data, out, batch_size=2).evaluate()
    assert counter.rows == 2 + 6
    evaluator(model, cfg, data, out, batch_size=3, resume=False).evaluate()
    assert counter.rows == 2 + 6 + 6


def write_checkpoint(run_dir, model, config, scale=0.5):
    tensors = {n: p.detach().clone() * scale for n, p in model.named_parameters() if p.requires_grad}
    writer = ckpt.CheckpointWriter(run_dir / "checkpoints", DistEnv(0, 1, 0), keep_last=None)
    writer.save(ckpt.step_dir_name(7), tensors=tensors, trainer_state={}, rng_state={},
                manifest_extra={"config": config})
    return tensors


def test_checkpoint_is_loaded_and_a_model_config_mismatch_is_named(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(2))}
    _, other_cfg = tiny_model(tmp_path, "model.sampling.sampler.num_frames=8", "model.template.name=plain")
    tensors = write_checkpoint(tmp_path / "train_run", model, cfg)
    runner = evaluator(model, cfg, data, tmp_path / "ok", checkpoint=str(tmp_path / "train_run"))
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], t) for n, t in tensors.items())
    assert runner.checkpoint.name == "step_00000007"

    write_checkpoint(tmp_path / "other_run", model, other_cfg)
    with pytest.raises(ConfigError) as err:
        evaluator(model, cfg, data, tmp_path / "bad", checkpoint=str(tmp_path / "other_run"))
    message = str(err.value)
    assert "model.sampling.sampler.num_frames: checkpoint 8 vs evaluation 4" in message
    assert "model.template.name" in message and "allow_config_mismatch" in message
    evaluator(model, cfg, data, tmp_path / "allowed", checkpoint=str(tmp_path / "other_run"),
              allow_config_mismatch=True)
    evaluator(model, cfg, data, tmp_path / "ignored", checkpoint=str(tmp_path / "other_run"),
              ignore_model_keys=["sampling", "template"])


def test_tasks_must_cover_the_datasets(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"a": TinyVideoQA(model.data_contract(), mc_records(1)),
            "b": TinyVideoQA(model.data_contract(), mc_records(1))}
    with pytest.raises(ConfigError, match=r"no task for \['b'\]"):
        evaluator(model, cfg, data, tmp_path, tasks={"a": {"name": "multiple_choice"}})
    with pytest.raises(ConfigError, match="evaluation.batch_size"):
        evaluator(model, cfg, data, tmp_path, batch_size=0)
    runner = evaluator(model, cfg, data, tmp_path, tasks={"a": "multiple_choice", "b": {"name": "open_qa"}})
    assert sorted(runner.tasks) == ["a", "b"]


def test_evaluation_section_is_validated_before_anything_is_built():
    runtime = {"model", "datasets", "config"}
    for tasks in ("multiple_choice", {"name": "multiple_choice", "mode": "loglik"},
                  {"mvbench": {"name": "multiple_choice", "mode": "loglik"}, "msvd": "open_qa"}):
        assert RUNNERS.check({"name": "evaluator", "tasks": tasks}, "evaluation", runtime=runtime) == []
    for bad in ({"name": "evaluator", "tasks": {"mvbench": {"name": "multiple_choice", "mdoe": "loglik"}}},
                {"name": "evaluator", "tasks": "mc", "num_beam": 2},
                {"name": "evaluator", "tasks": {"name": "multiple_choice", "generation": {}}}):
        assert RUNNERS.check(bad, "evaluation", runtime=runtime), bad


def test_judged_open_qa_records_the_judge_and_reruns_from_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model, cfg = tiny_model(tmp_path)
    records = [{"id": f"o{i}", "question": "what colour is it", "answer": "red"} for i in range(3)]
    data = {"msvd": TinyVideoQA(model.data_contract(), records)}
    with FakeChatServer(lambda messages: "{'pred': 'yes', 'score': 4}") as server:
        judge = {"name": "openai_judge", "model": "judge-model-1", "base_url": server.base_url,
                 "cache_dir": str(tmp_path / "judge_cache"), "concurrency": 1}
        tasks = {"msvd": {"name": "open_qa", "metrics": [{"name": "judged_qa", "judge": judge}, "contains"]}}
        first = evaluator(model, cfg, data, tmp_path / "eval", tasks=tasks, batch_size=3).evaluate()
        counter = CountingGenerate(model)
        again = evaluator(model, cfg, data, tmp_path / "eval", tasks=tasks, batch_size=3).evaluate()
    distinct = len({r["prediction"] for r in predictions(tmp_path / "eval", "msvd")})  # equal prompts: one request
    assert counter.calls == 0 and len(server.requests) == distinct  # the rerun generated and asked nothing
    entry = json.loads((tmp_path / "eval" / "results.json").read_text())["datasets"]["msvd"]
    assert entry["judge"]["judge.model"] == "judge-model-1" and entry["judge"]["judge.kind"] == "openai_judge"
    assert entry["metrics"]["accuracy"] == 100.0 and entry["metrics"]["score"] == 4.0
    assert first["datasets"]["msvd"]["metrics"]["judge.requests"] == distinct
    assert again["datasets"]["msvd"]["metrics"]["judge.requests"] == 0.0
    assert {k: v for k, v in again["datasets"]["msvd"]["metrics"].items() if not k.startswith("judge.requests")
            and k != "num_cached"} == {k: v for k, v in first["datasets"]["msvd"]["metrics"].items()
                                       if not k.startswith("judge.requests") and k != "num_cached"}
    assert "judge-model-1" in capsys.readouterr().err


def test_model_config_diff_skips_the_ignored_keys():
    from vlmkit.runners.trained_model import model_config_diff

    saved = {"preset": "tiny/pooling", "init_weights": [{"path": "stage1"}], "max_length": 9}
    assert model_config_diff(saved, {"preset": "tiny/pooling", "max_length": 9}, ["init_weights"]) == []
    assert model_config_diff(saved, {"preset": "tiny/pooling", "max_length": 8}, ["init_weights"]) == [
        "  model.max_length: checkpoint 9 vs evaluation 8"]
