"""``validate_data`` finds each planted fault and reports it in a table."""
from __future__ import annotations

import json

from tests.data.dataset_fixtures import conversation, media_dir, tiny_model, write_json  # noqa: F401
from vlmkit.config import load_config
from vlmkit.data_validate_cmd import validate_data


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


def _spy_on_build(monkeypatch) -> list:
    """The models validate_data builds for itself."""
    from vlmkit import data_validate_cmd as validate

    built, build = [], validate.build_contract_model
    monkeypatch.setattr(validate, "build_contract_model", lambda cfg: built.append(build(cfg)) or built[-1])
    return built


def test_validate_builds_a_full_size_config_without_weights(media_dir, tmp_path, monkeypatch, repo_root):
    """PLLaVA-7B with its weight folders absent: the model is built on the meta device (weights and init_weights
    never read), yet its tokenizer, template and 2304 visual tokens per video give real token counts."""
    monkeypatch.setenv("VLMKIT_WEIGHTS", str(tmp_path / "no-weights-here"))
    ann = write_json(tmp_path / "it.json", [{"video": "good.mp4", "QA": [{"i": "Watch.", "q": "What?", "a": "A test"}]}])
    cfg = load_config(repo_root / "train_configs/pllava/finetune_7b.yaml",
                      [f"datasets.train.ann_path={ann}", f"datasets.train.media_root={media_dir}",
                       "model.llm.tokenizer=local:word"])
    built = _spy_on_build(monkeypatch)
    report = validate_data(cfg)
    assert report.ok, report.problems
    assert 2304 < report.datasets[0].max_tokens < 2304 + 32 and report.max_length == 4096
    (model,) = built
    assert all(p.is_meta for p in model.parameters())


def test_validate_checks_feature_files_of_a_feature_mode_dataset(tmp_path, monkeypatch, repo_root):
    """GEBC over precomputed features (LLMVA-GEBC's OPT-13B recipe, built without weights): no media to find or
    decode; each video's feature files are checked instead, and a missing or unreadable one is named."""
    from vlmkit.demo.tiny_eval_data import write_gebc

    monkeypatch.setenv("VLMKIT_WEIGHTS", str(tmp_path / "no-weights-here"))
    data = write_gebc(tmp_path, videos=3, boundaries=1, frames=6, seed=1)
    (data / "features" / "omni" / "gebcvid0001.npy").unlink()
    (data / "features" / "clip" / "gebcvid0002.npy").write_bytes(b"not an array")
    folders = {"q_former_tokens": "q_former_tokens", "intern_video": "intern_video", "omni": "omni", "clip": "clip"}
    cfg = load_config(repo_root / "train_configs/llmva_gebc/opt13b_kinetics_gebc.yaml",
                      [f"datasets.train.ann_path={data / 'annotations.json'}",
                       f"datasets.train.video_info_path={data / 'video_info.json'}", "model.llm.tokenizer=local:word",
                       *(f"datasets.train.features.{k}={data / 'features' / v}" for k, v in folders.items())])
    report = validate_data(cfg)
    faults = {(p["id"].split("/")[0], p["kind"], p["file"]) for p in report.problems}
    assert faults == {("gebcvid0001_0", "missing_file", str(data / "features" / "omni" / "gebcvid0001")),
                      ("gebcvid0002_0", "undecodable", str(data / "features" / "clip" / "gebcvid0002.npy"))}
    assert all("(features." in p["reason"] for p in report.problems)
    row = report.datasets[0]
    assert (row.checked, row.bad, row.faults["missing_file"], row.faults["undecodable"]) == (9, 6, 3, 3)
    assert row.max_tokens > 32  # the video + other-feature queries expanded

    quick = validate_data(cfg, decode=False)  # presence only: the unreadable file is not opened
    assert {p["kind"] for p in quick.problems} == {"missing_file"}
