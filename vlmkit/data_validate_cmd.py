"""``vlmkit data validate CFG``: scan every dataset of a config before training.

The command builds the config's model on the meta device without weights (only its data contract is used) and
its datasets as training would (``vlmkit.assemble``), then runs the checks of ``vlmkit.data.validate`` over them;
it lives at the entry level because it assembles, the checks stay with the data.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, Optional

from vlmkit.data.validate import DataReport, check_dataset
from vlmkit.errors import ConfigError, DataError


def weight_free(cfg: Any) -> Any:
    """A copy of ``cfg`` whose model builds from its architecture alone: no pretrained weights, no init_weights
    (as ``vlmkit estimate`` builds offline), while the tokenizer stays the configured one, since token counts
    depend on it. Only the tokenizer files (and data) must exist."""
    import copy

    from omegaconf import OmegaConf

    from vlmkit.estimate.command import offline_overrides

    cfg = copy.deepcopy(cfg)
    llm = cfg.model.get("llm")
    if llm is not None and llm.get("tokenizer") is None and llm.get("pretrained") is not None:
        llm.tokenizer = llm.pretrained  # the LLM's tokenizer lives in its pretrained folder (or hub id)
    try:
        overrides = offline_overrides(cfg)
    except ConfigError as err:
        raise ConfigError(err.path, f"{err.message.split('; set its')[0]}; set its 'arch' (or 'config') so "
                                    "`vlmkit data validate` can build it without weights") from err
    for override in overrides:
        key, _, value = override.partition("=")
        if key.endswith(".tokenizer"):
            continue
        if key.startswith("~"):
            parent, _, leaf = key[1:].rpartition(".")
            OmegaConf.select(cfg, parent).pop(leaf, None)
        else:
            OmegaConf.update(cfg, key, None if value == "null" else value, merge=False)
    return cfg


def build_contract_model(cfg: Any) -> Any:
    """The model of ``cfg`` on the meta device: tokenizer, template, sampling and visual token counts are real,
    parameters are shapes only, so even a 7B config builds in seconds with no weight file read."""
    import torch

    from vlmkit.assemble import build_model

    with torch.device("meta"):
        return build_model(weight_free(cfg))


def validate_data(cfg: Any, model: Any = None, splits: Optional[Sequence[str]] = None,
                  max_samples: Optional[int] = None, decode: bool = True) -> DataReport:
    """Scan the datasets of a loaded config (``vlmkit.config.load_config``) against its model's contract.

    ``model``: an already built model (built from ``cfg.model`` on the meta device when None, without weights:
    ``build_contract_model``); ``splits``: dataset keys to scan
    (all by default); ``max_samples``: check at most this many samples per dataset; ``decode=False`` skips the
    (slow) decoding check.
    """
    from vlmkit.assemble import build_offering
    from vlmkit.registry import DATASETS

    model = model if model is not None else build_contract_model(cfg)
    contract = model.data_contract()
    report = DataReport(max_length=getattr(model, "max_length", None))
    names = list(splits) if splits else [str(k) for k in cfg.datasets]
    for name in names:
        if name not in cfg.datasets:
            raise DataError(f"no dataset '{name}' in the config (datasets: {', '.join(map(str, cfg.datasets))})")
        dataset = build_offering(DATASETS, cfg.datasets[name], f"datasets.{name}", contract=contract)
        check_dataset(name, dataset, report, max_samples, decode)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``vlmkit data validate CFG [key=value ...] [--split S] [--max-samples N] [--no-decode] [--json OUT]``;
    returns 0 when every checked sample is usable, 1 otherwise."""
    from vlmkit.config import load_config

    parser = argparse.ArgumentParser(prog="vlmkit data validate", description=__doc__.splitlines()[0])
    parser.add_argument("cfg", help="experiment YAML with model and datasets sections")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--split", action="append", help="dataset key to check (repeatable; default: all)")
    parser.add_argument("--max-samples", type=int, default=None, help="check at most N samples per dataset")
    parser.add_argument("--no-decode", action="store_true", help="skip decoding the media (faster)")
    parser.add_argument("--json", default=None, help="also write the full report as JSON to this file")
    args = parser.parse_args(argv)
    cfg = load_config(args.cfg, args.overrides)
    report = validate_data(cfg, splits=args.split, max_samples=args.max_samples, decode=not args.no_decode)
    print(report.table())
    for problem in report.problems[:50]:
        print(f"  {problem['dataset']} {problem['id']} [{problem['kind']}] {problem['reason']}")
    if len(report.problems) > 50:
        print(f"  ... and {len(report.problems) - 50} more (use --json for the full list)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.to_dict(), out, indent=1)
    return 0 if report.ok else 1
