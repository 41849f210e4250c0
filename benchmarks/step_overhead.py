"""The training runner's cost per optimizer step against a bare forward/backward/optimizer step of the same
model on the same tensors, measured in one process.

  python benchmarks/step_overhead.py [--preset tiny/pooling] [--batch-size 4] [--steps 5 25] [--repeats 7]
                                     [--threads 1]

Builds the preset with random weights and one batch that follows the batch contract; the runner reads it
through its DataLoader from a dataset whose collater returns that batch.  Fixed costs (building the runner,
the final checkpoint, the first-batch report) are cancelled by timing runs of N1 and N2 steps and taking the
difference: per-step time = (T(N2) - T(N1)) / (N2 - N1), the median over ``--repeats`` alternating rounds.
Prints a JSON line with both per-step times and ``ratio = runner / bare`` (target: at most 1.05).
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


class SameBatch:
    """``length`` items that all collate to one prebuilt batch (no decoding: only the loop is measured)."""

    def __init__(self, batch: dict, length: int):
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        return index

    def collater(self, indices: list[int]) -> dict:
        return self.batch


def make_batch(contract, batch_size: int) -> dict:
    import torch

    from vlmkit.models.prompting import collate_encoded

    encoded = [contract.encode([{"from": "human", "value": "<video>\nwhat happens in the video?"},
                                {"from": "gpt", "value": f"a short answer number {i}"}], num_media=1)
               for i in range(batch_size)]
    batch = collate_encoded(encoded, contract.pad_token_id)
    generator = torch.Generator().manual_seed(0)
    batch["pixel_values"] = [torch.randn(batch_size, contract.num_frames, 3, prep.size, prep.size,
                                         generator=generator) for prep in contract.preprocessing]
    batch["meta"] = [{"id": str(i)} for i in range(batch_size)]
    return batch


def time_runner(model, batch, steps: int, batch_size: int, out: Path) -> float:
    from vlmkit.registry import RUNNERS

    cfg = {"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1e-4}, "optimizer": "adamw",
           "strategy": "single", "loggers": ["jsonl"], "log_every": 10, "batch_size": batch_size,
           "max_steps": steps, "shuffle": False}
    runner = RUNNERS.build(cfg, model=copy.deepcopy(model), datasets={"train": SameBatch(batch, steps * batch_size)},
                           output_dir=str(out))
    start = time.perf_counter()
    runner.train()
    return time.perf_counter() - start


def time_bare(model, batch, steps: int) -> float:
    import torch

    model = copy.deepcopy(model)
    inputs = {k: v for k, v in batch.items() if k != "meta"}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny/pooling")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs=2, default=(5, 25), metavar=("N1", "N2"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    args = parser.parse_args(argv)

    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vlmkit-step-overhead-"))
    (work / "exp.yaml").write_text(f"model: {{preset: {args.preset}}}\n")
    torch.manual_seed(0)
    model = build_model(load_config(work / "exp.yaml"))
    batch = make_batch(model.data_contract(), args.batch_size)
    n1, n2 = args.steps
    time_bare(model, batch, 3)  # warm-up: allocator, kernels, lazy imports
    time_runner(model, batch, 3, args.batch_size, work / "warmup")
    runner_steps, bare_steps = [], []
    for r in range(args.repeats):
        runs = {n: (time_runner(model, batch, n, args.batch_size, work / f"r{r}_{n}"), time_bare(model, batch, n))
                for n in (n1, n2)}
        runner_steps.append((runs[n2][0] - runs[n1][0]) / (n2 - n1))
        bare_steps.append((runs[n2][1] - runs[n1][1]) / (n2 - n1))
    runner_s, bare_s = statistics.median(runner_steps), statistics.median(bare_steps)
    result = {"preset": args.preset, "batch_size": args.batch_size, "steps": [n1, n2], "repeats": args.repeats,
              "threads": torch.get_num_threads(), "runner_step_ms": round(runner_s * 1e3, 3),
              "bare_step_ms": round(bare_s * 1e3, 3), "ratio": round(runner_s / bare_s, 4),
              "ratios_per_repeat": [round(a / b, 4) for a, b in zip(runner_steps, bare_steps)]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
