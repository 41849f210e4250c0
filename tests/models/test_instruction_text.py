"""The instruction-aware Q-Former reads the instruction only (the last user turn, no placeholders), never the
answer: changing only the answer leaves the visual tokens unchanged, in training and generation alike."""
from __future__ import annotations

import json

import pytest
import torch

from tests.models.recipe_helpers import build_preset
from vlmkit.demo import synthetic_video as sv
from vlmkit.registry import DATASETS

QUESTION = "what colour is the shape"
NO_SELECTOR = ("model.selector=null", "model.branches.0.stages.0.tokenizer=local:word")


@pytest.fixture(scope="module")
def qa_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("instruction")
    sv.write_video(root / "a.mp4", sv.test_pattern(20, 48, 64, seed=0), fps=10)
    qa = [{"id": "short", "video": "a.mp4", "question": QUESTION, "answer": "red"},
          {"id": "long", "video": "a.mp4", "question": QUESTION, "answer": "a blue square moving left"}]
    (root / "qa.json").write_text(json.dumps(qa))
    return root


def qa_dataset(model, root, train, tgb=False):
    cfg = {"name": "video_qa", "ann_path": str(root / "qa.json"), "media_root": str(root), "format": "simple",
           "train": train, "backend": "pyav"}
    if tgb:  # VideoTGB: the sampler's question ids and flow (from the frames) come from the wrapper
        cfg = {"name": "tgb_inputs", "dataset": cfg}
    return DATASETS.build(cfg, contract=model.data_contract())


def visual_tokens(model, batch) -> torch.Tensor:
    """The branch output (the visual tokens) of a real forward pass over ``batch``."""
    seen = []
    handle = model.branches[0].register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    torch.manual_seed(0)  # the same span draws for a selector
    with torch.no_grad():
        model(**batch)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("overrides,tgb", [(NO_SELECTOR, False), ((), True)], ids=["no_selector", "videotgb"])
def test_changing_only_the_answer_leaves_the_visual_tokens_unchanged(tmp_path, qa_root, overrides, tgb):
    model = build_preset(tmp_path, "videotgb/tiny_llama", *overrides).eval()
    dataset = qa_dataset(model, qa_root, train=True, tgb=tgb)
    short, long = dataset[0], dataset[1]
    long["pixel_values"] = short["pixel_values"]  # same frames: the training sampler draws per index
    assert len(long["input_ids"]) > len(short["input_ids"])  # the answers differ, so do the LLM sequences
    assert torch.equal(visual_tokens(model, dataset.collater([short])), visual_tokens(model, dataset.collater([long])))


def test_the_instruction_is_the_question_alone_in_training_and_generation(tmp_path, qa_root):
    model = build_preset(tmp_path, "videotgb/tiny_llama", *NO_SELECTOR)
    tokenizer = model.data_contract().extra["instruction"]["tokenizer"]
    expected = tokenizer(QUESTION)["input_ids"]  # no <video>, no template, no answer
    train, generation = qa_dataset(model, qa_root, train=True), qa_dataset(model, qa_root, train=False)
    for sample in (train[0], train[1], generation[0]):
        assert sample["instruction_ids"].tolist() == expected
    batch = generation.collater([generation[0], generation[1]])
    assert batch["instruction_mask"].all() and batch["instruction_ids"].shape == (2, len(expected))
    texts = model.generate(**{k: v for k, v in batch.items() if k != "labels"}, max_new_tokens=2, do_sample=False)
    assert len(texts) == 2


def test_a_batch_without_instruction_ids_is_a_clear_error(tmp_path, qa_root):
    model = build_preset(tmp_path, "videotgb/tiny_llama", *NO_SELECTOR).eval()
    dataset = qa_dataset(model, qa_root, train=True)
    batch = dataset.collater([dataset[0]])
    del batch["instruction_ids"], batch["instruction_mask"]
    with pytest.raises(ValueError, match="no 'instruction_ids'"):
        model(**batch)


def test_the_second_vcgbench_question_is_read_as_its_own_instruction(tmp_path, qa_root):
    from vlmkit.tasks.open_qa import second_question_batch

    model = build_preset(tmp_path, "videotgb/tiny_llama", *NO_SELECTOR)
    (tmp_path / "c.json").write_text(json.dumps([{"Q1": QUESTION, "Q2": "which way does it move", "A": "left",
                                                  "video_name": "a"}]))
    dataset = DATASETS.build({"name": "vcgbench", "media_root": str(qa_root), "backend": "pyav",
                              "consistency_path": str(tmp_path / "c.json")}, contract=model.data_contract())
    batch = dataset.collater([dataset[0]])
    second = second_question_batch(batch, [0], model.batch_keys)
    tokenizer = model.data_contract().extra["instruction"]["tokenizer"]
    assert batch["instruction_ids"][0].tolist() == tokenizer(QUESTION)["input_ids"]
    assert second["instruction_ids"][0].tolist() == tokenizer("which way does it move")["input_ids"]
