"""Peak memory and time of a tiny Video-XL model against the frame count, with and without compression.

Three modes: compression on with the visual tokens streamed into the LLM's windows (the default: frames are
encoded 8 at a time as the windows reach them, no full-length visual or embedding tensor), compression on
without streaming (``model.stream_visual: false``: all visual tokens and input embeddings are built first), and
compression off. Each (mode, frames) point runs in a fresh subprocess so that the peak is its own: on CUDA
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on CPU the peak resident set (VmHWM,
reset through ``/proc/self/clear_refs`` just before the run) over the resident set at that moment (model built,
kernels warm; CPU figures of a few MiB are noisy by about +-5 MiB). The input pixels (uint8 on the host, as the
datasets deliver them) are allocated after that baseline, so they count. The run is a generation of one token
over "text, video, question" (the prompt's prefill, where the memory goes). Reported: peak MiB and seconds per
point, and the ratios to the first frame count (goal with compression: peak(1024) <= 2 x peak(64)).

Measured on CPU (2 shared cores, so seconds are rough), 64 / 256 / 1024 frames (1044 / 4116 / 16404 tokens; the
uint8 input is 0.8 / 3.1 / 12.6 MiB of it):

| mode | peak MiB at 64 / 256 / 1024 | x peak@64 at 256 | x peak@64 at 1024 |
|---|---|---|---|
| compression on, streamed | 15.4 / 17.4 / 25.0 | 1.13 | 1.62 |
| compression on, not streamed | 15.8 / 20.6 / 47.4 | 1.30 | 3.00 |
| compression off | 24.1 / 66.8 / 214.8 | 2.77 | 8.91 |

    python benchmarks/long_video_memory.py [--frames 64 256 1024] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Tiny but not trivial: 16 tokens per frame (8x8 grid pooled 2x2), windows of 10 frames, ratio 16 at inference.
MODEL = """
model:
  preset: video_xl/tiny
  llm:
    window: 160
    eval_ratios: [16]
    attn_implementation: sdpa
    config: {{hidden_size: 128, intermediate_size: 256, num_hidden_layers: 4, num_attention_heads: 4,
             num_key_value_heads: 2, vocab_size: 512, max_position_embeddings: 65536,
             tie_word_embeddings: true, pad_token_id: 0, bos_token_id: 2, eos_token_id: 3}}
    compress: {compress}
  branches:
    - encoder:
        name: clip_vit
        config: {{hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
                 image_size: 64, patch_size: 8}}
        select_layer: -1
        drop_cls: true
        freeze: true
      stages:
        - {{name: mlp_gelu, depth: 2}}
        - {{name: avg_pool_2d, kernel: 2}}
      chunk_frames: 8
  sampling:
    sampler: {{name: fps_upbound, max_frames: {frames}}}
  max_length: null
  stream_visual: {stream}
"""


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak_rss() -> None:
    """VmHWM := VmRSS (Linux >= 4.0), so the peak read after the run is the run's own."""
    Path("/proc/self/clear_refs").write_text("5")


MODES = {"streamed": (True, True), "not_streamed": (True, False), "off": (False, False)}  # compress, stream


def run_point(frames: int, mode: str, device: str) -> dict:
    """One measurement in this process (called in a subprocess by main)."""
    import tempfile

    import torch

    from vlmkit.assemble import build_model
    from vlmkit.config import load_config
    from vlmkit.models.prompting import collate_encoded

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        compress, stream = MODES[mode]
        path.write_text(MODEL.format(compress=str(compress).lower(), stream=str(stream).lower(), frames=frames))
        torch.manual_seed(0)
        model = build_model(load_config(path)).to(device).eval()
    contract = model.data_contract()
    encoded = contract.encode([{"from": "human", "value": "<video>\nwhat happens in the video"}], num_media=1,
                              add_generation_prompt=True)
    batch = collate_encoded([encoded], contract.pad_token_id, side="left")
    size = contract.preprocessing[0].size
    batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad():  # warm-up on a short clip would change the model; warm kernels with one tiny step
        model.llm(model.llm.embed(batch["input_ids"][:, :8]), batch["attention_mask"][:, :8])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        base = _status_mib("VmRSS")
    # stays on the host: chunks move to the device one by one
    pixels = torch.randint(0, 256, (1, frames, 3, size, size), dtype=torch.uint8)
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(**batch, pixel_values=[pixels], max_new_tokens=1, do_sample=False)
    if device == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        peak = _status_mib("VmHWM") - base
    seconds = time.perf_counter() - start
    assert model.streaming == stream, "the streamed mode must stream and the others must not"
    return {"frames": frames, "mode": mode, "tokens": int(batch["input_ids"].shape[1]),
            "peak_mib": round(max(peak, 0.0), 2), "seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--point", nargs=2, metavar=("FRAMES", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.point:
        print(json.dumps(run_point(int(args.point[0]), args.point[1], args.device)))
        return 0
    rows = []
    for mode in args.modes:
        for frames in args.frames:
            cmd = [sys.executable, __file__, "--device", args.device, "--point", str(frames), mode]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n| mode | frames | tokens | peak MiB | x peak@{args.frames[0]} | seconds | x time@{args.frames[0]} |")
    print("|---|---|---|---|---|---|---|")
    ratios = {}
    lo, hi = args.frames[0], args.frames[-1]
    for mode in args.modes:
        mine = {r["frames"]: r for r in rows if r["mode"] == mode}
        for r in mine.values():
            print(f"| {mode} | {r['frames']} | {r['tokens']} | {r['peak_mib']:.1f} | "
                  f"{r['peak_mib'] / max(mine[lo]['peak_mib'], 1e-6):.2f} | {r['seconds']:.2f} | "
                  f"{r['seconds'] / max(mine[lo]['seconds'], 1e-6):.2f} |")
        ratios[mode] = mine[hi]["peak_mib"] / max(mine[lo]["peak_mib"], 1e-6)
    print()
    for mode, ratio in ratios.items():
        goal = " (goal <= 2)" if MODES[mode][0] else ""
        print(f"{mode}: peak({hi}) / peak({lo}) = {ratio:.2f}{goal}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "peak_ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
