"""open_qa answers both questions of a VCGBench consistency item: prediction from the first prompt,
prediction_2 from the second, only for the rows that have one; the evaluator's resume keeps both."""
from __future__ import annotations

import json
import shutil

import torch

from tests.data.dataset_fixtures import contract, media_dir, write_json  # noqa: F401
from tests.tasks.tiny import tiny_model
from vlmkit.registry import DATASETS, RUNNERS, TASKS


class PromptEcho(torch.nn.Module):
    """Stands in for a VideoLLM: 'generates' the ids of the prompt it was given (padding dropped), so a test can
    tell exactly which prompt each prediction came from."""

    batch_keys = ()

    def __init__(self):
        super().__init__()
        self.calls = []

    def generate(self, input_ids, attention_mask, pixel_values, **kwargs):
        self.calls.append((input_ids.shape, [p.shape for p in pixel_values]))
        return [" ".join(map(str, ids[mask.bool()].tolist())) for ids, mask in zip(input_ids, attention_mask)]


def vcg_dataset(contract, tmp_path, media_dir):
    videos = tmp_path / "videos"
    videos.mkdir(exist_ok=True)
    shutil.copyfile(media_dir / "good.mp4", videos / "v1.mp4")
    return DATASETS.build({
        "name": "vcgbench", "media_root": str(videos),
        "generic_path": write_json(tmp_path / "g.json", [{"Q": "what is shown?", "A": "a square", "video_name": "v1"}]),
        "consistency_path": write_json(tmp_path / "c.json", [
            {"Q1": "what colour is it?", "Q2": "which colour does the square have in the video?", "A": "red",
             "video_name": "v1"}])}, contract=contract)


def test_second_question_rows_get_prediction_2_from_their_own_prompt(contract, media_dir, tmp_path):
    ds = vcg_dataset(contract, tmp_path, media_dir)
    batch = ds.collater([ds[0], ds[1]])  # the generic question, then the consistency item
    model = PromptEcho()
    records = TASKS.build({"name": "open_qa"}).valid_step(model, batch)
    generic, item = records
    assert item["task_type"] == "consistency" and generic["task_type"] == "generic"
    encode = ds.builder.encode
    assert item["prediction"] == " ".join(map(str, encode(ds.items[1]).input_ids))
    assert item["prediction_2"] == " ".join(map(str, encode(ds.second[ds.items[1].id]).input_ids))
    assert "prediction_2" not in generic
    # the second call saw one row, its padding columns trimmed, with that row's frames
    (shape, pixels) = model.calls[1]
    assert shape == (1, len(encode(ds.second[ds.items[1].id]).input_ids)) and pixels[0][0] == 1


def test_evaluator_writes_and_resumes_both_predictions(contract, media_dir, tmp_path):
    model, cfg = tiny_model(tmp_path / "model")
    ds = vcg_dataset(model.data_contract(), tmp_path, media_dir)
    runner_cfg = {"name": "evaluator", "tasks": {"name": "open_qa", "metrics": ["exact_match"]}, "batch_size": 2,
                  "max_new_tokens": 3, "output_dir": str(tmp_path / "eval")}
    RUNNERS.build(runner_cfg, model=model, datasets={"vcg": ds}, config=cfg).evaluate()
    lines = (tmp_path / "eval" / "predictions" / "vcg.jsonl").read_text().splitlines()
    records = {r["id"]: r for r in map(json.loads, lines)}
    assert set(records) == {"consistency/00000", "generic/00000"}
    first = records["consistency/00000"]
    assert isinstance(first["prediction_2"], str) and first["question_2"].startswith("which colour")
    again = RUNNERS.build(runner_cfg, model=model, datasets={"vcg": ds}, config=cfg)
    assert again.predict("vcg") == 0  # nothing left to generate: the record holds both answers
    assert again.merged_records("vcg")[0] == first
