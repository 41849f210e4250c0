"""``validate_data`` finds each planted fault and reports it in a table."""
from __future__ import annotations

import json

from tests.data.dataset_fixtures import conversation, media_dir, tiny_model, write_json  # noqa: F401
from vlmkit.config import load_config
from vlmkit.data.validate import validate_data


def test_validate_finds_every_planted_fault(media_dir, tmp_path, capsys):
    long_question = " ".join(["word"] * 400)  # over the tiny model's max_length of 256 after expansion
    ann = write_json(tmp_path / "train.json", [
        {"id": "ok", "video": "good.mp4", "conversations": conversation("q", "a")},
        {"id": "gone", "video": "missing.mp4", "conversations": conversation("q", "a")},
        {"id": "broken", "video": "corrupt.mp4", "conversations": conversation("q", "a")},
        {"id": "nothing", "video": "good.mp4", "conversations": [{"from": "human", "value": "q"},
                                                                 {"from": "gpt", "value": "a"}]},
        {"id": "long", "video": "good.mp4", "conversations": conversation(long_question, "a")}])
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(f"model: {{preset: tiny/pooling}}\n"
                        f"datasets:\n  train: {{preset: llava_instruct, ann_path: {ann}, media_root: {media_dir}}}\n")
    report = validate_data(load_config(cfg_path), model=tiny_model())
    kinds = {p["id"]: p["kind"] for p in report.problems}
    assert kinds == {"gone": "missing_file", "broken": "undecodable", "nothing": "placeholder_mismatch",
                     "long": "too_long"}
    row = report.datasets[0]
    assert (row.samples, row.checked, row.bad) == (5, 5, 4)
    table = report.table()
    assert "train" in table and "missing_file" in table and "4 faulty sample(s)" in table
    out = tmp_path / "report.json"
    from vlmkit.cli import main as cli_main

    assert cli_main(["data", "validate", str(cfg_path), "--json", str(out)]) == 1
    assert "placeholder_mismatch" in capsys.readouterr().out
    assert json.loads(out.read_text())["ok"] is False


def test_validate_passes_a_clean_config(media_dir, tmp_path):
    ann = write_json(tmp_path / "t.json", [{"id": "ok", "video": "good.mp4", "conversations": conversation("q", "a")}])
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(f"model: {{preset: tiny/pooling}}\n"
                        f"datasets:\n  train: {{preset: llava_instruct, ann_path: {ann}, media_root: {media_dir}}}\n")
    report = validate_data(load_config(cfg_path), model=tiny_model())
    assert report.ok and report.datasets[0].max_tokens > 16
