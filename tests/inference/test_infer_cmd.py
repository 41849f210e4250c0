"""`vlmkit infer` (issue 19 item 2): the README's commands, run as written in the folder the tiny run lies in, print
and write evaluate.py's predictions; an answers file resumes."""
import json
import re
import shlex
from pathlib import Path

import pytest

from vlmkit.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_command(start: str) -> list[str]:
    """The README's shell line that starts with ``start``, as the argument list after ``vlmkit``."""
    line = re.search(rf"^{re.escape(start)}.*$", README.read_text(), re.M).group(0)
    return shlex.split(line)[1:]


@pytest.fixture
def in_folder(tiny, monkeypatch):
    monkeypatch.chdir(tiny[0])
    return tiny


def test_one_question_prints_evaluates_prediction(in_folder, capsys):
    _, _, _, records = in_folder
    argv = readme_command("vlmkit infer output/tiny_run --video")
    video = argv[argv.index("--video") + 1]
    (record,) = [r for r in records.values() if r["media"].endswith(video.split("synthetic/")[1])]
    assert argv[argv.index("--question") + 1] == record["question"]
    assert main(argv) == 0
    assert capsys.readouterr().out == record["prediction"] + "\n"


def test_a_questions_file_is_answered_and_resumed(in_folder, capsys):
    folder, _, data, records = in_folder
    questions = json.loads((data / "test_open_qa.json").read_text())
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    answers = folder / "answers.jsonl"
    answers.unlink(missing_ok=True)
    argv = readme_command("vlmkit infer output/tiny_run --input")
    assert main(argv) == 0
    written = [json.loads(line) for line in answers.read_text().splitlines()]
    assert {r["id"]: r["prediction"] for r in written} == {i: r["prediction"] for i, r in records.items()}
    assert "0 answered earlier" in capsys.readouterr().err

    # interrupted: the first answer kept (marked), the last one torn mid-line
    lines = answers.read_text().splitlines()
    kept = json.dumps({**json.loads(lines[0]), "prediction": "KEPT"})
    answers.write_text("\n".join([kept, *lines[1:-1], lines[-1][:10]]))
    assert main(argv) == 0
    assert f"{len(lines) - 1} answered earlier in answers.jsonl, 1 to do" in capsys.readouterr().err
    again = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [r["id"] for r in again] == [r["id"] for r in written]
    assert again[0]["prediction"] == "KEPT" and again[-1] == written[-1]


def test_missing_arguments_and_missing_files_are_refused(in_folder, capsys):
    with pytest.raises(SystemExit):
        main(["infer", "output/tiny_run", "--video", "x.mp4"])
    assert "give --video and --question, or --input and --output" in capsys.readouterr().err
    assert main(["infer", "output/tiny_run", "--video", "nothing.mp4", "--question", "q"]) == 2
    assert "nothing.mp4: no such video file" in capsys.readouterr().err
