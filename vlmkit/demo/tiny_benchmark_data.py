"""``python -m vlmkit.demo.tiny_benchmark_data --out DIR``: VCGBench- and MLVU-format annotations over the
synthetic shape videos, for ``eval_configs/tiny/vcgbench.yaml`` and ``eval_configs/tiny/mlvu.yaml``.

It first makes the ``synthetic`` and ``judge`` parts of ``vlmkit.demo.tiny_eval_data`` under DIR, then writes::

    vcgbench/generic_qa.json      Video-ChatGPT layout {Q, A, video_name}, A = the video's caption
    vcgbench/temporal_qa.json     lmms-eval rows {question, answer, video_name}
    vcgbench/consistency_qa.json  lmms-eval Consistency rows: each item as a question_1 row and a question_2 row
                                  ("None" in the other field), the second row of every item listed after all
                                  first rows, so reading it needs the re-pairing by video_name
    mlvu/json/{1_plotQA,5_order}.json          MLVU multiple choice (the synthetic questions, alternately)
    mlvu/json/{8_sub_scene,9_summary}.json     MLVU generation (caption as answer; scoring points for sub_scene)
    mlvu/video/<n>_<task>/<id>.mp4             copies of the synthetic test videos (MLVU's folder per task)
    videomme/videomme.json        lmms-eval Video-MME rows (options "A. ...", answer letter), videos alternately
                                  short/medium/long; data/<videoID>.mp4, subtitle/<videoID>.srt (first video only,
                                  font-tagged cues, one between the sampled frames of a 4-frame linspace sampler)
    egoschema/questions.json      EgoSchema {q_uid, google_drive_id, question, option 0..4} (one question outside
    egoschema/subset_answers.json the subset: no answer) and {q_uid: index}; videos/<q_uid>.mp4
    nextqa/val.csv                NExT-QA MC csv (video, frame_count, width, height, question, answer, qid, type,
                                  a0..a4), types cycling CW/TC/DL/TP; map_vid_vidorID.json; videos/<folder>/<id>.mp4

Videos for VCGBench are ``synthetic/videos/test/<video_name>.mp4``.  Rewritten on every call (a few KB).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from vlmkit.demo.tiny_eval_data import generate as generate_tiny


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


FILLER = "none of the above"  # the fifth option of EgoSchema/NExT-QA questions made from 4-option ones
# cue (start, end, text) of the first video's srt (1 s at 8 fps): shown at frames 0, 2 and 4 of linspace(0, 7, 4)
# = [0, 2, 4, 7] except "between frames" (frame 5 only); the third cue has no font tag
SRT_CUES = [(0.0, 0.2, "The square appears."), (0.3, 0.45, "It starts to move."),
            (0.5, 0.65, "Plain cue without a font tag"), (0.7, 0.85, "between frames")]
# synthetic question type -> a Video-MME task type
VIDEOMME_TASKS = {"colour": "Attribute Perception", "shape": "Object Recognition", "direction": "Temporal Perception"}


def _srt(cues: list[tuple[float, float, str]]) -> str:
    def stamp(t: float) -> str:
        return f"00:00:{int(t):02d},{round((t - int(t)) * 1000):03d}"

    blocks = []
    for n, (start, end, text) in enumerate(cues, 1):
        body = text if text.startswith("Plain") else f'<font color="white" size=".72c">{text}</font>'
        blocks.append(f"{n}\n{stamp(start)} --> {stamp(end)}\n{body}\n")
    return "\n".join(blocks)


def _copy(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)


def _videos(mc: list[dict]) -> list[str]:
    return list(dict.fromkeys(q["video"] for q in mc))


def write_videomme(out: Path, synthetic: Path, mc: list[dict]) -> Path:
    folder = out / "videomme"
    videos = _videos(mc)
    rows = []
    for v, video in enumerate(videos):
        video_id = f"yt{v:04d}"
        _copy(synthetic / video, folder / "data" / f"{video_id}.mp4")
        questions = [q for q in mc if q["video"] == video]
        for k, q in enumerate(questions):
            rows.append({"video_id": f"{v + 1:03d}", "duration": ("short", "medium", "long")[v % 3],
                         "domain": ("Knowledge", "Life Record")[v % 2], "sub_category": ("Astronomy", "Travel")[v % 2],
                         "url": f"https://www.youtube.com/watch?v={video_id}", "videoID": video_id,
                         "question_id": f"{v + 1:03d}-{k + 1}",
                         "task_type": VIDEOMME_TASKS.get(q["task_type"], "Action Reasoning"),
                         "question": q["question"],
                         "options": [f"{'ABCD'[i]}. {c}" for i, c in enumerate(q["candidates"])],
                         "answer": "ABCD"[q["candidates"].index(q["answer"])]})
    _write(folder / "videomme.json", rows)
    (folder / "subtitle").mkdir(parents=True, exist_ok=True)
    (folder / "subtitle" / "yt0000.srt").write_text(_srt(SRT_CUES))
    return folder


def write_egoschema(out: Path, synthetic: Path, mc: list[dict]) -> Path:
    folder = out / "egoschema"
    questions, answers = [], {}
    for i, q in enumerate(mc):
        uid = f"{i:08d}-ego-{q['task_type']}"
        _copy(synthetic / q["video"], folder / "videos" / f"{uid}.mp4")
        options = [*q["candidates"], FILLER]
        questions.append({"q_uid": uid, "google_drive_id": f"drive{i}", "question": q["question"],
                          **{f"option {k}": option for k, option in enumerate(options)}})
        if i < len(mc) - 1:  # the last question is outside the subset
            answers[uid] = options.index(q["answer"])
    _write(folder / "questions.json", questions)
    _write(folder / "subset_answers.json", answers)
    return folder


def write_nextqa(out: Path, synthetic: Path, mc: list[dict]) -> Path:
    folder = out / "nextqa"
    ids = {video: str(4000000000 + v) for v, video in enumerate(_videos(mc))}
    mapping = {vid: f"{1000 + int(vid) % 2}/{vid}" for vid in ids.values()}
    for video, vid in ids.items():
        _copy(synthetic / video, folder / "videos" / f"{mapping[vid]}.mp4")
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "map_vid_vidorID.json", mapping)
    with open(folder / "val.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "frame_count", "width", "height", "question", "answer", "qid", "type",
                         "a0", "a1", "a2", "a3", "a4"])
        for i, q in enumerate(mc):
            options = [*q["candidates"], FILLER]
            writer.writerow([ids[q["video"]], 8, 64, 48, q["question"].rstrip("?").lower(), options.index(q["answer"]),
                             i, ("CW", "TC", "DL", "TP")[i % 4], *options])
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
    write_videomme(out, synthetic, mc)
    write_egoschema(out, synthetic, mc)
    write_nextqa(out, synthetic, mc)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmkit.demo.tiny_benchmark_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="output/tiny_eval_data", help="output directory")
    parser.add_argument("--videos", type=int, default=3, help="synthetic test videos")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"tiny benchmark data in {generate(args.out, args.videos, args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
