"""Tiny PLLaVA and instruction samples whose answers are 1-12 words long, for the token-weighted loss tests.

With equal answer lengths every normalisation of the loss agrees; with varying lengths the mean of micro-batch
means depends on how a step's samples are split into micro-batches and processes, the token-weighted loss not.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from vlmkit.models.prompting import collate_encoded

WORDS = "red green blue black white yellow left right top bottom front back".split()


def build_tiny_pllava(work_dir: Path) -> torch.nn.Module:
    """pllava/tiny with seeded random weights (the same in every process)."""
    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    # one file per process: ranks writing the same file race (a rank read it empty once: "Missing key model")
    path = Path(work_dir) / f"tiny_pllava_{os.getpid()}.yaml"
    path.write_text("model: {preset: pllava/tiny}\n")
    torch.manual_seed(0)
    return build_model(load_config(path, []))


class VaryingAnswers(Dataset):
    """``size`` question/answer samples with answers of 1..12 words in a shuffled order, and fixed pixels."""

    def __init__(self, model: torch.nn.Module, size: int = 12, seed: int = 0):
        contract = model.data_contract()
        generator = torch.Generator().manual_seed(seed)
        lengths = (torch.randperm(size, generator=generator) % 12 + 1).tolist()
        self.pad_token_id = contract.pad_token_id
        self.samples = []
        for i, length in enumerate(lengths):
            answer = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(length))
            conversation = [{"from": "human", "value": "<video>\nwhat happens"}, {"from": "gpt", "value": answer}]
            encoded = contract.encode(conversation, num_media=1, add_generation_prompt=False)
            pixels = [torch.rand(contract.num_frames, 3, prep.size, prep.size, generator=generator)
                      for prep in contract.preprocessing]
            self.samples.append((encoded, pixels))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.samples[index]

    def collater(self, samples: list) -> dict:
        batch = collate_encoded([encoded for encoded, _ in samples], self.pad_token_id, side="right")
        batch["pixel_values"] = [torch.stack([pixels[branch] for _, pixels in samples])
                                 for branch in range(len(samples[0][1]))]
        return batch


def train_layout(out: Path, name: str, **run) -> dict:
    """Train tiny PLLaVA for 3 steps of 4 samples with the given layout; on rank 0 save its trainable weights
    and step losses as ``<out>/<name>.pt``.  Every rank must call it (checkpoint reads are collective)."""
    from vlmkit.registry import RUNNERS

    model = build_tiny_pllava(out)
    cfg = {"name": "trainer", "strategy": "single", "max_steps": 3, "shuffle": False, "loggers": ["jsonl"],
           "log_every": 1, "optimizer": {"name": "adamw", "weight_decay": 0.0},
           "scheduler": {"name": "constant", "init_lr": 1e-2}, **run}
    runner = RUNNERS.build(cfg, model=model, datasets={"train": VaryingAnswers(model)},
                           output_dir=str(out / name))
    summary = runner.train()
    weights = runner.strategy.trainable_state(runner.model)
    if runner.env.is_main:
        torch.save({"weights": weights, "losses": summary["losses"]}, out / f"{name}.pt")
    return summary
