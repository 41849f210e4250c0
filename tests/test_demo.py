"""A short version of the CPU demo (python -m vlmkit.demo --quick): generation, caption pretraining on
webdataset shards, instruction tuning from stage 1's weights, evaluation. It must learn, not just run."""
import json

import pytest

from vlmkit.demo.pipeline import SIZES, run_demo


@pytest.mark.slow
def test_quick_demo_learns(tmp_path):
    results = run_demo(tmp_path / "demo", seed=0, size=SIZES["quick"])
    for stage, loss in results["loss"].items():
        assert loss["last"] < 0.6 * loss["first"], f"{stage}: the loss did not fall enough: {loss}"
    mc = results["multiple_choice"]  # scored by option likelihood; chance is 0.25 for every type (questions.py)
    assert mc["overall"] > 0.4, mc
    assert mc["per_type"]["direction"] > 0.5, mc
    for name in ("results.json", "training_loss.png", "eval/predictions/mc.jsonl"):
        assert (tmp_path / "demo" / name).is_file()
    # the demo trains on multi-turn conversations (vlmkit.demo.pipeline.GENERATOR): four questions about one video each
    conversations = json.loads((tmp_path / "demo" / "data" / "train_conversations.json").read_text())
    assert max(len(c["conversations"]) for c in conversations) == 8
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert saved["multiple_choice"]["overall"] == mc["overall"]
