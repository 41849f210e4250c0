"""The training runner's cost per optimizer step against a bare, user-written training loop of the same model on
the same data, measured in one process.

  python benchmarks/step_overhead.py [--preset tiny/pooling] [--batch-size 4] [--steps 10 60] [--repeats 21]
                                     [--threads 1] [--bare-data loader|prebuilt]

Builds the preset with random weights and one batch that follows the batch contract, served by a dataset whose
collater returns that batch (no decoding: only the loop is measured).  The runner (its default loggers, console and
JSON lines; constant learning rate, AdamW without weight decay, no DataLoader workers) trains on it.  The bare side
is the loop a user would write for the same run: ``model.train()`` once, then for each batch of a plain
``DataLoader`` over the same dataset (same batch size and collater; ``--bare-data prebuilt`` skips the DataLoader
and reuses the batch, a stricter baseline that also charges the data loading to the runner): forward, backward,
``optimizer.step()``, ``zero_grad(set_to_none=True)``; it logs nothing.  First both sides train N1 steps and must
end with the same weights.  Then runs of N1 and N2 steps of each side are interleaved over ``--repeats`` rounds by
``benchmarks/harness.py``; fixed costs (building the runner, the final checkpoint, the first-batch report) cancel
in per-step time = (T(N2) - T(N1)) / (N2 - N1) within each round, in wall and CPU time; medians over rounds.
Prints a JSON line with both per-step times and ``ratio = runner / bare`` (target: at most 1.05), and the median of
the per-round ratios (``ratio_cpu_paired_median``).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


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


def trainable(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train_runner(model, batch, steps: int, batch_size: int, out: Path) -> dict:
    from vlmkit.registry import RUNNERS

    cfg = {"name": "trainer", "scheduler": {"name": "constant", "init_lr": 1e-4},
           "optimizer": {"name": "adamw", "weight_decay": 0.0}, "strategy": "single", "log_every": 10,
           "batch_size": batch_size, "num_workers": 0, "max_steps": steps, "shuffle": False}
    model = copy.deepcopy(model)
    RUNNERS.build(cfg, model=model, datasets={"train": SameBatch(batch, steps * batch_size)},
                  output_dir=str(out)).train()
    return trainable(model)


def bare_batches(batch, steps: int, batch_size: int, data: str):
    """What the bare loop iterates: a plain DataLoader over the runner's dataset ('loader'), or the batch itself."""
    from torch.utils.data import DataLoader

    if data == "prebuilt":
        return [batch] * steps
    dataset = SameBatch(batch, steps * batch_size)
    return DataLoader(dataset, batch_size=batch_size, collate_fn=dataset.collater, drop_last=True)


def train_bare(model, batch, steps: int, batch_size: int, data: str = "loader") -> dict:
    import torch

    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    model.train()
    for batch in bare_batches(batch, steps, batch_size, data):
        inputs = {k: v for k, v in batch.items() if k != "meta"}
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return trainable(model)


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny/pooling")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs=2, default=(10, 60), metavar=("N1", "N2"))
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on a shared machine)")
    parser.add_argument("--bare-data", choices=("loader", "prebuilt"), default="loader",
                        help="the bare loop reads a DataLoader over the same dataset, or reuses the prebuilt batch")
    args = parser.parse_args(argv)

    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config

    from harness import compare, pin_threads

    pin_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="vlmkit-step-overhead-"))
    (work / "exp.yaml").write_text(f"model: {{preset: {args.preset}}}\n")
    torch.manual_seed(0)
    model = build_model(load_config(work / "exp.yaml"))
    batch = make_batch(model.data_contract(), args.batch_size)
    n1, n2 = args.steps
    torch.manual_seed(42)  # the runner's seed: the same dropout draws, if the preset has dropout
    bare = train_bare(model, batch, n1, args.batch_size, args.bare_data)
    assert same_weights(bare, train_runner(model, batch, n1, args.batch_size, work / "check")), \
        "the runner and the bare loop do not train the same weights"
    outs = (work / f"run{i}" for i in range(10 ** 6))
    sides = {f"bare_{n}": (lambda n=n: train_bare(model, batch, n, args.batch_size, args.bare_data))
             for n in (n1, n2)}
    sides.update({f"runner_{n}": (lambda n=n: train_runner(model, batch, n, args.batch_size, next(outs)))
                  for n in (n1, n2)})
    timed = compare(sides, args.repeats, same=lambda a, b: True)  # like for like checked above

    def per_step(side: str, kind: str) -> list[float]:
        return [(b - a) / (n2 - n1) for a, b in zip(timed[f"{side}_{n1}"][kind], timed[f"{side}_{n2}"][kind])]

    result = {"preset": args.preset, "batch_size": args.batch_size, "steps": [n1, n2], "repeats": args.repeats,
              "bare_data": args.bare_data, "threads": torch.get_num_threads(), "loadavg": timed["loadavg"],
              "same_weights": True}
    for kind, label in (("wall_runs", "wall"), ("cpu_runs", "cpu")):
        runner_s, bare_s = statistics.median(per_step("runner", kind)), statistics.median(per_step("bare", kind))
        result.update({f"runner_step_ms_{label}": round(runner_s * 1e3, 3),
                       f"bare_step_ms_{label}": round(bare_s * 1e3, 3), f"ratio_{label}": round(runner_s / bare_s, 4),
                       f"ratios_per_round_{label}": [round(a / b, 4) for a, b in
                                                     zip(per_step("runner", kind), per_step("bare", kind))]})
        # paired: each round's runner against the same round's bare loop, which drift in the load affects alike
        result[f"ratio_{label}_paired_median"] = round(statistics.median(result[f"ratios_per_round_{label}"]), 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
