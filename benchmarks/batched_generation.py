"""Batched vs one-by-one generation through the evaluation runner, as a speed-up ratio measured in one process.

  python benchmarks/batched_generation.py [--preset tiny/pooling] [--samples 32] [--batch-size 8]
                                          [--max-new-tokens 16] [--device cpu] [--rounds 3] [--threads N]

Builds the preset with random weights, makes a synthetic evaluation set (questions of varied length, random
pixels; left-padded batches as the batch contract says) and runs ``Evaluator.evaluate()`` with batch_size 1 and
with ``--batch-size`` (each run in a fresh output folder, so nothing is resumed), interleaved over rounds by
``benchmarks/harness.py``; it refuses to time them unless both write the same predictions.  Prints a JSON line
with median wall and CPU times and ``speedup = time(one by one) / time(batched)``.

Threads: torch's default for the machine unless ``--threads`` pins a count (the JSON line says which and how many).
OpenMP's wait policy is set as the ``vlmkit`` commands set it (``OMP_WAIT_POLICY=PASSIVE`` unless already set,
``vlmkit/openmp_env.py``); run with ``OMP_WAIT_POLICY=ACTIVE`` in the environment to see libgomp's spinning default.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import itertools
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from vlmkit.openmp_env import quiet_openmp_workers  # noqa: E402

quiet_openmp_workers()  # before torch loads, as `vlmkit eval` / evaluate.py do


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


def run(model, cfg, dataset, out: Path, batch_size: int, max_new_tokens: int, device: str) -> dict[str, str]:
    """Predictions by sample id (the order rows are written in may differ between batch sizes)."""
    from vlmkit.registry import RUNNERS

    runner = RUNNERS.build({"name": "evaluator", "tasks": {"name": "open_qa"}, "batch_size": batch_size,
                            "max_new_tokens": max_new_tokens, "output_dir": str(out), "device": device,
                            "num_workers": 0, "loggers": []}, model=model, datasets={"bench": dataset}, config=cfg)
    runner.evaluate()
    rows = [json.loads(line) for line in (out / "predictions" / "bench.jsonl").read_text().splitlines()]
    return {row["id"]: row["prediction"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny/pooling")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="pin torch's intra-op threads (default: torch's own choice for this machine)")
    args = parser.parse_args()

    import torch
    from harness import compare, pin_threads

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config, to_dict

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "model.yaml").write_text(f"model: {{preset: {args.preset}}}\n")
        cfg = load_config(tmp / "model.yaml")
        if args.threads is not None:
            pin_threads(args.threads)
        threads = torch.get_num_threads()
        torch.manual_seed(0)
        model = build_model(cfg)
        dataset = SyntheticQA(model.data_contract(), args.samples)
        folders = (tmp / f"run{i}" for i in itertools.count())

        def side(batch_size: int):
            return lambda: run(model, to_dict(cfg), dataset, next(folders), batch_size, args.max_new_tokens,
                               args.device)

        result = compare({"one_by_one": side(1), "batched": side(args.batch_size)}, args.rounds)
    print(json.dumps({"preset": args.preset, "device": args.device, "samples": args.samples,
                      "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "threads": threads,
                      "threads_pinned": args.threads is not None,
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "speedup": round(1 / result["batched"]["wall_ratio"], 2),
                      "speedup_cpu": round(1 / result["batched"]["cpu_ratio"], 2), "same_predictions": True,
                      **result}))


if __name__ == "__main__":
    main()
