"""Pseudo-label spans for VideoTGB's sampler: ``python -m vlmkit.tools.tgb_pseudo_labels --cfg-path X.yaml``.

A command (entry level): it builds the config's model and dataset through ``vlmkit.assemble`` and writes the label
file ``{sample id: [start, end]}`` that ``tgb_inputs`` reads; the procedure is
``vlmkit.models.selectors.pseudo_labels``. The dataset must be built for generation (``train: false``) and carry
``answer`` in its meta.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Optional

from vlmkit.models.selectors.pseudo_labels import pseudo_labels

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmkit.tools.tgb_pseudo_labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="experiment YAML with model and datasets sections")
    parser.add_argument("--dataset", required=True, help="key under datasets: to label (built with train: false)")
    parser.add_argument("--out", required=True, help="label file to write (JSON)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="label only the first N samples")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args(argv)

    from vlmkit.assemble import build_datasets, build_model
    from vlmkit.config import load_config

    cfg = load_config(args.cfg_path, list(args.overrides))
    model = build_model(cfg)
    datasets: dict[str, Any] = build_datasets(cfg, model)
    if args.dataset not in datasets:
        raise SystemExit(f"--dataset {args.dataset!r}: the config has datasets {sorted(datasets)}")
    labels = pseudo_labels(model, datasets[args.dataset], args.max_new_tokens, args.limit)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(labels, handle, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {len(labels)} pseudo-label spans to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
