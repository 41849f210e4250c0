"""Training and evaluation read a frozen-feature cache (``run.feature_cache`` / ``evaluation.feature_cache``: the
folder ``vlmkit cache-features`` wrote) instead of decoding videos and running the frozen modules.

``attach`` checks the cache against this run before anything is read: the cached modules must still be fixed
functions here (frozen, no text or batch inputs, no frame selector), their weights and settings must hash as they
did (``vlmkit.models.cached_prefix``), the features must have been computed under this run's precision, and every
dataset of the run must read the same frames (sampler, frame count, image size, crop, statistics:
``vlmkit.data.feature_cache.variant``) from videos that are all in the cache. Anything else is refused with what
differs and how to rebuild. Then the datasets serve the cached features and the model runs only the stages after
them: the same losses and predictions as without the cache (tests/runners/test_feature_cache.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from vlmkit.data.feature_cache.serve import serve, variant_problems, video_datasets
from vlmkit.data.feature_cache.store import FeatureCacheReader
from vlmkit.dtypes import precision_name
from vlmkit.errors import ConfigError
from vlmkit.models.cached_prefix import config_path, fixed_function, key_differences, prefix_key, prefix_modules


def rebuild_hint(folder: Path | str, manifest: Mapping[str, Any]) -> str:
    return (f"rebuild it for this config: vlmkit cache-features CONFIG [KEY=VALUE ...] --output {folder} --overwrite "
            f"(it was built by: {manifest.get('built_by', 'unknown')}), or leave the feature cache unset")


def model_problems(model: Any, cached: Mapping[int, int]) -> list[str]:
    """Why this model cannot take the cached features of ``cached`` (branch -> depth) at all."""
    if not hasattr(model, "use_cached_features"):
        return [f"the model ({type(model).__name__}) cannot read cached features (only video_llm models can)"]
    problems = []
    if getattr(model, "selector", None) is not None:
        problems.append("model.selector: a frame selector reads the pixels before any encoder runs")
    for branch, depth in cached.items():
        if branch not in model.pixel_branches or depth > len(model.branches[branch].stages):
            problems.append(f"model.branches[{branch}]: the cache holds its features after {depth} stage(s), but "
                            f"this model has no such pixel branch or stage")
            continue
        for path, module in prefix_modules(model, branch, depth):
            if not fixed_function(module):
                problems.append(f"{config_path(path)}: cached, but in this run it trains (or leaves eval mode in training); "
                                f"freeze it or leave the feature cache unset")
    return problems


def attach(folder: str, model: Any, datasets: Mapping[str, Any], splits: Sequence[str], *,
           model_config: Optional[Mapping], precision: str, section: str,
           say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Check the cache at ``folder`` against this run and make the datasets of ``splits`` and the model use it;
    returns what is served (branches and depths, clips per dataset)."""
    key = f"{section}.feature_cache"
    reader = FeatureCacheReader(folder)
    manifest = reader.manifest
    rebuild = rebuild_hint(folder, manifest)
    cached = {int(branch): int(entry["depth"]) for branch, entry in manifest["model"].items()}
    structural = model_problems(model, cached)  # the model cannot take these features at all
    problems = list(structural)
    if manifest["precision"] != precision_name(precision):
        problems.append(f"precision: the features were computed under {manifest['precision']}, this run uses "
                        f"{precision_name(precision)} ({section}.precision)")
    if not structural:
        problems += key_differences(manifest["model"], prefix_key(model, cached, model_config))
    positions = [] if structural else [model.pixel_branches.index(branch) for branch in sorted(cached)]
    served = [(where, dataset) for split in splits for where, dataset in video_datasets(datasets[split],
                                                                                        f"datasets.{split}")]
    if positions:
        problems += [line for where, dataset in served
                     for line in variant_problems(dataset, where, reader, positions)]
    if problems:
        raise ConfigError(key, f"the feature cache {folder} does not match this run:\n  - "
                               + "\n  - ".join(problems) + f"\n{rebuild}")
    clips = {where: serve(dataset, where, reader, positions) for where, dataset in served}
    model.use_cached_features(cached)
    stages = ", ".join(f"branch {b}: encoder + {d} stage(s)" for b, d in sorted(cached.items()))
    say(f"feature cache {folder}: {stages} read from the cache for {sum(clips.values())} videos "
        f"({', '.join(f'{w}: {n}' for w, n in clips.items())})")
    return {"folder": str(folder), "branches": cached, "clips": clips}
