"""What ``run.group_by_length`` saves on the CPU demo's stage-2 conversations: padded tokens and step time, against
the plain shuffled order, in one process.

  python benchmarks/length_grouping.py [--videos 600] [--batch-size 32] [--repeats 2] [--threads 1]

Generates the demo's synthetic conversations (``vlmkit.demo.pipeline.GENERATOR``) in a temporary folder, builds the demo
recipe (``demo/tiny_video_qa``, random weights) and its ``llava_instruct`` dataset, and draws every batch of
epoch 0 both ways (the same samples, only grouped differently). Every batch is decoded once, then timed forward +
backward + AdamW step, alternating plain and grouped batches, ``--repeats`` times. (A small dataset is one
megabatch, so it groups a little better than the demo's 10k conversations.) Prints a JSON line: the padded share
of the token slots each way, per-batch times and ``time_ratio = grouped / plain``.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def padded_share(batches: list[dict]) -> float:
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    slots = sum(b["attention_mask"].numel() for b in batches)
    return 1 - real / slots


def step_seconds(model, optimizer, batch: dict) -> float:
    inputs = {k: v for k, v in batch.items() if k != "meta"}
    start = time.perf_counter()
    model(**inputs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=600, help="training videos to generate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    args = parser.parse_args(argv)

    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config
    from vlmkit.data.datasets.llava_instruct import LlavaInstructDataset
    from vlmkit.demo.synthetic import ensure_synthetic_dataset
    from vlmkit.demo.pipeline import GENERATOR
    from vlmkit.runners.length_grouping import MEGABATCH_BATCHES
    from vlmkit.runners.sampler import ResumableSampler

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vlmkit-length-grouping-"))
    ensure_synthetic_dataset(work / "data", train=args.videos, test=1, seed=0, **GENERATOR)
    (work / "exp.yaml").write_text("model: {preset: demo/tiny_video_qa}\n")
    torch.manual_seed(0)
    model = build_model(load_config(work / "exp.yaml"))
    data = LlavaInstructDataset(str(work / "data" / "train_conversations.json"), str(work / "data"),
                                contract=model.data_contract())
    orders = {}
    for name, grouping in (("plain", {}), ("grouped", {"lengths": data.text_lengths(),
                                                       "group_size": args.batch_size * MEGABATCH_BATCHES})):
        sampler = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True, **grouping)
        sampler.set_position(0, 0)
        order = list(sampler)
        orders[name] = [order[i:i + args.batch_size] for i in range(0, len(order) - args.batch_size + 1,
                                                                    args.batch_size)]
    batches = {name: [data.collater([data[i] for i in chunk]) for chunk in chunks] for name, chunks in orders.items()}

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    step_seconds(model, optimizer, batches["plain"][0])  # warm-up
    times: dict[str, list[float]] = {"plain": [], "grouped": []}
    for _ in range(args.repeats):
        for plain, grouped in zip(batches["plain"], batches["grouped"]):
            times["plain"].append(step_seconds(model, optimizer, plain))
            times["grouped"].append(step_seconds(model, optimizer, grouped))
    plain_s, grouped_s = statistics.mean(times["plain"]), statistics.mean(times["grouped"])
    result = {"videos": args.videos, "conversations": len(data), "batch_size": args.batch_size,
              "batches": len(batches["plain"]), "repeats": args.repeats, "threads": torch.get_num_threads(),
              "padded_share_plain": round(padded_share(batches["plain"]), 4),
              "padded_share_grouped": round(padded_share(batches["grouped"]), 4),
              "plain_batch_ms": round(plain_s * 1e3, 1), "grouped_batch_ms": round(grouped_s * 1e3, 1),
              "time_ratio": round(grouped_s / plain_s, 4)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
