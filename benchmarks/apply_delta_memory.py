"""Peak memory of apply-delta on a multi-shard model, against the naive load-everything merge.

  python benchmarks/apply_delta_memory.py [--layers 8] [--shard-mb 32] [--keep]

Writes a LLaMA-shaped float16 base and delta (vocabulary grown by one row) as ~32 MB safetensors shards, and the same
as .bin shards, then runs each merge in a fresh subprocess that samples its own RSS every 2 ms from a thread. RSS
counts the memory-mapped pages of the inputs as well as allocations, which is what an OOM killer sees. The figure
reported is peak RSS minus the RSS just before the merge, as a multiple of the largest input shard; the target is
under 1.5x for the streaming merge.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _llama_shapes(layers: int, vocab: int) -> tuple[dict[str, tuple[int, ...]], dict]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=1024, intermediate_size=2816, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=8, dtype="float16")
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}, config.to_dict()


def _write_checkpoint(directory: Path, shapes: dict, config: dict, seed: int, shard_bytes: int, fmt: str) -> None:
    """Random float16 tensors packed into shards of about shard_bytes, with an index json and config.json."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    groups, size = [[]], 0
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * 2
        if groups[-1] and size + nbytes > shard_bytes:
            groups, size = groups + [[]], 0
        groups[-1].append(name)
        size += nbytes
    weight_map = {}
    for i, names in enumerate(groups):
        shard = {n: (torch.randn(shapes[n], generator=generator) * 0.02).half() for n in names}
        stem = "model" if fmt == "safetensors" else "pytorch_model"
        file_name = f"{stem}-{i + 1:05d}-of-{len(groups):05d}.{'safetensors' if fmt == 'safetensors' else 'bin'}"
        if fmt == "safetensors":
            save_file(shard, directory / file_name, metadata={"format": "pt"})
        else:
            torch.save(shard, directory / file_name)
        weight_map.update({n: file_name for n in names})
    index_name = "model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json"
    (directory / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (directory / "config.json").write_text(json.dumps(config))


def _naive_merge(base: Path, delta: Path, target: Path) -> None:
    """What the 2023 scripts did: both models whole in memory, added, saved."""
    from safetensors.torch import load_file, save_file

    def load_all(directory: Path) -> dict:
        state = {}
        for shard in sorted(directory.glob("*.safetensors")):
            state.update(load_file(shard))
        return state

    base_state, delta_state = load_all(base), load_all(delta)
    merged = {}
    for name, d in delta_state.items():
        out = d.clone()
        out[: base_state[name].shape[0]] += base_state[name]
        merged[name] = out
    target.mkdir()
    save_file(merged, target / "model.safetensors", metadata={"format": "pt"})


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _kernel_peak_rss(reset: bool = False) -> int | None:
    """VmHWM, the kernel's own high-water mark of RSS (Linux); writing 5 to clear_refs restarts it from now."""
    try:
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _child(method: str, base: str, delta: str, target: str) -> None:
    """Runs one merge, printing JSON: baseline RSS, sampled peak RSS, the kernel's peak RSS, seconds."""
    import torch  # noqa: F401  imports first, so they fall in the baseline
    from vlmkit.tools.apply_delta import apply_delta

    baseline = _rss()
    _kernel_peak_rss(reset=True)
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    if method == "naive":
        _naive_merge(Path(base), Path(delta), Path(target))
    else:
        apply_delta(base, delta, target, progress=False)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss())
    kernel_peak = _kernel_peak_rss()
    print(json.dumps({"baseline": baseline, "peak": peak[0], "kernel_peak": kernel_peak, "seconds": seconds}))


def _run(method: str, base: Path, delta: Path, target: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", method, str(base), str(delta), str(target)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--shard-mb", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the generated checkpoints")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "BASE", "DELTA", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    work = Path(tempfile.mkdtemp(prefix="apply_delta_bench_"))
    try:
        base_shapes, base_config = _llama_shapes(args.layers, args.vocab)
        delta_shapes, delta_config = _llama_shapes(args.layers, args.vocab + 1)  # one added token, as Vicuna's
        for fmt in ("safetensors", "bin"):
            _write_checkpoint(work / f"base-{fmt}", base_shapes, base_config, 0, args.shard_mb * 10**6, fmt)
            _write_checkpoint(work / f"delta-{fmt}", delta_shapes, delta_config, 1, args.shard_mb * 10**6, fmt)
        shards = [*work.glob("base-safetensors/*.safetensors"), *work.glob("delta-safetensors/*.safetensors")]
        largest = max(p.stat().st_size for p in shards)
        model_bytes = sum(p.stat().st_size for p in work.glob("base-safetensors/*.safetensors"))
        print(f"model: {args.layers} layers, {model_bytes / 2**20:.0f} MiB float16 in "
              f"{len(list(work.glob('base-safetensors/*.safetensors')))} shards per checkpoint, "
              f"largest shard {largest / 2**20:.1f} MiB")
        print(f"{'merge':<28}{'sampled peak RSS growth':>26}{'VmHWM growth':>26}{'seconds':>9}")
        runs = [("naive (load everything)", "naive", "safetensors"),
                ("apply_delta, safetensors", "stream", "safetensors"),
                ("apply_delta, .bin", "stream", "bin")]
        for label, method, fmt in runs:
            result = _run(method, work / f"base-{fmt}", work / f"delta-{fmt}", work / f"target-{method}-{fmt}")
            figures = []
            for peak in (result["peak"], result["kernel_peak"]):
                growth = None if peak is None else peak - result["baseline"]
                figures.append("n/a" if growth is None else
                               f"{growth / 2**20:.1f} MiB = {growth / largest:.2f}x shard")
            print(f"{label:<28}{figures[0]:>26}{figures[1]:>26}{result['seconds']:>9.2f}")
    finally:
        if args.keep:
            print(f"checkpoints kept in {work}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
