"""Every YAML shipped in the repo loads and validates (this test grows with the repo)."""
from pathlib import Path

import pytest

from vlmkit.config import CONFIG_ROOT, _expand_presets, _load_with_defaults, load_config
from vlmkit.registry import registry

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted([*ROOT.glob("train_configs/**/*.yaml"), *ROOT.glob("eval_configs/**/*.yaml")])
PRESETS = sorted(CONFIG_ROOT.rglob("*.yaml"))


def _kind_of_preset(path: Path) -> str:
    """configs/datasets/* are dataset presets; configs/models/<kind>/* presets of that registry; else models."""
    rel = path.relative_to(CONFIG_ROOT).parts
    if rel[0] == "datasets":
        return "datasets"
    if len(rel) > 2 and rel[1] in ("encoders", "adapters", "poolers", "selectors", "llms", "templates"):
        return rel[1]
    return "models"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_config_validates(path):
    purpose = "train" if path.relative_to(ROOT).parts[0] == "train_configs" else "eval"
    load_config(path, purpose=purpose)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: str(p.relative_to(CONFIG_ROOT)))
def test_preset_validates(path):
    kind = _kind_of_preset(path)
    search = CONFIG_ROOT / ("datasets" if kind == "datasets" else "models")
    cfg = _expand_presets(_load_with_defaults(path, search, str(path)), search, path.parent, "")
    problems = registry(kind).check(cfg, str(path.relative_to(CONFIG_ROOT)))
    # dataset presets may leave required per-experiment values (paths) to the experiment
    problems = [p for p in problems if not (kind == "datasets" and "missing required key" in p.message)]
    assert not problems, "\n".join(map(str, problems))


def test_no_home_directory_paths_in_shipped_configs():
    for path in [*EXPERIMENTS, *PRESETS]:
        text = path.read_text()
        assert "/home/" not in text and "~/" not in text and "/Users/" not in text, path
