"""``schema_index.json``: reading it, and the transformers config key sets it holds (``HFConfig`` checks).

A module of its own below ``vlmkit.schema`` and ``vlmkit.schema_index`` (both read the file; neither may import the
other's reader). The key sets are used only when they were read from the installed transformers version; otherwise
they are read from transformers itself.
"""
from __future__ import annotations

import functools
import importlib.metadata
import inspect
import json
import pathlib
import re
import sys
import warnings

INDEX_PATH = pathlib.Path(__file__).resolve().parent / "schema_index.json"
FORMAT = 3  # 3: files keyed on what the index depends on in them (schema_index_deps)
REGENERATE = "python -m vlmkit.tools.schema_index"


@functools.lru_cache(maxsize=1)
def load_index() -> dict | None:
    """The index, or None (missing, unreadable or of another format)."""
    try:
        index = json.loads(INDEX_PATH.read_text())
    except (OSError, ValueError):
        return None
    return index if index.get("format") == FORMAT else None


@functools.lru_cache(maxsize=1)
def _installed_transformers() -> str | None:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def _hf_part() -> dict | None:
    index = load_index()
    if index is None or index["hf"]["transformers"] != _installed_transformers():
        return None
    return index["hf"]


# Older spellings transformers still reads (and converts) on some config classes, each with a value to try.
LEGACY_CONFIG_KEYS = {"torch_dtype": "float32", "rope_theta": 10000.0, "rope_scaling": {"rope_type": "linear",
                                                                                        "factor": 2.0}}


def config_class_keys(config_class: type) -> set[str]:
    """Keys a transformers config class has: its constructor's parameters, the attributes of a default instance
    (the shared PretrainedConfig ones too), its attribute aliases, and the older spellings it converts (a key it
    does not keep as given: an unknown key would be kept as an attribute)."""
    keys = set(config_class().to_dict())
    keys |= {p for p, param in inspect.signature(config_class.__init__).parameters.items()
             if p != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)}
    keys |= set(getattr(config_class, "attribute_map", {}))
    keys |= _read_by_model_code(config_class)
    for key, value in LEGACY_CONFIG_KEYS.items():
        if key not in keys:
            try:
                with warnings.catch_warnings():  # transformers warns that the older spelling is deprecated
                    warnings.simplefilter("ignore")
                    kept = key in config_class(**{key: value}).to_dict()
            except Exception:  # noqa: BLE001 - a class that refuses the value does not read the key either
                kept = True
            if not kept:
                keys.add(key)
    return keys


_CONFIG_READS = re.compile(r"""\bconfig\.([A-Za-z_]\w*)|getattr\(\s*(?:self\.)?config,\s*["']([A-Za-z_]\w*)["']""")


def _read_by_model_code(config_class: type) -> set[str]:
    """Attributes the model family's modeling code reads from its config (``config.x``, ``getattr(config, "x"``)
    that the class does not declare, e.g. T5's ``decoder_start_token_id``."""
    folder = pathlib.Path(sys.modules[config_class.__module__].__file__).parent
    names = set()
    for path in folder.glob("modeling_*.py"):
        names |= {a or b for a, b in _CONFIG_READS.findall(path.read_text())}
    return {n for n in names if not callable(getattr(config_class, n, None)) and not n.startswith("_")}


@functools.lru_cache(maxsize=None)
def hf_config_keys(class_name: str) -> frozenset[str] | None:
    """The keys of the transformers config class ``class_name`` (None: transformers has no such class)."""
    part = _hf_part()
    if part is not None and class_name in part["configs"]:
        return frozenset(part["configs"][class_name])
    import transformers

    config_class = getattr(transformers, class_name, None)
    return None if config_class is None else frozenset(config_class_keys(config_class))


@functools.lru_cache(maxsize=None)
def hf_model_type_class(model_type: str) -> str | None:
    """The config class name of a transformers model type ('llama' -> 'LlamaConfig'); None if unknown."""
    part = _hf_part()
    if part is not None and model_type in part["model_types"]:
        return part["model_types"][model_type]
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return CONFIG_MAPPING_NAMES.get(model_type)
