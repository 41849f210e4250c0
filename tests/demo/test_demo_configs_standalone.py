"""The demo's stages are ordinary configs (README): after the demo has written its data, train.py and
evaluate.py run each of them as shipped, from the repository's working directory layout (output/demo/...)."""
import json
import math
import subprocess
import sys

import pytest

from vlmkit.config import load_config
from vlmkit.data.datasets.webdataset_captions import expand_shards
from vlmkit.demo.synthetic import SyntheticVideoGenerator, ensure_synthetic_dataset
from vlmkit.demo.pipeline import EVAL, GENERATOR, REPO, SIZES, STAGE1, STAGE2


def test_stage1_config_asks_for_exactly_the_shards_make_demo_writes():
    shards = load_config(str(STAGE1), [], purpose="train").datasets.train.shards
    count = math.ceil(SIZES["full"].train_videos / SyntheticVideoGenerator(**GENERATOR).shard_size)
    assert expand_shards(shards) == [f"shards/train-{i:06d}.tar" for i in range(count)]


def run_entry(cwd, script, config, *overrides):
    done = subprocess.run([sys.executable, str(REPO / script), "--cfg-path", str(config), *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} {config.name}:\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_each_demo_config_runs_standalone_on_the_demos_data(tmp_path):
    """A few steps each (run.max_steps=2), on the demo's data step at the quick size's training set (2 shards,
    so the shard pattern is overridden as the manifest gives it) and a few test videos."""
    manifest = ensure_synthetic_dataset(tmp_path / "output" / "demo" / "data", train=SIZES["quick"].train_videos,
                                        test=4, seed=0, workers=2, **GENERATOR)
    cheap = ["run.max_steps=2", "run.batch_size=4", "run.num_workers=0"]
    run_entry(tmp_path, "train.py", STAGE1, *cheap, f"datasets.train.shards={manifest['shard_pattern']}")
    run_entry(tmp_path, "train.py", STAGE2, *cheap, "model.init_weights=[{path: output/demo/stage1}]")
    # predictions the demo (or an earlier stage 2) left there are another run's: redone, not refused or reported
    earlier = tmp_path / "output" / "demo" / "eval" / "predictions" / "mc"
    earlier.mkdir(parents=True)
    (earlier / "rank000.jsonl").write_text(json.dumps({"id": "test_000000-mc0", "prediction": "(A)",
                                                       "fingerprint": "0" * 64}) + "\n")
    run_entry(tmp_path, "evaluate.py", EVAL, "evaluation.num_workers=0")
    results = json.loads((tmp_path / "output" / "demo" / "eval" / "results.json").read_text())
    assert set(results["datasets"]) == {"mc", "mc_generated", "open_qa", "captions"}
    assert all(entry["num_predictions"] == entry["dataset_size"] > 0 for entry in results["datasets"].values())
    assert "stage2" in results["checkpoint"]
    mc = results["datasets"]["mc"]
    assert {json.loads(line)["fingerprint"] for line in open(tmp_path / mc["predictions"])} == {mc["fingerprint"]["digest"]}
