"""The bad-sample list belongs to a run: a fresh start resets it, a resume continues it, samples and failed
reads are counted apart, and ``max_bad_fraction`` stops a run whose data is mostly broken."""
from __future__ import annotations

import json

import pytest

from tests.runners.test_skipped_batches import build
from tests.runners.toy_skipping import SkippingTokens
from vlmkit.data.datasets.base import TooManyBadSamples

TEN_BAD = tuple(range(0, 20, 2))


def listed(out):
    return json.loads((out / "train" / "bad_samples.json").read_text())["skipping_tokens"]


def test_a_second_fresh_run_reports_its_own_bad_samples(tmp_path):
    for _ in range(2):  # same output directory, no resume
        runner, _ = build(tmp_path, SkippingTokens(20, bad=TEN_BAD), max_steps=10)  # one pass
        assert runner.train()["bad_samples"] == {"train": 10}
    assert listed(tmp_path)["count"] == 10 and listed(tmp_path)["files"] == 10 and listed(tmp_path)["events"] == 10


def test_a_resume_continues_the_list(tmp_path):
    runner, _ = build(tmp_path, SkippingTokens(8, bad=(1, 5)), max_steps=2, save_every=2)
    assert runner.train()["bad_samples"] == {"train": 1}  # read 0-3
    runner, _ = build(tmp_path, SkippingTokens(8, bad=(1, 5)), max_steps=4, resume_from="auto")
    assert runner.train()["bad_samples"] == {"train": 2}  # read 4-7, and sample 1 of the first part is kept
    assert {s["id"] for s in listed(tmp_path)["samples"]} == {"1", "5"}


def test_max_bad_fraction_stops_a_mostly_broken_run_with_the_list(tmp_path):
    runner, _ = build(tmp_path, SkippingTokens(8, bad=(0, 1, 2, 4, 5, 6)), max_steps=4, max_bad_fraction=0.5)
    # judged once the process has read the dataset's size: at the 9th read (sample 0 of the second pass)
    with pytest.raises(TooManyBadSamples, match=r"7 of 9 samples read were bad \(77.8%\), over max_bad_fraction "
                                                r"0.5; .*\n  0: chosen to be bad\n  1: chosen to be bad"):
        runner.train()
    runner, _ = build(tmp_path, SkippingTokens(8, bad=(0, 1, 2, 4, 5, 6)), max_steps=4, max_bad_fraction=0.9)
    assert runner.train()["bad_samples"] == {"train": 6}
