import csv
import textwrap

import pytest

from tests.toy_video_data import ToyColourVideos
from vlmkit.cli import main as cli_main
from vlmkit.registry import DATASETS
from vlmkit.sweep import parse_axis


@pytest.fixture
def toy_data(isolated):
    DATASETS.add("toy_colour_videos", ToyColourVideos)


def write_cfg(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(textwrap.dedent("""
        model: {preset: tiny/pooling}
        datasets:
          train: {name: toy_colour_videos, size: 4}
        run:
          name: trainer
          max_steps: 2
          batch_size: 2
          strategy: single
          loggers: [jsonl]
          scheduler: {name: constant, init_lr: 0.001}
    """))
    return path


def read_rows(out):
    with (out / "sweep.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_sweep_trains_each_point_and_tabulates(toy_data, tmp_path):
    out = tmp_path / "sweep"
    code = cli_main(["sweep", "--cfg-path", str(write_cfg(tmp_path)), "--out", str(out),
                     "--grid", "model.branches.0.stages.0.depth=1,2"])
    assert code == 0
    rows = read_rows(out)
    assert [r["depth"] for r in rows] == ["1", "2"]
    assert all(r["visual_tokens"] == "16" and float(r["final_train_loss"]) > 0 for r in rows)
    assert int(rows[1]["trainable_params"]) > int(rows[0]["trainable_params"])  # a deeper projector
    assert "| depth |" in (out / "sweep.md").read_text()
    assert (out / "depth-1" / "checkpoints").is_dir()


def test_build_only_meta_counts_tokens_for_pool_levels(toy_data, tmp_path):
    out = tmp_path / "levels"
    cfg = write_cfg(tmp_path)
    code = cli_main(["sweep", "--cfg-path", str(cfg), "--out", str(out), "--build-only", "--meta",
                     "model.branches.0.stages.1={name: adaptive_avg_2d, pool_level: 1}",
                     "--grid", "model.branches.0.stages.1.pool_level=1,2,4"])
    assert code == 0
    rows = read_rows(out)
    # 4 frames of a 4x4 grid: side 4 -> 4, 2, 1
    assert [(r["pool_level"], r["visual_tokens"]) for r in rows] == [("1", "64"), ("2", "16"), ("4", "4")]


def test_axis_parsing_errors():
    axis = parse_axis("a.b,c.d=1,2")
    assert axis.keys == ["a.b", "c.d"] and axis.values == ["1", "2"] and axis.label == "b"
    from vlmkit.errors import ConfigError
    with pytest.raises(ConfigError, match="KEY"):
        parse_axis("novalue")
