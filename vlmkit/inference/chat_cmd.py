"""``vlmkit chat RUN --video x.mp4``: a multi-turn chat about a video in the terminal, the answer streamed token
by token. Commands: ``/video PATH`` switches the video (and starts a new conversation), ``/reset`` forgets the
conversation, ``/exit`` (or end of input) quits."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Optional, TextIO

from vlmkit.errors import VlmkitError
from vlmkit.inference.options import add_model_options, load_model

HELP = "commands: /video PATH (switch video, new conversation), /reset (new conversation), /exit"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit chat", description=__doc__)
    add_model_options(parser)
    parser.add_argument("--video", help="the video to talk about (or /video PATH in the chat)")
    parser.add_argument("--system", help="a system message opening every conversation")
    return parser


class ChatSession:
    """The conversation state and the commands; ``ask`` streams the answer to ``out``."""

    def __init__(self, model, video: Optional[str], system: Optional[str], out: TextIO):
        self.model, self.video, self.system, self.out = model, video, system, out
        self.messages: list[dict] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def handle(self, line: str) -> bool:
        """Act on one input line; False to quit."""
        line = line.strip()
        if not line:
            return True
        if line in ("/exit", "/quit"):
            return False
        if line == "/reset":
            self.messages = []
            self.say("(conversation reset)")
        elif line.startswith("/video"):
            path = line[len("/video"):].strip()
            if not path or not os.path.exists(path):
                self.say(f"(no such video: {path or 'give a path'})")
            else:
                self.video, self.messages = path, []
                self.say(f"(video: {path}; new conversation)")
        elif line.startswith("/"):
            self.say(f"(unknown command {line.split()[0]}; {HELP})")
        elif self.video is None:
            self.say("(no video yet: /video PATH)")
        else:
            self.ask(line)
        return True

    def ask(self, question: str) -> None:
        head = [{"role": "system", "content": self.system}] if self.system else []
        messages = [*self.messages, {"role": "user", "content": question}]
        self.out.write("model> ")
        self.out.flush()

        def show(piece: str) -> None:
            self.out.write(piece)
            self.out.flush()

        try:
            answer = self.model.chat([*head, *messages], self.video, stream=show)
        except VlmkitError as err:
            self.say(f"\n(error: {err})")
            return
        self.say("")
        self.messages = [*messages, {"role": "assistant", "content": answer}]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.video is not None and not os.path.exists(args.video):
        print(f"error: {args.video}: no such video file or frame folder", file=sys.stderr)
        return 2
    try:
        model = load_model(args)
    except VlmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    session = ChatSession(model, args.video, args.system, sys.stdout)
    session.say(f"chatting with {model.checkpoint}" + (f" about {args.video}" if args.video else "") + f"; {HELP}")
    while True:
        try:
            line = input("you> ")
        except EOFError:
            session.say("")
            return 0
        except KeyboardInterrupt:
            session.say("")
            return 130
        if not session.handle(line):
            return 0
