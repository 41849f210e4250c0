"""The evaluator skips batches whose samples were all bad, lists the bad samples and reports the counts."""
from __future__ import annotations

import json

from tests.runners.test_evaluator import evaluator, predictions
from tests.tasks.tiny import CountingGenerate, TinyVideoQA, mc_records, tiny_model
from vlmkit.data.datasets.base import BadSampleLog


class SkippingQA(TinyVideoQA):
    """TinyVideoQA where the samples at ``bad`` are skipped (``on_bad_sample: skip``) and listed."""

    def __init__(self, contract, records, bad):
        super().__init__(contract, records)
        self.bad, self.bad_log, self.output_dirs = set(bad), BadSampleLog("skipping_qa"), []

    def __getitem__(self, index):
        if index in self.bad:
            self.bad_log.record(index, self.records[index]["id"], None, "chosen to be bad", "skipped")
            return None
        return super().__getitem__(index)

    def collater(self, samples):
        kept = [s for s in samples if s is not None]
        return super().collater(kept) if kept else None

    def set_output_dir(self, path):
        self.output_dirs.append(path)
        self.bad_log.output_dir = path

    def bad_samples(self):
        return self.bad_log.entries()

    def write_bad_samples(self, output_dir=None):
        return self.bad_log.write_summary(output_dir)

    def reset_bad_samples(self):
        self.bad_log.reset()


def test_batches_without_a_usable_sample_are_skipped_and_counted(tmp_path):
    model, cfg = tiny_model(tmp_path)
    data = {"mc": SkippingQA(model.data_contract(), mc_records(6), bad=(0, 1, 3))}
    counter = CountingGenerate(model)
    results = evaluator(model, cfg, data, tmp_path / "out", batch_size=2).evaluate()
    assert counter.calls == 2  # (0, 1) skipped whole; (2, 3) ran with one row; (4, 5)
    assert [r["id"] for r in predictions(tmp_path / "out")] == ["q002", "q004", "q005"]
    entry = results["datasets"]["mc"]
    assert entry["skipped_batches"] == 1 and entry["bad_samples"] == 3 and entry["num_predictions"] == 3
    assert data["mc"].output_dirs == [str(tmp_path / "out" / "mc")]
    assert (tmp_path / "out" / "mc" / "bad_samples.json").is_file()


def test_a_rerun_reports_its_own_bad_samples(tmp_path):
    """A rerun reads every sample without a prediction again, bad ones included: it lists them once, not twice."""
    model, cfg = tiny_model(tmp_path)
    for _ in range(3):
        data = {"mc": SkippingQA(model.data_contract(), mc_records(6), bad=(0, 1, 3))}
        results = evaluator(model, cfg, data, tmp_path / "out", batch_size=2).evaluate()
        assert results["datasets"]["mc"]["bad_samples"] == 3
        listed = json.loads((tmp_path / "out" / "mc" / "bad_samples.json").read_text())["skipping_qa"]
        assert listed["events"] == 3  # not 6, 9: earlier runs' entries are gone
