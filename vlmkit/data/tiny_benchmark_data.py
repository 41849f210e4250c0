"""``python -m vlmkit.data.tiny_benchmark_data --out DIR``: VCGBench- and MLVU-format annotations over the
synthetic shape videos, for ``eval_configs/tiny/vcgbench.yaml`` and ``eval_configs/tiny/mlvu.yaml``.

It first makes the ``synthetic`` and ``judge`` parts of ``vlmkit.data.tiny_eval_data`` under DIR, then writes::

    vcgbench/generic_qa.json      Video-ChatGPT layout {Q, A, video_name}, A = the video's caption
    vcgbench/temporal_qa.json     lmms-eval rows {question, answer, video_name}
    vcgbench/consistency_qa.json  lmms-eval Consistency rows: each item as a question_1 row and a question_2 row
                                  ("None" in the other field), the second row of every item listed after all
                                  first rows, so reading it needs the re-pairing by video_name
    mlvu/json/{1_plotQA,5_order}.json          MLVU multiple choice (the synthetic questions, alternately)
    mlvu/json/{8_sub_scene,9_summary}.json     MLVU generation (caption as answer; scoring points for sub_scene)
    mlvu/video/<n>_<task>/<id>.mp4             copies of the synthetic test videos (MLVU's folder per task)

Videos for VCGBench are ``synthetic/videos/test/<video_name>.mp4``.  Rewritten on every call (a few KB).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from vlmkit.data.tiny_eval_data import generate as generate_tiny


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def write_vcgbench(out: Path, captions: list[dict], open_qa: list[dict]) -> Path:
    folder = out / "vcgbench"
    _write(folder / "generic_qa.json", [{"Q": "Describe what happens in the video.", "A": c["captions"][0],
                                         "video_name": c["id"]} for c in captions])
    _write(folder / "temporal_qa.json", [{"question": "What happens in the video, step by step?",
                                          "answer": c["captions"][0], "video_name": c["id"]} for c in captions])
    firsts, seconds = [], []
    for qa in open_qa:
        video = Path(qa["video"]).stem
        firsts.append({"video_name": video, "question_1": qa["question"], "question_2": "None", "answer": qa["answer"]})
        seconds.append({"video_name": video, "question_1": "None", "question_2": f"Tell me: {qa['question'].lower()}",
                        "answer": qa["answer"]})
    _write(folder / "consistency_qa.json", firsts + seconds)
    return folder


def write_mlvu(out: Path, synthetic: Path, captions: list[dict], mc: list[dict]) -> Path:
    folder = out / "mlvu"

    def place(task: str, video: str) -> str:
        target = folder / "video" / task / Path(video).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synthetic / video, target)
        return target.name

    tasks = ("1_plotQA", "5_order")
    for t, task in enumerate(tasks):
        _write(folder / "json" / f"{task}.json",
               [{"video": place(task, q["video"]), "duration": 1.0, "question": q["question"],
                 "candidates": q["candidates"], "answer": q["answer"], "question_type": task.split("_", 1)[1]}
                for q in mc[t::len(tasks)]])
    _write(folder / "json" / "8_sub_scene.json",
           [{"video": place("8_sub_scene", c["video"]), "duration": 1.0,
             "question": "Describe the scene in which the shape moves.", "answer": c["captions"][0],
             "question_type": "subPlot", "scoring_points": [c["captions"][0], c["captions"][1]]} for c in captions])
    _write(folder / "json" / "9_summary.json",
           [{"video": place("9_summary", c["video"]), "duration": 1.0, "question": "Please summarize this video.",
             "answer": c["captions"][1], "question_type": "summary"} for c in captions])
    return folder


def generate(out: str | Path, videos: int = 3, seed: int = 0) -> Path:
    """Synthetic videos and the tiny judge (tiny_eval_data), then the benchmark annotations; returns ``out``."""
    out = Path(generate_tiny(out, videos=videos, seed=seed, parts=("synthetic", "judge")))
    synthetic = out / "synthetic"
    captions = json.loads((synthetic / "test_captions.json").read_text())
    open_qa = json.loads((synthetic / "test_open_qa.json").read_text())
    mc = json.loads((synthetic / "test_mc.json").read_text())
    write_vcgbench(out, captions, open_qa)
    write_mlvu(out, synthetic, captions, mc)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmkit.data.tiny_benchmark_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/tiny_eval_data", help="output directory")
    parser.add_argument("--videos", type=int, default=3, help="synthetic test videos")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"tiny benchmark data in {generate(args.out, args.videos, args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
