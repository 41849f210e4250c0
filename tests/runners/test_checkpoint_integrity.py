"""Checkpoint integrity: every file is hashed in the manifest and verified before a resume or an evaluation;
damage is reported naming the file, and ``resume_from: auto`` falls back to the newest intact checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from tests.runners.test_resume import build
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners.distributed import DistEnv


def save_steps(root, steps=(1, 2)):
    writer = ckpt.CheckpointWriter(root, DistEnv(rank=0, world_size=1, local_rank=0), keep_last=None)
    for step in steps:
        writer.save(ckpt.step_dir_name(step), tensors={"w": torch.full((64, 64), float(step))},
                    trainer_state={"progress": {"global_step": step}}, rng_state={"seed": step}, manifest_extra={})
    return writer


def flip_bytes(path, offset, count=1024):
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "bit-flipped": (ckpt.WEIGHTS, lambda p: flip_bytes(p, 200), "sha256 differs from the manifest's"),
    "truncated": (ckpt.WEIGHTS, truncate, r"\d+ bytes, the manifest says \d+ \(truncated"),
    "missing": (ckpt.TRAINER_STATE, lambda p: p.unlink(), "missing"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_named_and_auto_takes_the_previous_intact_checkpoint(tmp_path, kind):
    name, damage, message = DAMAGE[kind]
    save_steps(tmp_path)
    damaged = tmp_path / "step_00000002" / name
    damage(damaged)
    with pytest.raises(ckpt.CheckpointError, match=f"{damaged}: {message}"):
        ckpt.resolve("latest", tmp_path)
    with pytest.raises(ckpt.CheckpointError, match=str(damaged)):
        ckpt.resolve(str(tmp_path / "step_00000002"), tmp_path)  # an explicit path is verified too
    with pytest.warns(ckpt.CheckpointSkippedWarning, match=f"(?s)resumes from {tmp_path}/step_00000001.*skipped.*{damaged}: {message}"):
        assert ckpt.resolve("auto", tmp_path) == tmp_path / "step_00000001"


def test_load_errors_name_the_file(tmp_path):
    """Without the hash check (a version-1 manifest), readers still name the file and the fault."""
    save_steps(tmp_path, steps=(1,))
    step = tmp_path / "step_00000001"
    truncate(step / ckpt.WEIGHTS)
    with pytest.raises(ckpt.CheckpointError, match=f"{step / ckpt.WEIGHTS}: not a readable safetensors file"):
        ckpt.load_tensors(step)
    truncate(step / ckpt.TRAINER_STATE)
    with pytest.raises(ckpt.CheckpointError, match=f"{step / ckpt.TRAINER_STATE}: cannot be read by torch.load"):
        ckpt.load_trainer_state(step)
    (step / "rng_rank0.pt").write_bytes(b"")
    with pytest.raises(ckpt.CheckpointError, match="rng_rank0.pt: cannot be read by torch.load"):
        ckpt.load_rng_state(step, 0)
    (step / ckpt.MANIFEST).write_text('{"format": "vlmkit-checkpoint", "tens')
    with pytest.raises(ckpt.CheckpointError, match=f"{step / ckpt.MANIFEST}: cannot be read as JSON"):
        ckpt.read_manifest(step)


@pytest.mark.parametrize("content, message", [("", "is empty; it should hold a checkpoint directory name"),
                                              ("step_000\x00\x07", "names 'step_000.*not a directory in")])
def test_a_bad_latest_pointer_is_described_and_auto_scans_the_steps(tmp_path, content, message):
    save_steps(tmp_path)
    (tmp_path / ckpt.LATEST).write_text(content)
    with pytest.raises(ckpt.CheckpointError, match=f"{tmp_path / ckpt.LATEST} {message}"):
        ckpt.resolve("latest", tmp_path)
    with pytest.warns(ckpt.CheckpointSkippedWarning, match="latest"):
        assert ckpt.resolve("auto", tmp_path) == tmp_path / "step_00000002"


def test_auto_refuses_to_start_fresh_over_damaged_checkpoints(tmp_path):
    save_steps(tmp_path, steps=(1,))
    flip_bytes(tmp_path / "step_00000001" / ckpt.WEIGHTS, 100)
    with pytest.raises(ckpt.CheckpointError, match="none is intact"):
        ckpt.resolve("auto", tmp_path)


def test_leftovers_of_interrupted_saves_are_cleared_at_start(tmp_path):
    save_steps(tmp_path)
    (tmp_path / ".tmp-step_00000003-0badf00d").mkdir()
    # a crash mid re-save of step 2: the old copy was moved aside and the new one was published
    (tmp_path / ".old-step_00000002-12345678").mkdir()
    # ... and a crash mid re-save of step 1 before the new one was published: the old copy is the only one
    (tmp_path / "step_00000001").rename(tmp_path / ".old-step_00000001-87654321")
    save_steps(tmp_path, steps=())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000001", "step_00000002"]
    ckpt.verify_files(tmp_path / "step_00000001")


def test_trainer_resumes_from_the_previous_intact_checkpoint(tmp_path):
    runner, _ = build(tmp_path, "run", max_steps=3, save_every=1)
    runner.train()
    root = tmp_path / "run" / "checkpoints"
    manifest = json.loads((root / "step_00000003" / ckpt.MANIFEST).read_text())
    assert set(manifest["files"]) == {ckpt.WEIGHTS, ckpt.TRAINER_STATE, "rng_rank0.pt"}
    flip_bytes(root / "step_00000003" / ckpt.WEIGHTS, 300)
    resumed, _ = build(tmp_path, "run", max_steps=3, save_every=1, resume_from="auto")
    with pytest.warns(ckpt.CheckpointSkippedWarning, match="(?s)step_00000003.*sha256 differs"):
        summary = resumed.train()
    assert summary["losses"] and len(summary["losses"]) == 1  # resumed at step 2, trained step 3 again
