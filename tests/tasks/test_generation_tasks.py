"""Open QA, captioning, GEBC and needle tasks: records in, metrics out; the needle grid end to end."""
from __future__ import annotations

import json

import pytest
import torch

from tests.tasks.tiny import TinyVideoQA, mc_records, tiny_model
from vlmkit.errors import DataError
from vlmkit.metrics.niah import insert_needle
from vlmkit.registry import METRICS, RUNNERS, TASKS


def test_open_qa_merges_metrics_and_prefixes_conflicting_keys():
    records = [{"id": "1", "question": "q", "answer": "a red ball", "prediction": "Red ball."},
               {"id": "2", "question": "q", "answer": "blue", "prediction": "it is blue"}]
    task = TASKS.build({"name": "open_qa"})
    metrics = task.evaluate(records)
    assert metrics == {"exact_match": 50.0, "num_samples": 2.0, "contains": 100.0}
    assert task.headline(metrics) == ("exact_match", 50.0)
    half = TASKS.build({"name": "open_qa", "metrics": ["exact_match", {"name": "exact_match", "percent": False}]})
    assert half.evaluate(records) == {"exact_match": 50.0, "num_samples": 2.0, "exact_match/exact_match": 0.5}
    with pytest.raises(DataError, match="primary metric 'bleu'"):
        TASKS.build({"name": "open_qa", "primary": "bleu"}).headline(metrics)


def test_captioning_task_scores_with_coco_metrics():
    records = [{"id": "v1", "references": ["a red circle moves left", "a red ball goes left"],
                "prediction": "a red circle moves left"},
               {"id": "v2", "references": ["a blue square grows"], "prediction": "a green square"}]
    task = TASKS.build({"name": "captioning", "metrics": [{"name": "caption_coco", "scorers": ["ROUGE_L", "CIDEr"]}]})
    metrics = task.evaluate(records)
    expected = METRICS.build({"name": "caption_coco", "scorers": ["ROUGE_L", "CIDEr"]}).compute(records)
    assert metrics == expected and task.headline(metrics) == ("CIDEr", expected["CIDEr"])


def test_gebc_groups_three_caption_samples_per_boundary():
    truth = {"b1": {"subject": "a man", "status_before": "standing still", "status_after": "running fast"},
             "b2": {"subject": "the dog", "status_before": "lying down", "status_after": "jumping up"}}
    said = {"b1": {"subject": "a man", "status_before": "standing", "status_after": "walking fast"},
            "b2": {"subject": "a dog", "status_before": "lying down", "status_after": "sitting"}}
    records = [{"id": f"{b}-{kind}", "boundary_id": b, "caption_type": kind, "answer": truth[b][kind],
                "prediction": said[b][kind]} for b in truth for kind in truth[b]]
    cfg = {"name": "gebc", "scorers": ["ROUGE_L", "CIDEr"]}
    task = TASKS.build({"name": "gebc", "metrics": [cfg]})
    metrics = task.evaluate(records)
    whole = [{"id": b, "prediction": said[b], "answer": truth[b]} for b in truth]
    assert metrics == {**METRICS.build(cfg).compute(whole), "num_missing_captions": 0.0}
    assert metrics["num_boundaries"] == 2.0 and "avg/CIDEr" in metrics
    # a boundary whose sample for one caption type never came back is scored with an empty caption
    partial = task.evaluate([r for r in records if r["id"] != "b2-status_after"])
    assert partial["num_missing_captions"] == 1.0
    with pytest.raises(DataError, match="caption_type 'verb'"):
        task.evaluate([{**records[0], "caption_type": "verb"}])


class TinyHaystacks(TinyVideoQA):
    """A bright needle frame spliced into a random haystack at the record's depth, then 4 frames taken evenly."""

    def __getitem__(self, index):
        sample = super().__getitem__(index)
        record = self.records[index]
        size = self.contract.preprocessing[0].size
        haystack = torch.rand(record["haystack_frames"], 3, size, size, generator=torch.Generator().manual_seed(index))
        frames, _ = insert_needle(haystack, torch.ones(3, size, size), record["needle_depth"])
        picks = torch.linspace(0, len(frames) - 1, self.contract.num_frames).round().long()
        sample["pixel_values"] = [frames[picks]]
        return sample


def test_needle_grid_on_tiny_haystacks(tmp_path):
    model, cfg = tiny_model(tmp_path)
    records = [{**r, "haystack_frames": frames, "needle_depth": depth, "question": "what colour is the needle"}
               for r, (frames, depth) in zip(mc_records(6), [(f, d) for f in (4, 8) for d in (0.0, 0.5, 1.0)])]
    runner = RUNNERS.build({"name": "evaluator", "tasks": {"name": "needle", "mode": "loglik"}, "batch_size": 3,
                            "output_dir": str(tmp_path / "eval")},
                           model=model, datasets={"vnbench": TinyHaystacks(model.data_contract(), records)},
                           config=cfg)
    metrics = runner.evaluate()["datasets"]["vnbench"]["metrics"]
    grid = json.loads((tmp_path / "eval" / "vnbench" / "niah_grid.json").read_text())
    assert (tmp_path / "eval" / "vnbench" / "niah_grid.png").stat().st_size > 0
    assert grid["haystack_frames"] == [4, 8] and grid["needle_depth"] == [0.0, 0.5, 1.0]
    assert grid["count"] == [[1, 1, 1], [1, 1, 1]]
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions" / "vnbench.jsonl").open()]
    correct = {(p["haystack_frames"], p["needle_depth"]): float(p["prediction"] == "(" + "ABCD"[
        ["red", "green", "blue", "yellow"].index(p["answer"])] + ")") for p in predictions}
    assert grid["accuracy"] == [[correct[(f, d)] for d in (0.0, 0.5, 1.0)] for f in (4, 8)]
    assert metrics["accuracy"] == pytest.approx(sum(correct.values()) / 6)
    assert metrics["accuracy/frames=8/depth=0.5"] == correct[(8, 0.5)]
