"""Prediction provenance: the fingerprint of what produced a dataset's predictions.

A fingerprint is a plain dict (written next to the predictions and into ``results.json``) of

- ``weights``: the evaluated checkpoint's tensor file and every weight source the model config names (a file,
  a vlmkit run, or a folder such as a transformers LLM: every file in it), each with its sha256;
- ``model``: the resolved model config, and ``seed`` (a model built without weight files is random from it);
- ``generation``: the evaluator's generation settings and precision, and ``task``: the task config (without
  its ``metrics``: scoring is redone from the records on every run);
- ``prompt``: the chat template's name and a probe conversation rendered by it;
- ``data``: the dataset config and the sha256 of every file it names (annotation JSON; media folders are not
  read, the media path of each sample is in its sample hash).

Its ``digest`` is stored in every prediction record, together with the record's ``sample_hash`` (the sample's
meta as the dataset yields it: id, question, options, answer, media path...).  Resume reuses a record only
when both match the current run.

Weight files are hashed by streaming, once per process for a given (path, size, mtime).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER
from vlmkit.errors import VlmkitError
from vlmkit.protocols import StatesDataContract
from vlmkit.tools.checksums import sha256_of

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf"}
PROBE = [{"from": "system", "value": "SYSTEM"}, {"from": "human", "value": f"{VIDEO_PLACEHOLDER}\nQUESTION"}]
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


class StalePredictionsError(VlmkitError, RuntimeError):
    """Earlier predictions in the output directory were made by something else than the current run."""


# ---------------------------------------------------------------------------------------------- hashing
def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in chunks; cached by (path, size, mtime) so one process hashes it once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = sha256_of(path)
    return _FILE_HASHES[key]


def json_sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def sample_hash(meta: Mapping[str, Any]) -> str:
    """The content hash of one sample: its meta dict (what its prediction record is built from)."""
    return json_sha256(dict(meta))[:16]


def path_digest(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "sha256"}`` of a file; of a folder, one hash over its files (a vlmkit run: its latest
    checkpoint's tensor file only, since a run folder holds every step)."""
    path = Path(path)
    if path.is_file():
        return {"path": str(path), "sha256": file_sha256(path)}
    checkpoint = vlmkit_weights_file(path)
    if checkpoint is not None:
        return {"path": str(path), "file": str(checkpoint), "sha256": file_sha256(checkpoint)}
    listing = folder_listing(path)
    return {"path": str(path), "files": len(listing), "sha256": json_sha256(listing)}


def folder_listing(path: Path) -> list[tuple[str, str]]:
    """(relative name, sha256) of every file under a folder but hidden ones, sorted by name."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                        p.relative_to(path).parts))
    return [(str(p.relative_to(path)), file_sha256(p)) for p in files]


def vlmkit_weights_file(folder: Path) -> Optional[Path]:
    """The tensor file of a vlmkit checkpoint, run folder or checkpoints folder (None for other folders)."""
    for candidate in (folder, folder / "checkpoints"):
        if (candidate / "model.safetensors").is_file() and (candidate / "manifest.json").is_file():
            return candidate / "model.safetensors"
        pointer = candidate / "latest"
        if pointer.is_file():
            target = candidate / pointer.read_text().strip() / "model.safetensors"
            if target.is_file():
                return target
    return None


def is_weight_folder(folder: Path) -> bool:
    """A vlmkit run or checkpoint, or a folder of model files (a transformers folder: config.json, weights)."""
    return folder.is_dir() and (vlmkit_weights_file(folder) is not None or any(
        p.suffix in WEIGHT_SUFFIXES or p.name == "config.json" for p in folder.iterdir()))


def named_paths(config: Any, prefix: str, files_only: bool = False) -> dict[str, str]:
    """Config keys whose string value names an existing file (or weight folder, unless ``files_only``); a
    name that happens to match some other folder (``vlmkit``, ``output``) is not a weight source."""
    found = {}
    for key, value in flatten(config, prefix).items():
        if isinstance(value, str) and value and os.path.exists(value):
            if os.path.isfile(value) or (not files_only and is_weight_folder(Path(value))):
                found[key] = value
    return found


# ---------------------------------------------------------------------------------------------- fingerprint
def weights_of(checkpoint: Optional[Path], model_config: Any) -> dict[str, Any]:
    """``checkpoint`` must be one the evaluator loaded through ``checkpoint.resolve``, which checked every file
    against its manifest: the manifest's sha256 is then the file's, and the file is not read a second time."""
    weights = {key: path_digest(value) for key, value in named_paths(model_config, "model").items()}
    if checkpoint is not None:
        weights["evaluation.checkpoint"] = {"path": str(checkpoint), "sha256": _checkpoint_sha256(checkpoint)}
    return weights


def _checkpoint_sha256(checkpoint: Path) -> str:
    from vlmkit.runners.checkpoint import read_manifest

    recorded = read_manifest(checkpoint).get("files", {}).get("model.safetensors", {}).get("sha256")
    return recorded or file_sha256(checkpoint / "model.safetensors")  # manifests before version 2 have none


def prompt_of(model: Any) -> Optional[dict[str, str]]:
    """The template's name and a probe conversation as it renders it (None for a model without a contract)."""
    if not isinstance(model, StatesDataContract):
        return None
    contract = model.data_contract()
    rendered = contract.template.render(PROBE, add_generation_prompt=True, tokenizer=contract.tokenizer)
    return {"template": getattr(contract.template, "name", "") or type(contract.template).__name__,
            "probe": rendered.text}


def data_of(dataset_config: Any, dataset: Any) -> dict[str, Any]:
    """The dataset's config and its files' hashes; without a config, its type and size."""
    if dataset_config is None:
        return {"type": type(dataset).__name__, "size": len(dataset)}
    files = {key: {"path": value, "sha256": file_sha256(value)}
             for key, value in named_paths(dataset_config, "dataset", files_only=True).items()}
    return {"config": dataset_config, "files": files}


def fingerprint(*, weights: dict, model_config: Any, seed: int, generation: dict, task_config: Any,
                prompt: Optional[dict], data: dict) -> dict[str, Any]:
    task = ({k: v for k, v in task_config.items() if k != "metrics"} if isinstance(task_config, Mapping)
            else task_config)
    return {"weights": weights, "model": model_config, "seed": seed, "generation": generation, "task": task,
            "prompt": prompt, "data": data}


def digest(print_: Mapping[str, Any]) -> str:
    return json_sha256(print_)[:16]


ABSENT = object()  # a leaf one side of a diff does not have


def leaf_differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf that differs, ``ABSENT`` for a missing side, sorted."""
    a, b = flatten(old, prefix), flatten(new, prefix)
    return [(key, a.get(key, ABSENT), b.get(key, ABSENT)) for key in sorted(set(a) | set(b))
            if key not in a or key not in b or a[key] != b[key]]


def fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Readable lines for every differing leaf, at most ``limit`` of them."""
    def shown(value: Any) -> str:
        return "(absent)" if value is ABSENT else repr(value)

    lines = [f"  {key}: {shown(a)} -> {shown(b)}" for key, a, b in leaf_differences(old, new)]
    if len(lines) > limit:
        lines = lines[:limit] + [f"  ... and {len(lines) - limit} more"]
    return lines


# ---------------------------------------------------------------------------------------------- files, messages
FINGERPRINT_GLOB = "fingerprint-*.json"
OPTIONS = ("Choose one: a new evaluation.output_dir; evaluation.resume: false (delete this output directory's "
           "predictions and start over); or evaluation.on_stale_predictions: recompute (replace only the "
           "predictions that do not match).")


def write_fingerprint(shard_dir: Path, digest_: str, print_: Mapping[str, Any]) -> Path:
    """``fingerprint-<digest>.json`` next to the records carrying that digest (kept for later diffs)."""
    path = shard_dir / f"fingerprint-{digest_}.json"
    if not path.is_file():
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(print_, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    return path


def rewrite_records(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    os.replace(tmp, path)


def stale_message(shard_dir: Path, stale: list[dict], total: int, current: Mapping[str, Any]) -> str:
    """Why ``stale`` records of ``shard_dir`` are not this run's: a diff per earlier fingerprint, and the options."""
    lines = [f"{shard_dir}: {len(stale)} of the {total} predictions there were not made by this run, so they "
             f"cannot be reused or reported as its own."]
    for old in sorted({str(r.get("fingerprint")) for r in stale})[:3]:
        path = shard_dir / f"fingerprint-{old}.json"
        if old == "None" or not path.is_file():
            lines.append("  (no fingerprint recorded with them: made by an older vlmkit, or the file was deleted)")
            continue
        lines.append(f"What differs from {path.name} (earlier -> now):")
        lines += fingerprint_diff(json.loads(path.read_text()), current) or ["  (nothing: a hash collision?)"]
    return "\n".join([*lines, OPTIONS])


def changed_samples_message(shard_dir: Path, pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> str:
    """Samples whose content changed since their prediction: (earlier record, current meta) pairs."""
    lines = [f"{shard_dir}: {len(pairs)} sample(s) changed since their prediction was made:"]
    for record, meta in pairs[:5]:
        fields = [f"{k}: {record.get(k)!r} -> {v!r}" for k, v in meta.items() if record.get(k) != v]
        lines.append(f"  {meta['id']}: " + ("; ".join(fields) or "content hash differs"))
    return "\n".join([*lines, OPTIONS])


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts / lists as ``{"a.b[0].c": leaf}``."""
    if isinstance(value, Mapping):
        items = {}
        for key, sub in value.items():
            items.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return items or {prefix: {}}
    if isinstance(value, (list, tuple)):
        items = {}
        for i, sub in enumerate(value):
            items.update(flatten(sub, f"{prefix}[{i}]"))
        return items or {prefix: []}
    return {prefix: value}
