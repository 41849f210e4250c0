"""The wandb logger in offline mode: the run file holds every logged step's metrics, as metrics.jsonl does."""
import importlib.util
import json
import struct

import pytest

from tests.runners.toy import ToyTokens, make_model, run_cfg
from vlmkit.registry import RUNNERS

pytestmark = [pytest.mark.slow, pytest.mark.skipif(importlib.util.find_spec("wandb") is None,
                                                      reason="wandb is not installed (pip install 'vlmkit[wandb]')")]


def history(run_file):
    """{step: {key: value}} from an offline .wandb file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, part, rows = run_file.read_bytes(), 7, b"", {}
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                rows.setdefault(items.get("_step", record.history.step.num), {}).update(items)
    return rows


def test_wandb_offline_logs_every_step(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = run_cfg(max_steps=3, clip_grad_norm=1.0, loggers=["jsonl", {"name": "wandb", "project": "test"}])
    RUNNERS.build(cfg, model=make_model(), datasets={"train": ToyTokens(16)}, output_dir=str(tmp_path)).train()
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows = history(run_file)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted(rows) == [r["step"] for r in logged] == [1, 2, 3]
    for record in logged:
        for key in ("loss", "lr", "grad_norm", "samples_per_s"):
            assert rows[record["step"]][key] == pytest.approx(record[key], rel=1e-12), key
