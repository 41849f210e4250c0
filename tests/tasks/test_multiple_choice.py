"""Multiple choice by option log-likelihood: exact scores against the model's own loss, and a trained preference."""
from __future__ import annotations

import pytest
import torch

from tests.tasks.tiny import COLOURS, TinyVideoQA, mc_records, tiny_model
from vlmkit.errors import DataError
from vlmkit.models.prompting import IGNORE_INDEX, collate_encoded
from vlmkit.registry import TASKS


def option_loss(model, dataset, index, continuation):
    """The model's mean loss on ``continuation`` after sample ``index``'s prompt, one sample, no padding."""
    sample = dataset[index]
    tokens = model.llm.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([sample["input_ids"] + tokens])
    labels = torch.tensor([[IGNORE_INDEX] * len(sample["input_ids"]) + tokens])
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=[sample["pixel_values"][0][None]],
                labels=labels)
    return out.loss.item(), len(tokens)


def test_loglik_scores_equal_the_models_loss_on_each_option(tmp_path):
    model, _ = tiny_model(tmp_path)
    dataset = TinyVideoQA(model.data_contract(), mc_records(2))  # prompts of different lengths: padding matters
    batch = dataset.collater([dataset[0], dataset[1]])
    mean_task = TASKS.build({"name": "multiple_choice", "mode": "loglik"})
    sum_task = TASKS.build({"name": "multiple_choice", "mode": "loglik", "score": "sum"})
    with torch.no_grad():
        records = mean_task.valid_step(model, batch)
        sums = sum_task.valid_step(model, batch)
        for r, record in enumerate(records):
            expected = [option_loss(model, dataset, r, f"({letter}) {option}")
                        for letter, option in zip("ABCD", COLOURS)]
            assert record["option_scores"] == pytest.approx([-loss for loss, _ in expected], abs=1e-4)
            assert sums[r]["option_scores"] == pytest.approx([-loss * n for loss, n in expected], abs=1e-3)
            best = max(range(4), key=lambda k: record["option_scores"][k])
            assert record["prediction"] == f"({'ABCD'[best]})" and record["id"] == f"q00{r}"


def test_loglik_picks_the_option_the_model_was_trained_to_prefer(tmp_path):
    model, _ = tiny_model(tmp_path)
    contract = model.data_contract()
    records = [{**r, "answer": "blue"} for r in mc_records(2)]
    dataset = TinyVideoQA(contract, records)
    task = TASKS.build({"name": "multiple_choice", "mode": "loglik"})
    eval_batch = dataset.collater([dataset[0], dataset[1]])
    before = [r["prediction"] for r in task.valid_step(model, eval_batch)]
    assert before != ["(C)", "(C)"]  # the untrained model does not prefer it already

    train = [dataset[i] for i in range(2)]
    encoded = [contract.encode([{"from": "human", "value": f"<video>\nQuestion: {r['question']}\nOptions:\n"
                                 + "\n".join(f"({l}) {o}" for l, o in zip("ABCD", COLOURS))},
                                {"from": "gpt", "value": "(C) blue"}]) for r in records]
    batch = collate_encoded(encoded, contract.pad_token_id)
    batch["pixel_values"] = [torch.stack([s["pixel_values"][0] for s in train])]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(10):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    predictions = task.valid_step(model, eval_batch)
    assert [p["prediction"] for p in predictions] == ["(C)", "(C)"], before
    assert task.evaluate(predictions)["accuracy"] == 100.0


def test_loglik_needs_options(tmp_path):
    model, _ = tiny_model(tmp_path)
    dataset = TinyVideoQA(model.data_contract(), [{"id": "x", "question": "what is it", "answer": "a"}])
    task = TASKS.build({"name": "multiple_choice", "mode": "loglik"})
    with pytest.raises(DataError, match="has no 'options' list"):
        task.valid_step(model, dataset.collater([dataset[0]]))


def test_the_overall_summary_never_averages_the_likeliest_option_with_written_answers():
    """Scoring the same questions by option likelihood and by the written answer gives two measurements; the
    evaluator's overall row names each, instead of printing their mean as one 'accuracy'."""
    from vlmkit.runners.evaluator import Evaluator

    loglik = TASKS.build({"name": "multiple_choice", "mode": "loglik"})
    written = TASKS.build({"name": "multiple_choice", "mode": "generate"})
    entries = {}
    for key, task, value in (("mc", loglik, 0.9), ("mc_generated", written, 0.8)):
        name, headline = task.headline({"accuracy": value, "num_no_answer": 0.0})
        entries[key] = {"primary": {"name": name, "value": headline}, "metrics": {"accuracy": value}}
    overall = Evaluator._overall(entries)
    assert overall["accuracy (likeliest option)"] == 0.9 and overall["accuracy"] == 0.8
