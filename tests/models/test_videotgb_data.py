"""VideoTGB data path: the tgb_inputs wrapper (question ids, precomputed .npy flow, pseudo-label spans) feeds the
tiny model, and the pseudo-label command writes a label file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.models.recipe_helpers import build_preset
from vlmkit.demo import synthetic_video as sv
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.models.selectors.pseudo_labels import unigram_recall
from vlmkit.tools.tgb_pseudo_labels import main as pseudo_label_main


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tgb")
    for name, seed in (("a", 0), ("b", 1)):
        sv.write_video(root / f"{name}.mp4", sv.test_pattern(20, 48, 64, seed=seed), fps=10)
        np.save(root / f"{name}_raft.npy", np.random.default_rng(seed).normal(size=(70, 2, 40, 40)))
    qa = [{"id": "q1", "video": "a.mp4", "question": "what colour is the shape", "answer": "red"},
          {"id": "q2", "video": "b.mp4", "question": "which way does it move", "answer": "left"}]
    (root / "qa.json").write_text(json.dumps(qa))
    (root / "labels.json").write_text(json.dumps({"q1": [0.0, 0.5], "q2": [0.25, 1.0]}))
    return root


def dataset_cfg(root, train, labels=True):
    return {"name": "tgb_inputs", "flow_dir": str(root), **({"labels_path": str(root / "labels.json")} if labels else {}),
            "dataset": {"name": "video_qa", "ann_path": str(root / "qa.json"), "media_root": str(root),
                        "format": "simple", "train": train, "backend": "pyav"}}


def test_wrapper_batches_feed_the_model(tmp_path, qa_files):
    model = build_preset(tmp_path, "videotgb/tiny_llama", "model.selector.flow_estimator=null")
    dataset = DATASETS.build(dataset_cfg(qa_files, train=True), contract=model.data_contract())
    batch = dataset.collater([dataset[0], None, dataset[1]])
    assert batch["pixel_values"][0].shape == (2, 8, 3, 32, 32)
    assert batch["flow"].shape == (2, 64, 2, 32, 32) and batch["flow_lengths"].tolist() == [64, 64]  # 70 -> 64
    assert float(batch["flow"].norm(dim=2).max()) == pytest.approx(1.0, abs=1e-4)  # max-magnitude normalised
    assert batch["tgb_span"].tolist() == [[0.0, 0.5], [0.25, 1.0]]
    assert batch["question_ids"].shape[0] == 2 and batch["question_mask"].sum() == batch["question_mask"].numel() - (
        batch["question_ids"] == dataset.tokenizer.pad_token_id).sum()
    model.train()
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.selector_loss > 0
    dataset.set_epoch(1)  # runner hooks reach the wrapped dataset
    assert dataset.inner.epoch == 1


def test_wrapper_errors_name_the_missing_input(tmp_path, qa_files):
    model = build_preset(tmp_path, "videotgb/tiny_llama", "model.selector.flow_estimator=null")
    cfg = dataset_cfg(qa_files, train=True)
    cfg["flow_template"] = "{video}_missing.npy"
    with pytest.raises(DataError, match="flow file not found"):
        DATASETS.build(cfg, contract=model.data_contract())[0]


def test_unigram_recall_is_the_published_score():
    assert unigram_recall("a red ball.", "the ball is red") == pytest.approx(2 / 3)
    assert unigram_recall("Red, red", "red") == 0.5 and unigram_recall("", "x") == 0.0


def test_pseudo_label_command_writes_spans_for_every_sample(tmp_path, qa_files):
    cfg = tmp_path / "labels.yaml"
    cfg.write_text("model: {preset: videotgb/tiny_llama}\ndatasets:\n  train: " +
                   json.dumps(dataset_cfg(qa_files, train=False, labels=False)) + "\n")
    out = tmp_path / "out" / "pseudo_label.json"
    assert pseudo_label_main(["--cfg-path", str(cfg), "--dataset", "train", "--out", str(out),
                              "--max-new-tokens", "2", "datasets.train.flow_dir=null"]) == 0
    labels = json.loads(out.read_text())
    assert set(labels) == {"q1", "q2"}
    for start, end in labels.values():
        assert 0.0 <= start <= end <= 1.0
