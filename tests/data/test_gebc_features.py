"""GEBC's feature mode: precomputed features and reference points instead of pixels, for the gebc/* models."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.demo.tiny_eval_data import write_gebc
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS

KEYS = ("q_former_tokens", "intern_video", "omni", "clip")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("gebc_model") / "exp.yaml"
    path.write_text("model: {preset: gebc/tiny}\n")
    torch.manual_seed(0)
    return build_model(load_config(path)).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 6 frames per video, where the model samples 4: the dataset must fit them
    return write_gebc(tmp_path_factory.mktemp("gebc_data"), videos=2, boundaries=2, frames=6, seed=1)


def build(model, data, **overrides):
    cfg = {"name": "gebc", "ann_path": str(data / "annotations.json"), "video_info_path": str(data / "video_info.json"),
           "features": {k: str(data / "features" / k) for k in KEYS}, "train": False, **overrides}
    return DATASETS.build(cfg, contract=model.data_contract())


def test_feature_batches_feed_the_gebc_model(model, data):
    ds = build(model, data)
    assert len(ds) == 2 * 2 * 3
    batch = ds.collater([ds[i] for i in range(4)])
    assert batch["pixel_values"] == []
    assert batch["q_former_tokens"].shape == (4, 4, 4, 32)  # fitted from 6 to the model's 4 frames
    assert batch["intern_video"].shape[0] == 4  # one video: equal lengths stack
    mixed = ds.collater([ds[0], ds[6]])  # two videos: sequences of their own lengths stay a list
    lengths = [np.load(data / "features" / "omni" / f"{m['video_name']}.npy").shape[0] for m in mixed["meta"]]
    if lengths[0] != lengths[1]:
        assert [t.shape for t in mixed["omni"]] == [(n, 16) for n in lengths]
    else:
        assert mixed["omni"].shape == (2, lengths[0], 16)
    annotations = json.loads((data / "annotations.json").read_text())
    first = annotations[batch["meta"][0]["video_name"]][0]
    expected = [first["timestamp"] / 10.0, (first["next_timestamp"] - first["prev_timestamp"]) / 10.0]
    assert batch["reference_points"][0].tolist() == pytest.approx(expected)
    assert (batch["input_ids"][:, -1] != model.data_contract().pad_token_id).all()  # left-padded for generation
    captions = model.generate(batch["input_ids"], batch["attention_mask"], batch["pixel_values"],
                              **{k: batch[k] for k in model.batch_keys}, max_new_tokens=2)
    assert len(captions) == 4


def test_upstream_prompt_with_the_boundary_label(model, data):
    ds = build(model, data, prompts={"subject": "This video describes the {label}.The subject is"})
    question = ds[0]["meta"]["question"]
    assert question.startswith("This video describes the change of") and question.endswith(".The subject is")


def test_feature_mode_errors_name_what_is_missing(model, data, tmp_path):
    with pytest.raises(ConfigError, match=r"reads batch entries \['omni'\]"):
        build(model, data, features={k: str(data / "features" / k) for k in KEYS if k != "omni"})
    with pytest.raises(ConfigError, match="video_info_path"):
        build(model, data, video_info_path=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    ds = build(model, data, features={**{k: str(data / "features" / k) for k in KEYS}, "clip": str(empty)})
    with pytest.raises(DataError, match=r"empty/gebcvid0000\{\.npy,\.pkl\}: feature file not found"):
        ds[0]
    np.save(empty / "gebcvid0000.npy", np.zeros((0, 8), np.float32))
    with pytest.raises(DataError, match="expected a \\(T, \\[N,\\] D\\) feature array"):
        ds[0]


class _WritesMarker:
    """Unpickling this calls open(marker, 'w'): the code execution a feature file must never get."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_pkl_feature_runs_no_code(model, data, tmp_path):
    import pickle

    from vlmkit.tools.pkl_to_npy import main as convert

    crafted = tmp_path / "crafted"
    crafted.mkdir()
    marker = tmp_path / "pwned"
    (crafted / "gebcvid0000.pkl").write_bytes(pickle.dumps(_WritesMarker(marker)))
    ds = build(model, data, on_bad_sample="resample",  # a refusal is a setting error, never a skippable sample
               features={**{k: str(data / "features" / k) for k in KEYS}, "clip": str(crafted)})
    with pytest.raises(ConfigError, match=r"allow_pickle: .*gebcvid0000\.pkl: a pickled feature file can run "
                                          r"arbitrary code.*vlmkit\.tools\.pkl_to_npy"):
        ds[0]
    assert convert([str(crafted)]) == 1  # the converter's unpickler rebuilds numpy arrays only
    assert not marker.exists()


def test_pkl_features_convert_to_npy_or_load_when_trusted(model, data, tmp_path):
    import pickle

    from vlmkit.cli import main as cli

    folder = tmp_path / "clip_pkl"
    folder.mkdir()
    for npy in (data / "features" / "clip").glob("*.npy"):
        (folder / f"{npy.stem}.pkl").write_bytes(pickle.dumps(np.load(npy)))
    features = {**{k: str(data / "features" / k) for k in KEYS}, "clip": str(folder)}
    expected = build(model, data)[0]["features"]["clip"]
    assert torch.equal(build(model, data, features=features, allow_pickle=True)[0]["features"]["clip"], expected)
    assert cli(["convert-features", str(folder)]) == 0
    assert torch.equal(build(model, data, features=features)[0]["features"]["clip"], expected)  # .npy wins now
