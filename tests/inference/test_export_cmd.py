"""`vlmkit export RUN --out DIR` (issue 19 item 6) on a run trained by train.py: the exported folder answers as
evaluate.py did with the run and the weights it was built from moved away; DIR is never overwritten by accident
and never left half-written."""
import json
import shutil

import pytest

import vlmkit
from tests.inference.conftest import run_script
from vlmkit.cli import main
from vlmkit.export.layout import MANIFEST

STAGE2 = """
model: {preset: tiny/pooling, llm: {freeze: true}, init_weights: [{path: RUN1, layout: vlmkit}]}
datasets:
  train: {preset: open_qa, ann_path: DATA/test_open_qa.json, media_root: DATA, train: true}
run: {name: trainer, max_steps: 1, batch_size: 2, loggers: [], output_dir: RUN2,
      scheduler: {name: constant, init_lr: 0.001}}
"""


def video_of(record, data):
    return record["media"] if record["media"].startswith("/") else str(data / record["media"])


def test_export_answers_as_evaluate_did_without_the_run(tiny, tmp_path, capsys):
    _, run, data, records = tiny
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    assert main(["export", str(moved), "--out", str(tmp_path / "exported"), "--max-new-tokens", "32"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "vlmkit"
    shutil.rmtree(moved)
    model = vlmkit.load(str(tmp_path / "exported"), device="cpu")
    assert model.generation["max_new_tokens"] == 32
    ordered = sorted(records.values(), key=lambda r: r["id"])
    assert model.generate([video_of(r, data) for r in ordered], [r["question"] for r in ordered]) == \
        [r["prediction"] for r in ordered]


def test_a_non_empty_folder_needs_overwrite_and_a_failed_export_leaves_it_alone(tiny, tmp_path, capsys):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(tiny[1]), "--out", str(out)]) == 2
    assert "is not empty (keep.txt); pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(tiny[1]), "--out", str(out), "--format", "hf-llava", "--overwrite"]) == 2
    assert "hf-llava" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # the refused export wrote nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # and left no staging folder
    assert main(["export", str(tiny[1]), "--out", str(out), "--overwrite"]) == 0
    assert (out / MANIFEST).is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]


def test_init_weights_of_the_run_are_not_needed(tiny, tmp_path):
    """A stage-2 run built on a stage-1 run (init_weights): both deleted after export, the answers stay."""
    _, run, data, records = tiny
    run1, run2 = tmp_path / "stage1", tmp_path / "stage2"
    shutil.copytree(run, run1)
    config = tmp_path / "stage2.yaml"
    config.write_text(STAGE2.replace("RUN1", str(run1)).replace("RUN2", str(run2)).replace("DATA", str(data)))
    run_script("train", ["--cfg-path", str(config)])
    ordered = sorted(records.values(), key=lambda r: r["id"])
    videos, questions = [video_of(r, data) for r in ordered], [r["question"] for r in ordered]
    expected = vlmkit.load(str(run2), device="cpu").generate(videos, questions)
    assert main(["export", str(run2), "--out", str(tmp_path / "exported")]) == 0
    shutil.rmtree(run1)
    shutil.rmtree(run2)
    with pytest.raises(Exception):  # the run itself no longer builds: its weight source is gone
        vlmkit.load(str(run2), device="cpu")
    assert vlmkit.load(str(tmp_path / "exported"), device="cpu").generate(videos, questions) == expected


def test_the_readme_command_runs_as_written(tiny, monkeypatch):
    import re
    import shlex

    from tests.inference.test_infer_cmd import README

    folder, _, data, records = tiny
    monkeypatch.chdir(folder)
    line = re.search(r"^vlmkit export output/tiny_run.*$", README.read_text(), re.M).group(0)
    argv = shlex.split(line, comments=True)[1:]
    assert main(argv) == 0
    out = folder / argv[argv.index("--out") + 1]
    record = sorted(records.values(), key=lambda r: r["id"])[0]
    assert vlmkit.load(str(out), device="cpu").generate(video_of(record, data), record["question"]) == \
        record["prediction"]


def test_a_missing_run_or_a_folder_without_checkpoints_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere does not exist; give a training run directory" in capsys.readouterr().err
    (tmp_path / "empty_run").mkdir()
    assert main(["export", str(tmp_path / "empty_run"), "--out", str(tmp_path / "out")]) == 2
    assert "error: " in capsys.readouterr().err and not (tmp_path / "out").exists()
