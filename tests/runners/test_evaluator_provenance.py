"""Resume reuses only predictions the current run would have made (weights, generation, data: fingerprinted)."""
from __future__ import annotations

import json

import pytest

from tests.runners.test_evaluator import evaluator, predictions, write_checkpoint
from tests.tasks.tiny import CountingGenerate, TinyVideoQA, mc_records, tiny_model
from vlmkit.runners.provenance import StalePredictionsError, file_sha256
from vlmkit.tools.checksums import sha256_of


def results(out):
    return json.loads((out / "results.json").read_text())


def test_checkpoint_b_never_reports_checkpoint_a_predictions(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(4))}
    write_checkpoint(tmp_path / "run_a", model, cfg, scale=0.5)
    write_checkpoint(tmp_path / "run_b", model, cfg, scale=-2.0)
    out = tmp_path / "eval"
    evaluator(model, cfg, data, out, checkpoint=str(tmp_path / "run_a")).evaluate()
    a_records = predictions(out)
    a_weights = results(out)["datasets"]["mc"]["fingerprint"]["weights"]["evaluation.checkpoint"]

    runner = evaluator(model, cfg, data, out, checkpoint=str(tmp_path / "run_b"))
    with pytest.raises(StalePredictionsError) as err:
        runner.evaluate()
    message = str(err.value)
    assert "4 of the 4 predictions there were not made by this run" in message
    assert "weights.evaluation.checkpoint.sha256" in message and a_weights["sha256"] in message
    assert "evaluation.output_dir" in message and "resume: false" in message and "recompute" in message

    counter = CountingGenerate(model)
    b = evaluator(model, cfg, data, out, checkpoint=str(tmp_path / "run_b"),
                  on_stale_predictions="recompute").evaluate()
    assert counter.rows == 4  # every one of A's predictions was redone
    b_records = predictions(out)
    b_print = b["datasets"]["mc"]["fingerprint"]
    assert b_print["weights"]["evaluation.checkpoint"]["sha256"] == file_sha256(
        runner.checkpoint / "model.safetensors") != a_weights["sha256"]
    assert {r["fingerprint"] for r in b_records} == {b_print["digest"]} != {r["fingerprint"] for r in a_records}
    assert results(out)["datasets"]["mc"]["fingerprint"]["digest"] == b_print["digest"]


def test_one_changed_question_is_refused_or_recomputed_alone(tmp_path):
    model, cfg = tiny_model(tmp_path)
    records = mc_records(4)
    out = tmp_path / "eval"
    evaluator(model, cfg, {"mc": TinyVideoQA(model.data_contract(), records)}, out, batch_size=2).evaluate()
    records[2] = {**records[2], "question": "which shape is it"}
    changed = {"mc": TinyVideoQA(model.data_contract(), records)}
    with pytest.raises(StalePredictionsError) as err:
        evaluator(model, cfg, changed, out, batch_size=2).evaluate()
    assert "q002: question: 'what colour is the shape please please' -> 'which shape is it'" in str(err.value)

    counter = CountingGenerate(model)
    evaluator(model, cfg, changed, out, batch_size=2, on_stale_predictions="recompute").evaluate()
    assert counter.rows == 1
    merged = predictions(out)
    assert [r["id"] for r in merged] == ["q000", "q001", "q002", "q003"]
    assert merged[2]["question"] == "which shape is it"


def test_a_changed_generation_setting_is_refused(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(2))}
    evaluator(model, cfg, data, tmp_path / "eval").evaluate()
    with pytest.raises(StalePredictionsError, match=r"generation.max_new_tokens: 3 -> 5"):
        evaluator(model, cfg, data, tmp_path / "eval", max_new_tokens=5).evaluate()
    counter = CountingGenerate(model)  # the same settings again: everything is reused
    evaluator(model, cfg, data, tmp_path / "eval").evaluate()
    assert counter.rows == 0


def test_a_changed_dataset_file_is_refused(tmp_path):
    model, cfg = tiny_model(tmp_path)
    ann = tmp_path / "questions.json"
    ann.write_text(json.dumps(mc_records(2)))
    cfg = {**cfg, "datasets": {"mc": {"name": "multiple_choice", "ann_path": str(ann)}}}
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(2))}
    evaluator(model, cfg, data, tmp_path / "eval").evaluate()
    before = file_sha256(ann)
    ann.write_text(json.dumps(mc_records(3)))
    with pytest.raises(StalePredictionsError, match=r"data.files.dataset.ann_path.sha256: '" + before):
        evaluator(model, cfg, data, tmp_path / "eval").evaluate()


def test_predictions_without_a_fingerprint_are_not_reused(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(2))}
    shard = tmp_path / "eval" / "predictions" / "mc" / "rank000.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text("".join(json.dumps({**r, "prediction": "(A)"}) + "\n" for r in mc_records(2)))
    with pytest.raises(StalePredictionsError, match="no fingerprint recorded"):
        evaluator(model, cfg, data, tmp_path / "eval").evaluate()
    counter = CountingGenerate(model)
    evaluator(model, cfg, data, tmp_path / "eval", resume=False).evaluate()
    assert counter.rows == 2


def test_the_checkpoint_is_read_once_for_its_fingerprint(tmp_path, monkeypatch):
    # Loading verified model.safetensors against the manifest's sha256; the fingerprint takes that hash rather
    # than reading the file a second time (a 26 GB checkpoint costs about a minute to hash).
    from vlmkit.runners import provenance

    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(2))}
    write_checkpoint(tmp_path / "run", model, cfg, scale=0.5)
    read = []
    monkeypatch.setattr(provenance, "sha256_of", lambda path: read.append(path.name) or "0" * 64)
    out = evaluator(model, cfg, data, tmp_path / "eval", checkpoint=str(tmp_path / "run")).evaluate()
    recorded = out["datasets"]["mc"]["fingerprint"]["weights"]["evaluation.checkpoint"]["sha256"]
    assert "model.safetensors" not in read
    checkpoint = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert recorded == sha256_of(checkpoint / "model.safetensors")  # the real hash, from the verified manifest
