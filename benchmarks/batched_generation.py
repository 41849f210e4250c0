"""Batched vs one-by-one generation through the evaluation runner, as a speed-up ratio measured in one process.

  python benchmarks/batched_generation.py [--preset tiny/pooling] [--samples 32] [--batch-size 8]
                                          [--max-new-tokens 16] [--device cpu]

Builds the preset with random weights, makes a synthetic evaluation set (questions of varied length, random
pixels; left-padded batches as the batch contract says), runs ``Evaluator.evaluate()`` with batch_size 1 and
then with ``--batch-size`` (a warm-up run first), checks that both wrote the same predictions, and prints a
JSON line with the wall times and ``speedup = time(one by one) / time(batched)``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class SyntheticQA:
    """Evaluation samples following the batch contract: encoded question, pixels per branch, meta."""

    def __init__(self, contract, count: int):
        self.contract = contract
        self.records = [{"id": f"s{i:04d}", "question": "describe what happens in the video" + " now" * (i % 7),
                         "answer": "something"} for i in range(count)]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        import torch

        record = self.records[index]
        encoded = self.contract.encode([{"from": "human", "value": f"<video>\n{record['question']}"}],
                                       num_media=1, add_generation_prompt=True)
        generator = torch.Generator().manual_seed(zlib.crc32(record["id"].encode()))
        pixels = [torch.rand(self.contract.num_frames, 3, prep.size, prep.size, generator=generator)
                  for prep in self.contract.preprocessing]
        return {"input_ids": encoded.input_ids, "pixel_values": pixels, "meta": dict(record)}

    def collater(self, samples: list[dict]) -> dict:
        import torch

        from vlmkit.models.prompting import pad_sequences

        ids = [s["input_ids"] for s in samples]
        branches = len(samples[0]["pixel_values"])
        return {"input_ids": pad_sequences(ids, self.contract.pad_token_id, "left"),
                "attention_mask": pad_sequences([[1] * len(i) for i in ids], 0, "left"),
                "pixel_values": [torch.stack([s["pixel_values"][b] for s in samples]) for b in range(branches)],
                "meta": [s["meta"] for s in samples]}


def run(model, cfg, dataset, out: Path, batch_size: int, max_new_tokens: int, device: str) -> tuple[float, list]:
    from vlmkit.registry import RUNNERS

    runner = RUNNERS.build({"name": "evaluator", "tasks": {"name": "open_qa"}, "batch_size": batch_size,
                            "max_new_tokens": max_new_tokens, "output_dir": str(out), "device": device,
                            "loggers": []}, model=model, datasets={"bench": dataset}, config=cfg)
    start = time.perf_counter()
    runner.evaluate()
    seconds = time.perf_counter() - start
    lines = (out / "predictions" / "bench.jsonl").read_text().splitlines()
    return seconds, [json.loads(line)["prediction"] for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny/pooling")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config, to_dict

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "model.yaml").write_text(f"model: {{preset: {args.preset}}}\n")
        cfg = load_config(tmp / "model.yaml")
        torch.manual_seed(0)
        model = build_model(cfg)
        dataset = SyntheticQA(model.data_contract(), args.samples)
        run(model, to_dict(cfg), SyntheticQA(model.data_contract(), 2), tmp / "warmup", 2, 2, args.device)
        single_s, single = run(model, to_dict(cfg), dataset, tmp / "single", 1, args.max_new_tokens, args.device)
        batched_s, batched = run(model, to_dict(cfg), dataset, tmp / "batched", args.batch_size,
                                 args.max_new_tokens, args.device)
    print(json.dumps({"preset": args.preset, "device": args.device, "samples": args.samples,
                      "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
                      "one_by_one_s": round(single_s, 3), "batched_s": round(batched_s, 3),
                      "speedup": round(single_s / batched_s, 2),
                      "same_predictions": single == batched}))


if __name__ == "__main__":
    main()
