"""The tiny Video-MME / EgoSchema / NExT-QA fixtures (``vlmkit.demo.tiny_benchmark_data``), written once per
session over two synthetic videos (8 frames at 8 fps, three questions each)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmkit.demo import tiny_benchmark_data as tbd
from vlmkit.demo.tiny_eval_data import generate


@pytest.fixture(scope="session")
def long_video_data(tmp_path_factory) -> Path:
    out = generate(tmp_path_factory.mktemp("long_video"), videos=2, seed=0, parts=("synthetic",))
    mc = json.loads((out / "synthetic" / "test_mc.json").read_text())
    for write in (tbd.write_videomme, tbd.write_egoschema, tbd.write_nextqa):
        write(out, out / "synthetic", mc)
    return out


def predictions(dataset, texts: dict[str, str]) -> list[dict]:
    """Prediction records as the evaluator writes them: the sample's meta, its id and the generated text."""
    return [{**record.meta, "id": record.id, "prediction": texts[record.id]} for record in dataset.items]
