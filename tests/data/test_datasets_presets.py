"""Every shipped dataset preset loads, validates and (with tiny data) builds through YAML."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.dataset_fixtures import conversation, media_dir, tiny_model, write_json  # noqa: F401
from torch.utils.data import IterableDataset

from vlmkit.assemble import build_datasets
from vlmkit.config import CONFIG_ROOT, load_config
from vlmkit.errors import ConfigError

PRESETS = sorted(p.stem for p in (CONFIG_ROOT / "datasets").glob("*.yaml"))


def test_presets_have_no_home_paths_and_required_keys_are_marked():
    assert len(PRESETS) >= 10
    for name in PRESETS:
        text = (CONFIG_ROOT / "datasets" / f"{name}.yaml").read_text()
        assert "~/" not in text and "/home/" not in text and "/root/" not in text, name


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_without_its_paths_fails_validation_naming_the_key(tmp_path, preset):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"model: {{preset: tiny/pooling}}\ndatasets:\n  d: {{preset: {preset}}}\n")
    with pytest.raises(ConfigError, match=r"datasets\.d\.\w+.*missing"):
        load_config(cfg)


def _files(media_dir: Path, tmp: Path) -> dict[str, dict]:
    import json

    import webdataset as wds

    mc = write_json(tmp / "mc.json", [{"id": "m", "video": "good.mp4", "question": "q", "candidates": ["x", "y"],
                                       "answer": "y", "task_type": "t"}])
    (tmp / "json").mkdir()
    write_json(tmp / "json" / "action_antonym.json", [{"video": "good.mp4", "question": "q", "candidates": ["x", "y"],
                                                        "answer": "x"}])
    (tmp / "video" / "ssv2_video").mkdir(parents=True)
    (tmp / "video" / "ssv2_video" / "good.mp4").write_bytes((media_dir / "good.mp4").read_bytes())
    with wds.TarWriter(str(tmp / "s-000.tar")) as sink:
        sink.write({"__key__": "k", "mp4": (media_dir / "good.mp4").read_bytes(),
                    "json": json.dumps({"caption": "c"}).encode()})
    for folder in ("4_count", "9_summary"):
        (tmp / "mlvu" / folder).mkdir(parents=True)
        (tmp / "mlvu" / folder / "good.mp4").write_bytes((media_dir / "good.mp4").read_bytes())
    write_json(tmp / "mlvu" / "4_count.json", [{"video": "good.mp4", "question": "q", "candidates": ["1", "2"],
                                                "answer": "2"}])
    write_json(tmp / "mlvu" / "9_summary.json", [{"video": "good.mp4", "question": "q", "answer": "a"}])
    root = {"media_root": str(media_dir)}
    qa = write_json(tmp / "q.json", [{"video_name": "good", "question_id": "1", "question": "q"}])
    return {
        "llava_instruct": {"ann_path": write_json(tmp / "l.json", [{"video": "good.mp4",
                                                                    "conversations": conversation("q", "a")}]), **root},
        "videochat2_instruct": {"ann_path": write_json(tmp / "v.json", [{"video": "good.mp4",
                                                                         "QA": [{"i": "", "q": "q", "a": "a"}]}]), **root},
        "webvid_shards": {"shards": "s-000.tar", "root": str(tmp)},
        "cc3m_shards": {"shards": "s-000.tar", "root": str(tmp)},
        "activitynet_qa": {"ann_path": qa, "answers_path": write_json(tmp / "a.json", [{"answer": "a", "type": 0,
                                                                                         "question_id": "1"}]),
                           "video_template": "{video}", **root},
        "msvd_qa": {"ann_path": write_json(tmp / "msvd.json", [{"question": "q", "answer": "a", "video_id": "good",
                                                                 "id": 0}]), **root},
        "msrvtt_qa": {"ann_path": write_json(tmp / "msrvtt.json", [{"question": "q", "answer": "a", "video_id": "good",
                                                                     "id": 0, "category_id": 1}]),
                      "video_template": "{video}", **root},
        "tgif_qa": {"ann_path": write_json(tmp / "tgif.json", [{"question": "q", "answer": "a", "gif_name": "good"}]),
                    **root},
        "open_qa": {"ann_path": write_json(tmp / "o.json", [{"id": "o", "video": "good.mp4", "question": "q",
                                                              "answer": "a"}]), **root},
        "multiple_choice": {"ann_path": mc, **root},
        "mvbench": {"ann_root": str(tmp / "json"), "media_root": str(tmp / "video"), "tasks": ["action_antonym"]},
        "video_captions": {"ann_path": write_json(tmp / "c.json", [{"id": "c", "video": "good.mp4",
                                                                     "captions": ["x"]}]), **root},
        "gebc": {"ann_path": write_json(tmp / "g.json", {"good": [{"boundary_id": "good_0", "timestamp": 1.0,
                                                                   "subject": "s", "status_before": "b",
                                                                   "status_after": "a"}]}), **root},
        "vcgbench": {"generic_path": write_json(tmp / "vcg.json", [{"Q": "q", "A": "a", "video_name": "good"}]),
                     **root},
        "mlvu": {"ann_root": str(tmp / "mlvu"), "media_root": str(tmp / "mlvu"), "tasks": ["count"]},
        "mlvu_generation": {"ann_root": str(tmp / "mlvu"), "media_root": str(tmp / "mlvu"), "tasks": ["summary"]},
        "videomme": {"ann_path": write_json(tmp / "vmme.json", [{
            "video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Astronomy",
            "videoID": "good", "question_id": "001-1", "task_type": "Counting Problem", "question": "q",
            "options": ["A. x", "B. y", "C. z", "D. w"], "answer": "B"}]), **root},
        "egoschema": {"ann_path": write_json(tmp / "ego_q.json", [{"q_uid": "good", "question": "q",
                                                                   **{f"option {k}": f"o{k}" for k in range(5)}}]),
                      "answers_path": write_json(tmp / "ego_a.json", {"good": 2}), **root},
        "nextqa": {"ann_path": _nextqa_csv(tmp / "nextqa.csv"), **root},
    }


def _nextqa_csv(path: Path) -> str:
    path.write_text("video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"
                    "good,8,64,48,what happens,1,0,CW,a,b,c,d,e\n")
    return str(path)


def test_every_preset_builds_and_yields_a_sample(media_dir, tmp_path):
    import yaml

    files = _files(media_dir, tmp_path)
    assert set(files) == set(PRESETS), "add a tiny data case for each new preset"
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"preset": "tiny/pooling"},
                                   "datasets": {name: {"preset": name, **extra} for name, extra in files.items()}}))
    datasets = build_datasets(load_config(cfg), tiny_model())
    for name, dataset in datasets.items():
        sample = next(iter(dataset)) if isinstance(dataset, IterableDataset) else dataset[0]
        assert sample["pixel_values"][0].shape == (4, 3, 32, 32), name
