"""Config -> model, datasets, runner: the one place train.py and evaluate.py share."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vlmkit.config import to_dict
from vlmkit.registry import DATASETS, MODELS, RUNNERS, Registry
from vlmkit.schema import signature_of


def build_offering(reg: Registry, cfg: Any, path: str, **available: Any) -> Any:
    """Build a component, passing it those of ``available`` (the model, the data contract...) it asks for."""
    return reg.build_offering(cfg, path, **available)


def build_model(cfg: DictConfig) -> Any:
    return MODELS.build(cfg.model, path="model")


def build_datasets(cfg: DictConfig, model: Any) -> dict[str, Any]:
    """Each dataset is built against the model's data contract (tokenizer, template, token counts)."""
    contract = model.data_contract() if hasattr(model, "data_contract") else None
    return {str(key): build_offering(DATASETS, entry, f"datasets.{key}", contract=contract)
            for key, entry in cfg.datasets.items()}


def in_evaluation_mode(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose datasets are in evaluation mode (``train: false``: deterministic frames,
    generation prompt without the answer), whatever their defaults say (llava_instruct, gebc... default to
    training); the resolved config handed to the runner, and so results.json, shows it."""
    cfg = copy.deepcopy(cfg)
    for key, entry in cfg.datasets.items():
        if "train" in DATASETS.parameters(Registry.name_of(entry, f"datasets.{key}")):
            cfg.datasets[key] = OmegaConf.merge(entry, {"train": False})
    return cfg


@dataclass
class Experiment:
    cfg: DictConfig
    model: Any
    datasets: dict[str, Any]
    runner: Any


def run_seed(cfg: DictConfig, section: str) -> int | None:
    """The runner's seed setting (its constructor default when the config leaves it out)."""
    runner_cfg = cfg[section]
    if "seed" in runner_cfg:
        return int(runner_cfg.seed)
    param = signature_of(RUNNERS.get(RUNNERS.name_of(runner_cfg, section))).parameters.get("seed")
    return param.default if param is not None and isinstance(param.default, int) else None


def assemble(cfg: DictConfig, section: str = "run") -> Experiment:
    """Build everything a validated config describes; ``section`` names the runner ('run' or 'evaluation')."""
    if section == "evaluation":
        cfg = in_evaluation_mode(cfg)
        from vlmkit.runners.trained_model import check_before_build

        check_before_build(cfg, section)  # the trained model, its weight files unchanged: before anything heavy
    seed = run_seed(cfg, section)
    if seed is not None:  # the model's random init is part of the experiment: same config, same weights
        from vlmkit.runners.rng import seed_everything

        seed_everything(seed)
    model = build_model(cfg)
    datasets = build_datasets(cfg, model)
    runner = build_offering(RUNNERS, cfg[section], section, model=model, datasets=datasets, config=to_dict(cfg))
    return Experiment(cfg, model, datasets, runner)
