"""CPU of a cold ``vlmkit validate`` of a full-size recipe, against the interpreter and the import-everything path.

  python benchmarks/cold_validate.py [--config train_configs/pllava/finetune_7b.yaml] [--rounds 3]

Every run is a fresh interpreter (cold: nothing imported), so its CPU is the child's user + system time. Sides,
interleaved by ``harness.compare``:

- ``import_vlmkit``: ``python -c "import vlmkit"``, the floor any command pays (the baseline of the ratios);
- ``validate``: ``vlmkit validate --skip-files CONFIG`` as shipped (names and signatures from the schema index);
- ``validate_importing``: the same with the schema index switched off, so every registry imports all its component
  modules (torch, transformers) as before the index.

The outputs must match ("OK" from both validations) before anything is timed. The target is under 1.5 s of CPU
for ``validate``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import compare  # noqa: E402

VALIDATE = "from vlmkit.cli import main; raise SystemExit(main(['validate', '--skip-files', {config!r}]))"
NO_INDEX = ("from vlmkit import schema_index, schema_index_file; "
            "schema_index.load_index = schema_index_file.load_index = lambda: None; ")


def run(code: str) -> str:
    """The first word of what a fresh interpreter prints running ``code`` ('OK'), and its exit status."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    words = (result.stdout or result.stderr).split()
    return f"{result.returncode} {words[0] if words else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="train_configs/pllava/finetune_7b.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from vlmkit import schema_index
    from vlmkit.registry import ALL

    # a stale part of the index (a schema edited since it was generated) makes that registry import its modules
    stale = [kind for kind, reg in ALL.items() if schema_index.registry_part(kind, reg.locations) is None]
    validate = VALIDATE.format(config=args.config)
    sides = {"import_vlmkit": lambda: run("import vlmkit"),
             "validate": lambda: run(validate),
             "validate_importing": lambda: run(NO_INDEX + validate)}
    outputs = {name: side() for name, side in sides.items()}
    assert outputs["validate"] == outputs["validate_importing"] == "0 OK", outputs
    result = compare(sides, args.rounds, same=lambda a, b: True)  # the validations' outputs were checked above
    result["config"] = args.config
    result["stale_index_parts"] = stale  # should be []: else regenerate (python -m vlmkit.tools.schema_index)
    result["validate_cpu_s"] = result["validate"]["cpu_s"]
    result["speedup_over_importing"] = round(result["validate_importing"]["cpu_s"] / result["validate"]["cpu_s"], 2)
    result["target_met"] = result["validate"]["cpu_s"] < 1.5
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
