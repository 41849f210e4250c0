"""Every annotation format becomes samples and batches that a tiny model trains and generates on."""
from __future__ import annotations

import pytest
import torch

from tests.data.dataset_fixtures import conversation, media_dir, contract, tiny_model, write_json  # noqa: F401
from vlmkit.data.datasets.base import fit_frame_count
from vlmkit.registry import DATASETS

IGNORE = -100


def build(contract, **cfg):
    return DATASETS.build(cfg, contract=contract)


def supervised_text(contract, sample) -> str:
    ids = [t for t, label in zip(sample["input_ids"].tolist(), sample["labels"].tolist()) if label != IGNORE]
    return contract.tokenizer.decode(ids)


def test_fit_frame_count_repeats_evenly_and_never_pads():
    frames = torch.arange(2).view(2, 1, 1, 1).expand(2, 3, 2, 2).to(torch.uint8) + 1
    out = fit_frame_count(frames, 4)
    assert out.shape[0] == 4 and out[:, 0, 0, 0].tolist() == [1, 1, 1, 2]
    assert fit_frame_count(frames, 2) is frames


def test_llava_multi_turn_video_and_image_train_a_tiny_model(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "llava.json", [
        {"id": "v", "video": "good.mp4", "conversations": conversation("what moves?", "a red square") +
         [{"from": "human", "value": "where to?"}, {"from": "gpt", "value": "right"}]},
        {"id": "i", "image": "still.png", "conversations": conversation("what is it?", "a gradient", "<image>")}])
    ds = build(contract, name="llava_instruct", ann_path=ann, media_root=str(media_dir))
    video, image = ds[0], ds[1]
    # both answers of the two-turn sample are supervised, the questions are not
    text = supervised_text(contract, video)
    assert "red" in text and "right" in text and "where" not in text
    # an image is num_frames identical frames
    frames = image["pixel_values"][0]
    assert frames.shape == (4, 3, 32, 32) and all(torch.equal(frames[0], f) for f in frames)
    batch = ds.collater([video, image])
    assert batch["pixel_values"][0].shape == (2, 4, 3, 32, 32)
    lengths = batch["attention_mask"].sum(1)
    assert batch["attention_mask"][1, lengths[1]:].sum() == 0  # right padding
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    assert [m["id"] for m in batch["meta"]] == ["v", "i"]
    assert torch.isfinite(tiny_model()(**batch).loss)


def test_llava_eval_mode_left_pads_a_generation_prompt(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "llava.json", [
        {"id": "a", "video": "good.mp4", "conversations": conversation("what colour is the square?", "red")},
        {"id": "b", "video": "other.mp4", "conversations": conversation("and?", "blue")}])
    ds = build(contract, name="llava_instruct", ann_path=ann, media_root=str(media_dir), train=False)
    batch = ds.collater([ds[0], ds[1]])
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]  # left padding: every row ends with a real token
    assert batch["meta"][0]["answer"] == "red" and batch["meta"][0]["question"] == "what colour is the square?"
    assert "red" not in contract.tokenizer.decode(batch["input_ids"][0])
    answers = tiny_model().generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"],
                                    max_new_tokens=2, do_sample=False)
    assert len(answers) == 2


def test_training_frames_are_reproducible_per_seed_epoch_and_index(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "l.json", [{"id": "a", "video": "good.mp4",
                                            "conversations": conversation("q", "a")}])
    ds = build(contract, name="llava_instruct", ann_path=ann, media_root=str(media_dir))
    first, again = ds[0]["pixel_values"][0], ds[0]["pixel_values"][0]
    assert torch.equal(first, again)
    ds.set_epoch(1)
    assert not torch.equal(first, ds[0]["pixel_values"][0])  # random crop/flip redrawn in a new epoch


def test_videochat2_qa_list_becomes_turns_with_instruction_and_bounds(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "vc2.json", [
        {"video": "good.mp4", "start": 0.5, "end": 1.5,
         "QA": [{"i": "Watch closely.", "q": "What shape?", "a": "a square"}, {"i": "", "q": "Colour?", "a": "red"}]}])
    ds = build(contract, name="videochat2_instruct", ann_path=ann, media_root=str(media_dir))
    record = ds.items[0]
    assert record.conversation[0]["value"] == "<video>\nWatch closely.\nWhat shape?"
    assert [t["value"] for t in record.conversation[1::2]] == ["a square", "red"]
    assert (record.start, record.end) == (0.5, 1.5)
    text = supervised_text(contract, ds[0])
    assert "red" in text and "What" not in text
    system = build(contract, name="videochat2_instruct", ann_path=ann, media_root=str(media_dir),
                   instruction_as="system")
    assert system.items[0].conversation[0] == {"from": "system", "value": "Watch closely."}


def test_multiple_choice_uses_mvbench_prompt_options_and_prefill(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "test_mc.json", [
        {"id": "s0-mc0", "video": "good.mp4", "question": "Which colour?", "candidates": ["blue", "red", "green"],
         "answer": "red", "task_type": "colour"}])
    ds = build(contract, name="multiple_choice", ann_path=ann, media_root=str(media_dir))
    record = ds.items[0]
    assert record.conversation[1]["value"].endswith(
        "Question: Which colour?\nOptions:\n(A) blue\n(B) red\n(C) green\nOnly give the best option.")
    sample = ds[0]
    meta = sample["meta"]
    assert meta["answer"] == "(B) red" and meta["options"] == ["blue", "red", "green"]
    assert meta["task_type"] == "colour" and meta["answer_prefix"] == "Best option:("
    prefix = contract.tokenizer("Best option:(", add_special_tokens=False)["input_ids"]
    assert sample["input_ids"].tolist()[-len(prefix):] == prefix
    train = build(contract, name="multiple_choice", ann_path=ann, media_root=str(media_dir), train=True)
    assert "red" in supervised_text(contract, train[0])


def test_mvbench_reads_task_files_with_bounds_only_where_flagged(contract, media_dir, tmp_path):
    root = tmp_path / "json"
    root.mkdir()
    videos = tmp_path / "video"
    for folder in ("star/Charades_v1_480", "ssv2_video"):
        (videos / folder).mkdir(parents=True)
        (videos / folder / "x.mp4").write_bytes((media_dir / "good.mp4").read_bytes())
    entry = {"video": "x.mp4", "question": "What happens?", "candidates": ["a", "b"], "answer": "b",
             "start": 0.2, "end": 1.0}
    write_json(root / "action_sequence.json", [entry])
    write_json(root / "action_antonym.json", [entry, entry])
    ds = build(contract, name="mvbench", ann_root=str(root), media_root=str(videos),
               tasks=["action_sequence", "action_antonym"])
    assert len(ds) == 3
    bounded, plain = ds.items[0], ds.items[1]
    assert (bounded.start, bounded.end) == (0.2, 1.0) and (plain.start, plain.end) == (None, None)
    assert bounded.media.endswith("star/Charades_v1_480/x.mp4")
    assert [r.meta["task_type"] for r in ds.items] == ["action_sequence", "action_antonym", "action_antonym"]
    assert bounded.conversation[0]["from"] == "system" and "cause and sequence" in bounded.conversation[0]["value"]
    batch = ds.collater([ds[0], ds[2]])
    assert batch["meta"][0]["answer"] == "(B) b"
    with pytest.raises(Exception, match="unknown MVBench task"):
        build(contract, name="mvbench", ann_root=str(root), tasks=["action_sequense"])


def test_open_qa_formats(contract, media_dir, tmp_path):
    (tmp_path / "v_abc.mp4").write_bytes((media_dir / "good.mp4").read_bytes())
    (tmp_path / "video7.mp4").write_bytes((media_dir / "good.mp4").read_bytes())
    q = write_json(tmp_path / "test_q.json", [{"video_name": "abc", "question_id": "abc_0", "question": "who?"},
                                             {"video_name": "abc", "question_id": "abc_1", "question": "what?"}])
    a = write_json(tmp_path / "test_a.json", [{"answer": "jumping", "type": 0, "question_id": "abc_1"},
                                             {"answer": "a man", "type": 3, "question_id": "abc_0"}])
    anet = build(contract, name="video_qa", ann_path=q, answers_path=a, media_root=str(tmp_path))
    assert [(r.id, r.meta["answer"], r.meta["task_type"]) for r in anet.items] == [("abc_0", "a man", "3"),
                                                                                   ("abc_1", "jumping", "0")]
    assert anet.items[0].media.endswith("v_abc.mp4") and anet[0]["meta"]["question"] == "who?"
    msrvtt = build(contract, name="video_qa", media_root=str(tmp_path), ann_path=write_json(
        tmp_path / "m.json", [{"question": "q?", "answer": "x", "video_id": 7, "id": 1, "category_id": 2}]))
    assert msrvtt.items[0].media.endswith("video7.mp4")
    simple = build(contract, name="video_qa", media_root=str(media_dir), post_prompt=" One word.",
                   ann_path=write_json(tmp_path / "test_open_qa.json", [
                       {"id": "s-open0", "video": "good.mp4", "question": "colour?", "answer": "red",
                        "task_type": "colour"}]))
    assert simple.items[0].conversation[0]["value"] == "<video>\ncolour? One word."
    assert simple[0]["meta"]["task_type"] == "colour"
    tgif = build(contract, name="video_qa", format="tgif", media_root=str(media_dir),
                 ann_path=write_json(tmp_path / "t.json", [{"question": "q", "answer": "a", "gif_name": "good"}]))
    assert tgif.items[0].media.endswith("good.mp4")


def test_captions_eval_references_and_train_per_caption(contract, media_dir, tmp_path):
    ann = write_json(tmp_path / "test_captions.json",
                     [{"id": "s0", "video": "good.mp4", "captions": ["a red square moves", "a square slides"]}])
    evaluation = build(contract, name="video_captions", ann_path=ann, media_root=str(media_dir))
    assert len(evaluation) == 1 and evaluation[0]["meta"]["references"] == ["a red square moves", "a square slides"]
    train = build(contract, name="video_captions", ann_path=ann, media_root=str(media_dir), train=True)
    assert [r.conversation[-1]["value"] for r in train.items] == ["a red square moves", "a square slides"]


def test_gebc_gives_three_samples_per_boundary(contract, media_dir, tmp_path):
    boundary = {"boundary_id": "good_0", "timestamp": 1.0, "prev_timestamp": 0.3, "next_timestamp": 1.6,
                "label": "Change of Action", "subject": "a square", "status_before": "still",
                "status_after": "moving"}
    ann = write_json(tmp_path / "gebc.json", {"good": [boundary]})
    ds = build(contract, name="gebc", ann_path=ann, media_root=str(media_dir), clip="neighbours")
    assert [r.id for r in ds.items] == ["good_0/subject", "good_0/status_before", "good_0/status_after"]
    assert [r.conversation[-1]["value"] for r in ds.items] == ["a square", "still", "moving"]
    assert (ds.items[0].start, ds.items[0].end) == (0.3, 1.6) and "1.00 seconds" in ds.items[0].meta["question"]
    assert ds.items[0].media.endswith("good.mp4") and ds[1]["pixel_values"][0].shape[0] == 4
    joint = build(contract, name="gebc", ann_path=ann, media_root=str(media_dir), mode="joint", train=False)
    assert joint.items[0].meta["references"] == ["Subject: a square //Status_Before: still //Status_After: moving"]
    assert joint[0]["meta"]["boundary_id"] == "good_0"
