"""Helpers of the task / evaluator tests: a tiny real VideoLLM and a tiny dataset following the batch contract."""
from __future__ import annotations

import zlib

import torch
from torch.utils.data import Dataset

from vlmkit.assemble import build_model
from vlmkit.config import load_config, to_dict
from vlmkit.mc_format import format_question
from vlmkit.models.prompting import pad_sequences

COLOURS = ["red", "green", "blue", "yellow"]


def tiny_config(tmp_path, *overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny_model.yaml"
    path.write_text("model: {preset: tiny/pooling}\n")
    return load_config(path, list(overrides))


def tiny_model(tmp_path, *overrides):
    cfg = tiny_config(tmp_path, *overrides)
    torch.manual_seed(0)
    return build_model(cfg), to_dict(cfg)


def mc_records(n: int, task_types=("colour", "shape")) -> list[dict]:
    """Questions of different lengths (so batches really pad) with four options each."""
    return [{"id": f"q{i:03d}", "question": "what colour is the shape" + " please" * (i % 3),
             "options": COLOURS, "answer": COLOURS[i % 4], "task_type": task_types[i % len(task_types)]}
            for i in range(n)]


class TinyVideoQA(Dataset):
    """Evaluation samples: the question (with "(A) ..." options when there are some) encoded with the
    generation prompt, deterministic pixels per sample id, the record as meta; ``collater`` left-pads."""

    def __init__(self, contract, records: list[dict]):
        self.contract = contract
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        text = record["question"]
        if record.get("options"):
            text = format_question(text, record["options"])
        encoded = self.contract.encode([{"from": "human", "value": f"<video>\n{text}"}], num_media=1,
                                       add_generation_prompt=True)
        size = self.contract.preprocessing[0].size
        generator = torch.Generator().manual_seed(zlib.crc32(record["id"].encode()))
        pixels = torch.rand(self.contract.num_frames, 3, size, size, generator=generator)
        return {"input_ids": encoded.input_ids, "pixel_values": [pixels], "meta": dict(record)}

    def collater(self, samples: list[dict]) -> dict:
        ids = [s["input_ids"] for s in samples]
        return {"input_ids": pad_sequences(ids, self.contract.pad_token_id, "left"),
                "attention_mask": pad_sequences([[1] * len(i) for i in ids], 0, "left"),
                "pixel_values": [torch.stack([s["pixel_values"][0] for s in samples])],
                "meta": [s["meta"] for s in samples]}


class TinyVideoQAWithIds(TinyVideoQA):
    """The same, announcing sample ids up front so the evaluator can skip finished samples without loading."""

    def sample_id(self, index: int) -> str:
        return self.records[index]["id"]


class CountingGenerate:
    """Wraps ``model.generate`` and counts calls and rows."""

    def __init__(self, model):
        self.original = model.generate
        self.calls = 0
        self.rows = 0
        model.generate = self

    def __call__(self, input_ids, *args, **kwargs):
        self.calls += 1
        self.rows += input_ids.shape[0]
        return self.original(input_ids, *args, **kwargs)
