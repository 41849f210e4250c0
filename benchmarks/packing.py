"""What ``run.packing`` saves on the CPU demo's stage-2 conversations: padded token slots and step time, against
``run.group_by_length`` and the plain shuffled order, in one process on the shared harness.

  python benchmarks/packing.py [--videos 600] [--batch-size 32] [--max-length 640] [--rounds 3] [--threads 1]

Generates the demo's synthetic conversations (``vlmkit.demo.pipeline.GENERATOR``) in a temporary folder, builds the
demo recipe (``demo/tiny_video_qa``, random weights, sdpa) and its ``llava_instruct`` dataset, and draws every batch
of epoch 0 four ways: the plain shuffled order, length-grouped (``run.group_by_length``), the plain batches packed
(``run.packing: {max_length}``, the same samples per batch in fewer rows) and the grouped batches packed. Every
sample is decoded once; all sides then hold the same samples and the same supervised tokens (checked by the
harness's warm-up before timing). One run of a side is forward + backward + AdamW step over all its batches;
``benchmarks/harness.py`` interleaves the sides for ``--rounds`` rounds, threads pinned. Prints a JSON line: each
side's padded share of the token slots, rows per batch, wall and CPU medians and ratios to the plain order, and the
packer's own CPU per batch (it runs in the DataLoader workers).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def real_tokens(batches: list[dict]) -> int:
    return sum(int(b["attention_mask"].sum()) for b in batches)


def slots(batches: list[dict]) -> int:
    return sum(b["input_ids"].numel() for b in batches)


def what_is_trained(batches: list[dict]) -> tuple:
    """(the samples, the supervised tokens): equal on every side, or the comparison is not like for like."""
    from vlmkit.tasks.base import supervised_tokens

    ids = sorted(str(m["id"]) for b in batches for m in b["meta"])
    return ids, sum(supervised_tokens(b["labels"], False) for b in batches)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=600, help="training videos to generate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=640,
                        help="run.packing.max_length (640: twice the recipe's max_length, 3-7 conversations a row)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    args = parser.parse_args(argv)

    from harness import compare, pin_threads

    pin_threads(args.threads)
    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config
    from vlmkit.data.datasets.llava_instruct import LlavaInstructDataset
    from vlmkit.data.packing import pack_batch
    from vlmkit.demo.pipeline import GENERATOR
    from vlmkit.demo.synthetic import ensure_synthetic_dataset
    from vlmkit.runners.length_grouping import MEGABATCH_BATCHES, grouped_order
    from vlmkit.runners.packing import packing_for
    from vlmkit.runners.sampler import ResumableSampler

    work = Path(tempfile.mkdtemp(prefix="vlmkit-packing-"))
    ensure_synthetic_dataset(work / "data", train=args.videos, test=1, seed=0, **GENERATOR)
    (work / "exp.yaml").write_text("model: {preset: demo/tiny_video_qa}\n")
    torch.manual_seed(0)
    model = build_model(load_config(work / "exp.yaml"))
    packing_for(model, {"max_length": args.max_length})  # the trainer's own check of the setting
    pad = model.data_contract().pad_token_id
    data = LlavaInstructDataset(str(work / "data" / "train_conversations.json"), str(work / "data"),
                                contract=model.data_contract())
    samples = {}

    def sample(i: int) -> dict:
        if i not in samples:
            samples[i] = data[i]
        return samples[i]

    # the epoch's shuffled order as the trainer's sampler draws it, cut to whole batches; grouped: the same samples
    # length-grouped as run.group_by_length groups them
    sampler = ResumableSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    sampler.set_position(0, 0)
    order = list(sampler)
    order = order[:len(order) // args.batch_size * args.batch_size]
    orders = {"plain": order,
              "grouped": grouped_order(order, data.text_lengths(), args.batch_size * MEGABATCH_BATCHES)}
    batches = {name: [data.collater([sample(i) for i in chosen[at:at + args.batch_size]])
                      for at in range(0, len(chosen), args.batch_size)] for name, chosen in orders.items()}
    real = real_tokens(batches["plain"])
    pack_cpu = time.process_time()
    for name in ("plain", "grouped"):
        batches[f"{name}_packed"] = [pack_batch(b, args.max_length, pad) for b in batches[name]]
    pack_ms = (time.process_time() - pack_cpu) * 1e3 / (2 * len(batches["plain"]))

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def run(side: list[dict]):
        def train_side() -> tuple:
            for batch in side:
                model(**{k: v for k, v in batch.items() if k != "meta"}).loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return what_is_trained(side)
        return train_side

    timing = compare({name: run(side) for name, side in batches.items()}, args.rounds)
    result = {"videos": args.videos, "conversations": len(data), "batch_size": args.batch_size,
              "batches": len(batches["plain"]), "max_length": args.max_length, "real_tokens": real,
              "supervised_tokens": what_is_trained(batches["plain"])[1], "threads": torch.get_num_threads(),
              "pack_cpu_ms_per_batch": round(pack_ms, 2), "rounds": args.rounds, "loadavg": timing["loadavg"]}
    for name, side in batches.items():
        t = timing[name]
        result[name] = {"padded_share": round(1 - real / slots(side), 4),
                        "rows_per_batch": round(sum(b["input_ids"].shape[0] for b in side) / len(side), 2),
                        "row_width": round(sum(b["input_ids"].shape[1] for b in side) / len(side), 1),
                        "wall_s": t["wall_s"], "cpu_s": t["cpu_s"], "wall_range": t["wall_range"],
                        **({"wall_ratio": t["wall_ratio"], "cpu_ratio": t["cpu_ratio"]} if "wall_ratio" in t else {})}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
