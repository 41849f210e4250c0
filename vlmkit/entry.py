"""Command-line plumbing shared by train.py and evaluate.py."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

from vlmkit.config import load_config
from vlmkit.errors import ConfigError, RegistryError


def experiment_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="experiment YAML")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides, LAVIS style (the same as trailing KEY=VALUE arguments)")
    parser.add_argument("--dry-run", action="store_true", help="validate, print the resolved config, build nothing")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides: a.b=c sets a value, ~a.b deletes a key")
    return parser


def load_experiment(argv: Sequence[str] | None, purpose: str, description: str) -> tuple[DictConfig, bool]:
    """Parse arguments and return (resolved config, dry_run); a config error exits with status 2 and its message."""
    args = experiment_parser(description).parse_intermixed_args(argv)
    try:
        cfg = load_config(args.cfg_path, [*args.overrides, *args.options], purpose=purpose)
    except (ConfigError, RegistryError) as err:
        print(f"config error in {args.cfg_path}:\n{err}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.dry_run:
        print(OmegaConf.to_yaml(cfg))
    return cfg, args.dry_run


@contextmanager
def config_errors_exit():
    """A config mistake found while building (a frozen tower nobody loaded, a missing weight file) exits like one
    found while loading the config: status 2 and its message, no traceback."""
    try:
        yield
    except (ConfigError, RegistryError) as err:
        print(f"config error:\n{err}", file=sys.stderr)
        raise SystemExit(2) from None
