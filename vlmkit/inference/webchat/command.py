"""``vlmkit webchat RUN [--host 127.0.0.1] [--port 7860] [--examples PATH ...]``: serve a Gradio page for chatting
with a trained run about a video: upload a video or pick an example, see the frames the model receives, ask, watch
the answer stream in, continue the conversation, change the generation settings, start over. Needs the optional
extra ``vlmkit[webchat]`` (Gradio). Gradio's analytics are switched off; its page is served from the installed
package, nothing is fetched from the internet."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vlmkit.errors import DataError, VlmkitError
from vlmkit.inference.options import add_model_options, load_model

INSTALL_HINT = "pip install 'vlmkit[webchat]' (or: pip install gradio)"


class MissingExtra(VlmkitError, ImportError):
    """An optional dependency of a command is not installed."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit webchat", description=__doc__)
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument("--examples", nargs="+", default=[], metavar="PATH",
                        help="videos, or folders of videos, offered in the page's example list")
    parser.add_argument("--system", help="a system message opening every conversation")
    return parser


def require_gradio():
    """The gradio module, or an error that says which extra to install."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import and launch: no telemetry
    try:
        import gradio
    except ImportError as err:
        raise MissingExtra(f"vlmkit webchat needs Gradio, which is not installed ({err}): {INSTALL_HINT}") from None
    return gradio


def find_examples(paths: Sequence[str]) -> dict[str, str]:
    """label -> video file for the example list: each file given, and the videos under each folder given."""
    from vlmkit.data.datasets.video_qa import VIDEO_SUFFIXES

    examples: dict[str, str] = {}
    for given in paths:
        path = Path(given)
        if path.is_file():
            examples[path.name] = str(path.resolve())
        elif path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise DataError(f"--examples {given}: a folder with no videos ({', '.join(VIDEO_SUFFIXES)})")
            examples.update({str(p.relative_to(path)): str(p.resolve()) for p in videos})
        else:
            raise DataError(f"--examples {given}: no such video file or folder")
    return examples


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_beams not in (None, 1):
        parser.error(f"--num-beams {args.num_beams}: the web chat streams its answers, which takes one beam")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    try:
        require_gradio()
        examples = find_examples(args.examples)
        model = load_model(args)
    except VlmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from vlmkit.inference.webchat.app import build_app
    from vlmkit.inference.webchat.callbacks import WebChat

    app = build_app(WebChat(model, args.system, examples))
    try:
        # allowed_paths: the example videos live outside Gradio's upload folder; the page may show them
        app.launch(server_name=args.host, server_port=args.port, show_error=True, quiet=True,
                   allowed_paths=sorted({str(Path(p).parent) for p in examples.values()}),
                   ssr_mode=False, mcp_server=False, pwa=False, prevent_thread_lock=True)
    except OSError as err:  # the port is taken, the address is not this machine's
        print(f"error: cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    print(f"vlmkit webchat: {model.checkpoint} at http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    app.block_thread()  # until Ctrl-C
    return 0
