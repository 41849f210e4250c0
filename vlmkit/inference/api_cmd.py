"""``vlmkit api RUN --port P``: serve a trained run behind an OpenAI-compatible ``/v1/chat/completions`` endpoint
(``/v1/models`` too). The video is a local path or ``file://`` URL in a user message's content
(``{"type": "video_url", "video_url": {"url": "file:///data/clip.mp4"}}``). Binds 127.0.0.1 unless ``--host`` says
otherwise. Needs the ``api`` extra (FastAPI, uvicorn)."""
from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from vlmkit.errors import VlmkitError
from vlmkit.inference.options import add_model_options, load_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit api", description=__doc__)
    add_model_options(parser)
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    server.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    server.add_argument("--served-model-name", default=None,
                        help="the model name clients send (default: the run folder's name)")
    server.add_argument("--media-root", default=None,
                        help="read videos only under this folder; relative paths are taken from it "
                             "(default: any local path, relative ones from the working folder)")
    return parser


def served_name(run: str) -> str:
    """The run folder's name, also for its checkpoints folder or one checkpoint in it."""
    path = Path(run).resolve()
    if path.parent.name == "checkpoints":
        path = path.parent
    return path.parent.name if path.name == "checkpoints" else path.name


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.media_root is not None and not Path(args.media_root).is_dir():
        print(f"error: --media-root {args.media_root}: no such folder", file=sys.stderr)
        return 2
    try:  # before anything heavy is loaded
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        print(f"error: vlmkit api needs the api extra ({err.name} is missing): pip install 'vlmkit[api]'",
              file=sys.stderr)
        return 2
    from vlmkit.inference.api_server import create_app

    try:
        model = load_model(args)
    except VlmkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    name = args.served_model_name or served_name(args.run)
    if not is_loopback(args.host) and args.media_root is None:
        print(f"warning: serving on {args.host} without --media-root: anyone who reaches the port can have the "
              f"model read any video file this user can read", file=sys.stderr)
    print(f"serving {model.checkpoint} as {name!r} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(model, name, args.media_root), host=args.host, port=args.port, log_level="info")
    return 0
