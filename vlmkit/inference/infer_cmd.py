"""``vlmkit infer RUN --video x.mp4 --question "..."``: print the answer. ``--input questions.jsonl --output
answers.jsonl``: answer every line (``{"video": ..., "question": ...}``, an optional ``id``), in batches, with a
progress bar; each answer is appended (and flushed) as the input record plus ``prediction``, so a rerun skips
the ids already answered."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vlmkit.errors import DataError, VlmkitError
from vlmkit.inference.options import add_model_options, load_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    parser.add_argument("--video", help="a video file or frame folder")
    parser.add_argument("--question", help="the question about --video")
    parser.add_argument("--input", help="JSON lines: {video, question[, id]} per line")
    parser.add_argument("--output", help="JSON lines written (appended) for --input")
    parser.add_argument("--media-root", default="", help="folder that relative --input video paths are under")
    parser.add_argument("--batch-size", type=int, default=8, help="videos answered together (--input)")
    return parser


def read_questions(path: str) -> list[dict]:
    """The input records, each with a string ``id`` (its line number when it has none)."""
    if not Path(path).is_file():
        raise DataError(f"{path}: no such input file")
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not a JSON record ({err})") from None
        if not isinstance(record, dict) or "video" not in record or "question" not in record:
            raise DataError(f"{path}:{number}: a record needs 'video' and 'question', got {line.strip()[:120]}")
        records.append({**record, "id": str(record.get("id", number))})
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: ids repeat ({sorted({i for i in ids if ids.count(i) > 1})[:5]}); resuming needs "
                        f"unique ids")
    return records


def answer_file(model, args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from vlmkit.data.datasets.base import resolve_media
    from vlmkit.runners.evaluator import read_records, repair_tail

    records = read_questions(args.input)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    repair_tail(output)  # an interrupted run's torn last line is recomputed
    done = {str(r.get("id")) for r in read_records(output)} if output.is_file() else set()
    todo = [r for r in records if r["id"] not in done]
    print(f"{len(done & {r['id'] for r in records})} answered earlier in {output}, {len(todo)} to do",
          file=sys.stderr)
    with open(output, "a", encoding="utf-8") as out, \
            tqdm(total=len(todo), desc="infer", unit="question", file=sys.stderr, disable=None) as bar:
        for start in range(0, len(todo), args.batch_size):
            chunk = todo[start:start + args.batch_size]
            answers = model.generate([resolve_media(args.media_root, str(r["video"])) for r in chunk],
                                     [str(r["question"]) for r in chunk])
            out.write("".join(json.dumps({**r, "prediction": a}, ensure_ascii=False) + "\n"
                              for r, a in zip(chunk, answers)))
            out.flush()
            bar.update(len(chunk))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    single = args.video is not None or args.question is not None
    if single == (args.input is not None) or (single and not (args.video and args.question)) or \
            (args.input is not None) != (args.output is not None):
        parser.error("give --video and --question, or --input and --output")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        model = load_model(args)
        if single:
            print(model.generate(args.video, args.question))
            return 0
        return answer_file(model, args)
    except VlmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
