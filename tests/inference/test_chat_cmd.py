"""`vlmkit chat` (issue 19 item 3), driven in a real terminal (a pty): the README's command, a question answered with
evaluate.py's prediction streamed, /video to switch, /reset, /exit."""
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
PROMPT = "you> "


class Terminal:
    """A process on a pseudo-terminal: type lines, read what it printed up to a marker."""

    def __init__(self, argv, cwd):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     env={**os.environ, "TERM": "dumb", "PYTHONPATH": str(README.parent)})
        os.close(slave)
        self.seen = ""

    def read_until(self, marker: str, timeout: float) -> str:
        """Output up to and including the next ``marker`` (carriage returns dropped)."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"no {marker!r} within {timeout}s; the terminal shows:\n{self.seen}")
            if select.select([self.master], [], [], min(left, 1.0))[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace").replace("\r", "")
                except OSError:  # the process closed the terminal
                    continue
        head, _, self.seen = self.seen.partition(marker)
        return head + marker

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def answer_of(screen: str, question: str) -> str:
    """The model's line after the echoed question."""
    return re.search(rf"{re.escape(question)}\nmodel> (.*)\n", screen).group(1).strip()


def test_chat_in_a_terminal(tiny):
    folder, _, data, records = tiny
    line = re.search(r"^vlmkit chat .*$", README.read_text(), re.M).group(0)
    argv = shlex.split(line)
    video = argv[argv.index("--video") + 1].split("synthetic/")[1]
    first = next(r for r in records.values() if r["media"].endswith(video))
    second = next(r for r in records.values() if r is not first)
    term = Terminal([sys.executable, "-m", "vlmkit.cli", *argv[1:]], cwd=folder)
    try:
        banner = term.read_until(PROMPT, timeout=240)
        assert "/video PATH" in banner and "/reset" in banner and "/exit" in banner
        term.type(first["question"])
        screen = term.read_until(PROMPT, timeout=120)
        assert answer_of(screen, first["question"]) == first["prediction"]

        term.type(f"/video {second['media']}")
        assert f"(video: {second['media']}; new conversation)" in term.read_until(PROMPT, timeout=60)
        term.type(second["question"])
        assert answer_of(term.read_until(PROMPT, timeout=120), second["question"]) == second["prediction"]
        term.type("and then")  # a second turn of the same conversation
        assert "model> " in term.read_until(PROMPT, timeout=120)

        term.type("/reset")
        assert "(conversation reset)" in term.read_until(PROMPT, timeout=60)
        term.type(second["question"])  # a fresh conversation answers as the first turn did
        assert answer_of(term.read_until(PROMPT, timeout=120), second["question"]) == second["prediction"]

        term.type("/video nowhere.mp4")
        assert "(no such video: nowhere.mp4)" in term.read_until(PROMPT, timeout=60)
        term.type("/exit")
        assert term.proc.wait(timeout=60) == 0
    finally:
        term.close()
