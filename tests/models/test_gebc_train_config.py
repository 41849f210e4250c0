"""The shipped LLMVA-GEBC train config, with the tiny model and tiny data in place of the 13B model and
Kinetics-GEBC: it starts the video Q-Former from a Video-LLaMA checkpoint and trains on GEBC features."""
from __future__ import annotations

from pathlib import Path

import torch

from tests.models.tiny_published_checkpoints import video_llama_checkpoint
from vlmkit.assemble import assemble, build_model
from vlmkit.config import load_config
from vlmkit.demo.tiny_eval_data import write_gebc

CONFIG = Path(__file__).resolve().parents[2] / "train_configs" / "llmva_gebc" / "opt13b_kinetics_gebc.yaml"


def test_gebc_train_config_starts_from_video_llama_and_trains(tmp_path):
    data = write_gebc(tmp_path / "data", videos=2, boundaries=2, frames=6, seed=1)
    checkpoint = tmp_path / "pretrain-tiny.pth"
    torch.save(video_llama_checkpoint(), checkpoint)
    features = [f"datasets.train.features.{k}={data / 'features' / k}"
                for k in ("q_former_tokens", "intern_video", "omni", "clip")]
    cfg = load_config(CONFIG, ["model.preset=gebc/tiny", f"model.init_weights.0.path={checkpoint}",
                               f"datasets.train.ann_path={data / 'annotations.json'}",
                               f"datasets.train.video_info_path={data / 'video_info.json'}", *features,
                               "~run.max_epochs", "run.max_steps=2", "run.batch_size=2", "run.precision=fp32",
                               "run.num_workers=0",
                               f"run.output_dir={tmp_path / 'run'}"], purpose="train")
    model = build_model(cfg)
    assert torch.equal(model.branches[0].stages[0].query_tokens, torch.load(checkpoint)["video_query_tokens"])
    experiment = assemble(cfg, section="run")
    experiment.runner.train()
    assert any((tmp_path / "run").rglob("*.safetensors"))
