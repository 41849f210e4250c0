"""``python -m vlmkit.demo.synthetic --out DIR --train N --test M --seed S``: generate (or find) a synthetic set.

Every :class:`SyntheticVideoGenerator` argument is a flag (``two_object_fraction`` -> ``--two-object-fraction``;
tuples are comma-separated, ``--colours red,green,blue``; booleans take ``true``/``false``), read off the
constructor signature so the two cannot disagree.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing

from vlmkit.demo.synthetic import ensure_synthetic_dataset
from vlmkit.demo.synthetic.generator import SyntheticVideoGenerator


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _tuple_parser(item_type):
    def parse(text: str) -> tuple:
        return tuple(item_type(part.strip()) for part in text.split(",") if part.strip())
    return parse


def _converter(annotation):
    if annotation is bool:
        return _parse_bool
    if typing.get_origin(annotation) is tuple:
        return _tuple_parser(typing.get_args(annotation)[0])
    if type(None) in typing.get_args(annotation):   # X | None: the flag takes an X (None is its default)
        return _converter(next(a for a in typing.get_args(annotation) if a is not type(None)))
    return annotation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vlmkit.demo.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--train", type=int, required=True, help="number of training videos")
    parser.add_argument("--test", type=int, required=True, help="number of held-out test videos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="encoding processes (<= 1: in this process)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset generated with different parameters instead of failing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    group = parser.add_argument_group("generator parameters")
    hints = typing.get_type_hints(SyntheticVideoGenerator.__init__)
    for name, param in inspect.signature(SyntheticVideoGenerator.__init__).parameters.items():
        if name == "self":
            continue
        default = param.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_converter(hints[name]),
                           default=default, help=f"default: {shown}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    control = {key: args.pop(key) for key in ("out", "train", "test", "seed", "workers", "overwrite", "quiet")}
    manifest = ensure_synthetic_dataset(control["out"], control["train"], control["test"], control["seed"],
                                        workers=control["workers"], overwrite=control["overwrite"],
                                        progress=not control["quiet"], **args)
    state = "already present, skipped" if manifest["skipped"] else (
        f"generated in {manifest['seconds']} s ({manifest['videos_per_second']} videos/s)")
    print(f"{control['out']}: {state}")
    print(json.dumps(manifest["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
