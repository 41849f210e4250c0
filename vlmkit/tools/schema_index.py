"""Write ``vlmkit/schema_index.json`` from the real registrations: ``python -m vlmkit.tools.schema_index``
(``--check``: exit 1 when the committed index differs from a new one in anything but content hashes).

See ``vlmkit.schema_index`` for what the index holds and when it is used.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional

from vlmkit.registry import ALL, Registry, _import_location
from vlmkit.schema_index import (CORE_FILES, PACKAGE, Unindexable, _Encoder, _merge, _registers, file_hash, file_key,
                                 location_files)
from vlmkit.schema_index_deps import closure
from vlmkit.schema_index_file import (FORMAT, INDEX_PATH, REGENERATE, _installed_transformers, config_class_keys,
                                      load_index)

# Model types whose config keys are indexed besides those of shipped presets (others read transformers).
COMMON_MODEL_TYPES = ("gemma", "gemma2", "llama", "mistral", "opt", "phi3", "qwen2", "qwen3", "t5")


def _shipped_model_types() -> set[str]:
    """``arch`` values of the shipped model presets (the LLM model types recipes use)."""
    import yaml

    found = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("arch"), str):
                found.add(node["arch"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((PACKAGE / "configs").rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()))
    return found


def generate() -> dict:
    """A fresh index from the real registrations (imports every built-in component: run it in a new process)."""
    registering: dict[int, str] = {}  # id(obj) -> the module whose import registered it
    real_add = Registry.add

    def recording_add(self, name, obj, **kwargs):
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__") == "vlmkit.registry":
            frame = frame.f_back
        registering.setdefault(id(obj), frame.f_globals.get("__name__", "") if frame else "")
        return real_add(self, name, obj, **kwargs)

    Registry.add = recording_add
    try:
        for reg in ALL.values():
            reg._loaded = True  # import the modules themselves, never list from an index
            for location in reg.locations:
                _import_location(location)
    finally:
        Registry.add = real_add
    encoder = _Encoder()
    registries = {}
    for kind, reg in ALL.items():
        files = sorted(f for location in reg.locations for f in (location_files(location) or []))
        module_names = {f[:-3].replace("/", ".").removesuffix(".__init__") for f in files}
        encoder.roots = {}
        entries = {}
        for entry in reg.entries():
            module = registering.get(id(entry.obj)) if entry.obj is not None else None
            if module not in module_names:
                continue  # a plug-in's or a test's component: not the package's to index
            try:
                spec = encoder.spec(entry.obj)
            except Unindexable:
                spec = None
            entries[entry.name] = {"module": module, "aliases": list(entry.aliases),
                                   "description": entry.description, "spec": spec}
        roots = {rel: set() for rel in files}  # every location file: its registrations
        _merge(roots, encoder.roots)
        tracked = closure(roots, CORE_FILES)
        # a location module that registers nothing and defines nothing the entries read is "plain": it may change
        # or go freely (a new one like it keeps the index fresh too, see schema_index._fresh); its content hash only
        # spares reading it while it is unchanged, and --check ignores it
        used = {rel: names for rel, names in tracked.items() if names or _registers(rel)}
        registries[kind] = {"locations": list(reg.locations),
                            "files": {rel: [file_hash(rel), sorted(names), file_key(rel, tuple(sorted(names)))]
                                      for rel, names in sorted(used.items())},
                            "plain": {rel: file_hash(rel) for rel in sorted(set(tracked) - set(used))},
                            "entries": entries}
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    import transformers

    model_types = {t: CONFIG_MAPPING_NAMES[t] for t in sorted(_shipped_model_types() | set(COMMON_MODEL_TYPES))
                   if t in CONFIG_MAPPING_NAMES}
    classes = sorted(encoder.hf_classes | set(model_types.values()))
    configs = {name: sorted(config_class_keys(getattr(transformers, name))) for name in classes}
    return {"format": FORMAT, "registries": registries, "structs": encoder.structs,
            "hf": {"transformers": _installed_transformers(), "model_types": model_types, "configs": configs}}


def render(index: dict) -> str:
    return json.dumps(index, indent=1, sort_keys=True) + "\n"


def without_content_hashes(index: dict) -> dict:
    """The index less the files' content hashes, which change with any edit, and the plain modules' list: what
    ``--check`` compares."""
    return {**index, "registries": {kind: {**{k: v for k, v in part.items() if k != "plain"},
                                           "files": {rel: rec[1:] for rel, rec in part["files"].items()}}
                                    for kind, part in index["registries"].items()}}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed index is not up to date")
    args = parser.parse_args(argv)
    index = generate()
    if args.check:
        committed = load_index()
        if committed is None or without_content_hashes(committed) != without_content_hashes(index):
            print(f"{INDEX_PATH} is out of date (a registration, signature or HF key set changed): run "
                  f"{REGENERATE}", file=sys.stderr)
            return 1
        return 0
    INDEX_PATH.write_text(render(index))
    print(f"wrote {INDEX_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
