"""vlmkit's own components have the members of their role in vlmkit/protocols.py (what the composite, the runner
and the mixtures read without probing), and the registry of tasks holds only Tasks."""
from __future__ import annotations

import pytest

from tests.models.recipe_helpers import build_preset
from vlmkit import protocols
from vlmkit.data.datasets.base import VideoTextDataset
from vlmkit.data.datasets.webdataset_captions import WebDatasetCaptions
from vlmkit.data.mixing import MixedDataset, MixedStream
from vlmkit.registry import TASKS


def test_a_built_model_and_its_parts_have_their_roles_members(tmp_path):
    model = build_preset(tmp_path, "tiny/pooling")
    assert isinstance(model, protocols.VideoModel) and isinstance(model.llm, protocols.LanguageModel)
    for branch in model.branches:
        assert isinstance(branch.encoder, protocols.VisualEncoder)
        assert all(isinstance(stage, protocols.VisualStage) for stage in branch.stages)
    assert protocols.is_encoder_decoder(model) is False
    assert protocols.missing_members(model.llm, protocols.LLM_MEMBERS) == []


@pytest.mark.parametrize("cls,roles", [
    (VideoTextDataset, [protocols.ReportsBadSamples, protocols.Collates, protocols.HasTextLengths]),
    (MixedDataset, [protocols.ReportsBadSamples, protocols.Collates]),
    (MixedStream, [protocols.ReportsBadSamples, protocols.Collates, protocols.Resumable]),
    (WebDatasetCaptions, [protocols.ReportsBadSamples, protocols.Collates, protocols.Resumable,
                          protocols.TracksConsumed]),
])
def test_datasets_offer_the_hooks_the_runner_calls(cls, roles):
    for role in roles:
        assert issubclass(cls, role), f"{cls.__name__} lacks a member of {role.__name__}"


def test_every_registered_task_is_a_task():
    for entry in TASKS.entries():
        assert issubclass(TASKS.get(entry.name), protocols.Task), entry.name


def test_the_needle_task_takes_only_a_metric_that_scores_each_sample():
    from vlmkit.errors import DataError

    assert isinstance(TASKS.build({"name": "needle"}).correctness, protocols.ScoresSamples)  # mc_accuracy
    with pytest.raises(DataError, match="needle.correctness must be a metric with a per-sample verdict"):
        TASKS.build({"name": "needle", "correctness": "niah_grid"})
