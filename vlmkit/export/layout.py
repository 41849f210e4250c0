"""The self-contained export folder (``vlmkit export --format vlmkit``) and how it is read back.

```
DIR/vlmkit_export.json   format, version, where it came from, what was merged, generation settings, the seed,
                         the config keys holding paths inside DIR, and every file's sha256
DIR/config.yaml          the run's resolved config; its model section builds from architecture alone
DIR/model.safetensors    every parameter and persistent buffer of the model (LoRA merged)
DIR/tokenizers/<key>/    each tokenizer the model reads (the LLM's with the visual placeholder token added)
```

Only core modules are imported here, so ``vlmkit.assemble`` can read an export without the export tooling.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from vlmkit.errors import ConfigError

FORMAT = "vlmkit-export"
VERSION = 1
MANIFEST = "vlmkit_export.json"
CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"


def is_export(path: Any) -> bool:
    return (Path(str(path)) / MANIFEST).is_file()


def set_key(tree: dict, key: str, value: Any) -> None:
    """Set a dotted key (list items by number: ``branches.0.stages.1.tokenizer``) of a nested config."""
    *parents, leaf = key.split(".")
    node: Any = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value


def get_key(tree: dict, key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    return node


def read_export(path: Any, verify: bool = True) -> tuple[dict, dict]:
    """(config, manifest) of an export folder; the config's in-folder paths made absolute. ``verify``: refuse a
    file whose sha256 differs from the manifest's (a torn copy or an edit)."""
    from omegaconf import OmegaConf

    from vlmkit.tools.checksums import sha256_of

    folder = Path(str(path))
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT or int(manifest.get("version", 0)) > VERSION:
        raise ConfigError("export", f"{folder / MANIFEST} is not a {FORMAT} manifest of version <= {VERSION} "
                                    f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})")
    if verify:
        bad = []
        for name, record in manifest["files"].items():
            file = folder / name
            if not file.is_file():
                bad.append(f"  {name}: missing")
            elif sha256_of(file) != record["sha256"]:
                bad.append(f"  {name}: sha256 {sha256_of(file)}, the manifest says {record['sha256']}")
        if bad:
            raise ConfigError("export", f"{folder} does not hold the files its manifest lists:\n" + "\n".join(bad)
                                        + "\nExport the run again")
    config = OmegaConf.to_container(OmegaConf.load(folder / CONFIG), resolve=False)
    for key in manifest.get("relative_paths", []):
        set_key(config, key, str(folder / get_key(config, key)))
    return config, manifest


def generation_of(manifest: Optional[dict]) -> dict[str, Any]:
    return dict((manifest or {}).get("generation") or {})
