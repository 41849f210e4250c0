"""VCGBench (both consistency layouts, two prompts per consistency item), the open-QA answer pre-fill (PLLaVA),
and MLVU's multiple-choice and generation files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.data.dataset_fixtures import contract, media_dir, write_json  # noqa: F401
from vlmkit.config import load_config, to_dict
from vlmkit.data.datasets.vcgbench import consistency_items
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS

IGNORE = -100
PLLAVA_PREFIX = "\nAnswer: In the video,"
ROOT = Path(__file__).resolve().parents[2]


def build(contract, **cfg):
    return DATASETS.build(cfg, contract=contract)


# ---------------------------------------------------------------------------------------------- VCGBench
def test_consistency_items_from_the_original_layout():
    rows = [{"Q1": "What is he doing?", "Q2": "Describe his action.", "A": "juggling", "video_name": "v_a"}]
    assert consistency_items(rows, "c.json") == [{"video_name": "v_a", "question": "What is he doing?",
                                                  "question_2": "Describe his action.", "answer": "juggling"}]


def test_consistency_items_repair_lmms_eval_halves_by_video_name():
    # second halves listed after all first ones, one second half before its first, two items of one video
    rows = [{"video_name": "a", "question_1": "a1?", "question_2": "None", "answer": "A"},
            {"video_name": "b", "question_1": "None", "question_2": "b2?", "answer": "B"},
            {"video_name": "a", "question_1": "a3?", "question_2": "None", "answer": "A2"},
            {"video_name": "b", "question_1": "b1?", "question_2": "None", "answer": "B"},
            {"video_name": "a", "question_1": "None", "question_2": "a2?", "answer": "A"},
            {"video_name": "a", "question_1": "None", "question_2": "a4?", "answer": "A2"}]
    items = consistency_items(rows, "c.json")
    assert [(i["video_name"], i["question"], i["question_2"], i["answer"]) for i in items] == [
        ("a", "a1?", "a2?", "A"), ("b", "b1?", "b2?", "B"), ("a", "a3?", "a4?", "A2")]


@pytest.mark.parametrize("rows, message", [
    ([{"video_name": "a", "question_1": "q?", "question_2": "None", "answer": "x"}], "without their other question"),
    ([{"video_name": "a", "question_1": "q?", "question_2": "None", "answer": "x"},
      {"video_name": "a", "question_1": "None", "question_2": "r?", "answer": "y"}], "answers differ"),
    ([{"video_name": "a", "question_1": "None", "question_2": "None", "answer": "x"}], "both empty"),
    ([{"video_name": "a", "Q": "q?", "A": "x"}], "needs Q1/Q2"),
    ([{"Q1": "q?", "Q2": "r?", "A": "x"}], "missing field 'video_name'"),
])
def test_consistency_items_reject_broken_files(rows, message):
    with pytest.raises(DataError, match=message):
        consistency_items(rows, "c.json")


@pytest.fixture()
def vcg_files(tmp_path, media_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("v_one", "v_two"):
        shutil.copyfile(media_dir / "good.mp4", videos / f"{name}.mp4")
    return {
        "generic_path": write_json(tmp_path / "generic_qa.json", [
            {"Q": "what is in the video?", "A": "a red square", "video_name": "v_one"}]),
        "temporal_path": write_json(tmp_path / "temporal_qa.json", [
            {"question": "what happens first?", "answer": "it moves", "video_name": "v_two"}]),
        "consistency_path": write_json(tmp_path / "consistency_qa.json", [
            {"video_name": "v_one", "question_1": "what colour is the square?", "question_2": "None", "answer": "red"},
            {"video_name": "v_one", "question_1": "None", "question_2": "which colour is the shape?",
             "answer": "red"}]),
        "media_root": str(videos)}


def test_vcgbench_dataset_types_items_and_adds_a_second_prompt(contract, vcg_files):
    ds = build(contract, name="vcgbench", answer_prefix="the", **vcg_files)
    by_type = {r.meta["task_type"]: r for r in ds.items}
    assert set(by_type) == {"generic", "temporal", "consistency"}
    assert by_type["temporal"].meta["answer"] == "it moves" and by_type["temporal"].media.endswith("v_two.mp4")
    item = by_type["consistency"]
    assert item.meta["question"] == "what colour is the square?"
    assert item.meta["question_2"] == "which colour is the shape?"
    samples = {ds.items[i].id: ds[i] for i in range(len(ds))}
    second = samples[item.id]["input_ids_2"].tolist()
    assert second == ds.builder.encode(ds.second[item.id]).input_ids
    assert second != samples[item.id]["input_ids"].tolist()
    prefix = contract.tokenizer("the", add_special_tokens=False)["input_ids"]
    assert second[-len(prefix):] == prefix  # the second question gets the same pre-fill
    assert "input_ids_2" not in samples[by_type["generic"].id]

    batch = ds.collater([samples[by_type["generic"].id], samples[item.id]])
    assert batch["has_question_2"].tolist() == [False, True]
    assert batch["attention_mask_2"][0].sum() == 0 and batch["attention_mask_2"][1, -1] == 1  # left-padded
    width = batch["attention_mask_2"][1].sum()
    assert batch["input_ids_2"][1, -width:].tolist() == second
    alone = ds.collater([samples[by_type["generic"].id]])
    assert "input_ids_2" not in alone


def test_vcgbench_dataset_needs_a_file(contract):
    with pytest.raises(ConfigError, match="at least one of generic_path"):
        build(contract, name="vcgbench", media_root="x")


# ---------------------------------------------------------------------------------------------- pre-fill
def test_open_qa_prefill_ends_the_prompt_and_is_never_a_label(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "qa.json", [{"id": "q1", "video": "good.mp4", "question": "what moves?",
                                            "answer": "a square"}])
    ds = build(contract, name="video_qa", ann_path=ann, media_root=str(media_dir), pre_prompt="Question: ",
               answer_prefix=PLLAVA_PREFIX)
    sample = ds[0]
    prefix = contract.tokenizer(PLLAVA_PREFIX, add_special_tokens=False)["input_ids"]
    ids = sample["input_ids"].tolist()
    assert ids[-len(prefix):] == prefix
    assert contract.tokenizer.decode(ids).endswith(contract.tokenizer.decode(prefix))
    assert (sample["labels"] == IGNORE).all()
    assert sample["meta"]["answer_prefix"] == PLLAVA_PREFIX and sample["meta"]["answer"] == "a square"
    plain = build(contract, name="video_qa", ann_path=ann, media_root=str(media_dir), pre_prompt="Question: ")
    assert plain[0]["input_ids"].tolist() == ids[:-len(prefix)]  # the prefix is all that was added
    # training samples are the plain conversation: the pre-fill only shapes the evaluation prompt
    train = [build(contract, name="video_qa", ann_path=ann, media_root=str(media_dir), answer_prefix=p,
                   train=True)[0] for p in (PLLAVA_PREFIX, "")]
    assert torch.equal(train[0]["input_ids"], train[1]["input_ids"])
    assert torch.equal(train[0]["labels"], train[1]["labels"])


def test_pllava_msvd_config_prefills_the_answer(contract, media_dir, tmp_path):
    cfg = to_dict(load_config(ROOT / "eval_configs/pllava/msvd_qa_judge.yaml", purpose="eval"))["datasets"]["msvd_qa"]
    assert cfg["answer_prefix"] == PLLAVA_PREFIX
    assert cfg["pre_prompt"].startswith("The input consists of a sequence of key frames")
    ann = write_json(tmp_path / "msvd.json", [{"question": "what is moving?", "answer": "square", "video_id": "good",
                                              "id": 7}])
    ds = build(contract, **{**cfg, "ann_path": ann, "media_root": str(media_dir)})
    record = ds.items[0]
    assert record.conversation[0]["value"] == f"<video>\n{cfg['pre_prompt']}what is moving? \n"
    prefix = contract.tokenizer(PLLAVA_PREFIX, add_special_tokens=False)["input_ids"]
    assert ds[0]["input_ids"].tolist()[-len(prefix):] == prefix


# ---------------------------------------------------------------------------------------------- MLVU
@pytest.fixture()
def mlvu_root(tmp_path, media_dir):
    json_dir, video_dir = tmp_path / "json", tmp_path / "video"
    for folder in ("1_plotQA", "5_order", "8_sub_scene", "9_summary"):
        (video_dir / folder).mkdir(parents=True)
        shutil.copyfile(media_dir / "good.mp4", video_dir / folder / "x.mp4")
    mc = {"video": "x.mp4", "duration": 2.0, "question": "What happens?", "candidates": ["a", "b", "c", "d"],
          "answer": "c", "question_type": "plotQA"}
    json_dir.mkdir()
    write_json(json_dir / "1_plotQA.json", [mc, mc])
    write_json(json_dir / "5_order.json", [{**mc, "answer": "a"}])
    write_json(json_dir / "8_sub_scene.json", [{"video": "x.mp4", "question": "Describe the scene.", "answer": "s",
                                                "scoring_points": ["a square", "it is red"]}])
    write_json(json_dir / "9_summary.json", [{"video": "x.mp4", "question": "Summarize.", "answer": "t"}])
    return tmp_path


def test_mlvu_mc_reads_task_files_with_per_task_folders(contract, mlvu_root):
    ds = build(contract, name="mlvu", ann_root=str(mlvu_root / "json"), media_root=str(mlvu_root / "video"),
               tasks=["plotQA", "order"])
    assert [r.id for r in ds.items] == ["plotQA/00000", "plotQA/00001", "order/00000"]
    assert [r.meta["task_type"] for r in ds.items] == ["plotQA", "plotQA", "order"]
    assert ds.items[2].media.endswith("video/5_order/x.mp4") and ds.items[2].meta["answer"] == "(A) a"
    assert ds.items[0].answer_prefix == "Best Option: ("
    assert torch.is_tensor(ds[0]["input_ids"])
    with pytest.raises(ConfigError, match="unknown MLVU multiple-choice task"):
        build(contract, name="mlvu", ann_root=str(mlvu_root / "json"), tasks=["sub_scene"])


def test_mlvu_generation_reads_both_tasks_and_requires_scoring_points(contract, mlvu_root):
    ds = build(contract, name="mlvu_generation", ann_root=str(mlvu_root / "json"),
               media_root=str(mlvu_root / "video"))
    sub, summary = ds.items
    assert (sub.meta["task_type"], summary.meta["task_type"]) == ("sub_scene", "summary")
    assert sub.meta["scoring_points"] == ["a square", "it is red"] and "scoring_points" not in summary.meta
    assert sub.media.endswith("8_sub_scene/x.mp4") and summary.media.endswith("9_summary/x.mp4")
    assert ds[1]["meta"]["question"] == "Summarize."
    write_json(mlvu_root / "json" / "8_sub_scene.json", [{"video": "x.mp4", "question": "q", "answer": "a"}])
    with pytest.raises(DataError, match="missing field 'scoring_points'"):
        build(contract, name="mlvu_generation", ann_root=str(mlvu_root / "json"), tasks=["sub_scene"])
