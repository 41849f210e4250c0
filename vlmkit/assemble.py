"""Config -> model, datasets, runner: the one place train.py and evaluate.py share."""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vlmkit.config import to_dict
from vlmkit.protocols import StatesDataContract
from vlmkit.registry import DATASETS, MODELS, RUNNERS, Registry
from vlmkit.schema import signature_of


def build_offering(reg: Registry, cfg: Any, path: str, **available: Any) -> Any:
    """Build a component, passing it those of ``available`` (the model, the data contract...) it asks for."""
    return reg.build_offering(cfg, path, **available)


def build_model(cfg: DictConfig) -> Any:
    return MODELS.build(cfg.model, path="model")


def build_datasets(cfg: DictConfig, model: Any) -> dict[str, Any]:
    """Each dataset is built against the model's data contract (tokenizer, template, token counts)."""
    contract = model.data_contract() if isinstance(model, StatesDataContract) else None
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


@dataclass
class TrainedModel:
    """A trained model as evaluation builds it: the model (eval mode, on the CPU), the run's resolved config, the
    checkpoint its trainable tensors came from, what ``check_trained_model`` verified, and the seed it was built
    under."""

    model: Any
    config: dict
    checkpoint: Any
    weights_check: dict
    seed: int
    generation: dict = field(default_factory=dict)  # default generation settings (an export records its own)


def build_trained_model(spec: str, *, trust_imports: bool = False, allow_changed_weights: bool = False,
                        seed: int | None = None, say: Any = None) -> TrainedModel:
    """The model a run trained, built exactly as ``evaluate.py`` builds it from an evaluation config without a model
    section: the checkpoint's saved model config, its weight files checked before the build, the evaluator's seed
    (the random init of anything no weight file fills), the trainable tensors loaded strictly (``load_trained``).

    ``spec``: a run directory, its ``checkpoints`` folder or one checkpoint (a self-contained one: its manifest
    holds the config), or a folder ``vlmkit export`` wrote (``build_exported_model``). The run's ``imports`` run
    code, so they are imported only with ``trust_imports``.
    """
    from vlmkit.errors import ConfigError
    from vlmkit.export.layout import is_export
    from vlmkit.runners import checkpoint as ckpt
    from vlmkit.runners.rng import seed_everything
    from vlmkit.runners.trained_model import check_trained_model, load_trained, saved_run_config

    say = say or (lambda text: None)
    if is_export(spec):
        return build_exported_model(spec, trust_imports=trust_imports, seed=seed)
    path = ckpt.resolve(str(spec), str(spec), key="run")
    manifest = ckpt.read_manifest(path)
    config = saved_run_config(path, manifest)
    if not config or not config.get("model"):
        raise ConfigError("checkpoint", f"{path} records no model config (neither its manifest nor a run config "
                                        f"next to it): nothing to build the model from")
    check_imports(config, trust_imports)
    checks = dict(allow_config_mismatch=False, ignore=[], allow_changed_weights=allow_changed_weights)
    check_trained_model(path, manifest, config["model"], **checks)  # before anything heavy is built
    if seed is None:
        seed = RUNNERS.parameters("evaluator")["seed"].default
    seed_everything(seed)
    model = MODELS.build(OmegaConf.create(config["model"]), path="model")
    checkpoint, report = load_trained(model, str(path), config["model"], say=say, **checks)
    return TrainedModel(model.eval(), config, checkpoint, report, seed)


def check_imports(config: dict, trust_imports: bool) -> None:
    """Import a saved config's ``imports`` (they run code): only with ``trust_imports``."""
    from vlmkit.errors import ConfigError
    from vlmkit.plugins import import_modules

    imports = [str(m) for m in (config.get("imports") or [])]
    if imports and not trust_imports:
        raise ConfigError("trust_imports", f"the run's saved config imports {imports}, and importing a module runs "
                                           f"its code; pass trust_imports=True (--trust-imports) if you trust them")
    import_modules(imports)


def build_exported_model(folder: Any, *, trust_imports: bool = False, seed: int | None = None) -> TrainedModel:
    """The model of a ``vlmkit export`` folder (``vlmkit.export.layout``): its files checked against the manifest,
    the model built from the folder's config (architecture only, tokenizers inside the folder) and every tensor
    loaded strictly from its ``model.safetensors``; the generation settings are the export's."""
    from safetensors.torch import load_model

    from vlmkit.export.layout import WEIGHTS, generation_of, read_export
    from vlmkit.runners.rng import seed_everything

    config, manifest = read_export(folder)
    check_imports(config, trust_imports)
    seed = manifest.get("seed", 0) if seed is None else seed
    seed_everything(seed)
    model = MODELS.build(OmegaConf.create(config["model"]), path="model")
    load_model(model, os.path.join(str(folder), WEIGHTS), strict=True)
    return TrainedModel(model.eval(), config, folder, {"export": str(folder), "notes": manifest.get("notes", [])},
                        seed, generation_of(manifest))
