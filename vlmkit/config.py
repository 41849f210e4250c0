"""Experiment configs: load -> defaults chain -> experiment -> CLI overrides -> validate -> resolved DictConfig.

Precedence, lowest first: constructor defaults < presets (``defaults:`` files, and ``preset:`` keys at any
depth under ``model`` or ``datasets``, e.g. ``model.preset`` or ``model.llm.preset``) < the experiment YAML <
command-line overrides.  Presets are read *after* the command line is applied, so ``model.preset=...`` on the
command line really changes which defaults load.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from vlmkit.errors import ConfigError

CONFIG_ROOT = Path(__file__).parent / "configs"
PRESET_DIRS = {"model": CONFIG_ROOT / "models", "datasets": CONFIG_ROOT / "datasets"}
META_KEYS = ("defaults", "imports")
# section -> (registry kind, shape): "one" component, or a "map" of instance name -> component
SECTIONS = {"model": ("models", "one"), "datasets": ("datasets", "map"),
            "run": ("runners", "one"), "evaluation": ("runners", "one")}
REQUIRED_SECTIONS = {"train": ("model", "datasets", "run"), "eval": ("model", "datasets", "evaluation")}
# the runner each section needs: runners declare what they are for with a class attribute ``purpose``
SECTION_PURPOSE = {"run": "train", "evaluation": "eval"}
RESOLVED_NAME = "config.yaml"
# dataset keys that name annotation files or folders, which must exist before a run starts (``check_files``)
ANNOTATION_KEYS = ("ann_path", "ann_root", "answers_path", "generic_path", "temporal_path", "consistency_path",
                   "labels_path", "video_info_path")


# ---------------------------------------------------------------------------------------------- files
def _load_yaml(path: Path, what: str) -> DictConfig:
    if not path.is_file():
        raise ConfigError(what, f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(what, f"cannot parse {path}: {err}") from err
    if not isinstance(cfg, DictConfig):
        raise ConfigError(what, f"{path} must hold a mapping at the top level, not a {type(cfg).__name__}")
    return cfg


def _preset_file(ref: Any, search_dir: Path, base_dir: Path, where: str) -> Path:
    """A preset reference is a YAML path (absolute or relative to the referring file) or a name under ``search_dir``."""
    if not isinstance(ref, str) or not ref:
        raise ConfigError(where, f"expected a preset name or a .yaml path, got {ref!r}")
    if ref.endswith((".yaml", ".yml")):
        path = Path(ref) if os.path.isabs(ref) else base_dir / ref
        if path.is_file():
            return path
        raise ConfigError(where, f"preset file '{ref}' not found (looked at {path})")
    path = search_dir / f"{ref}.yaml"
    if path.is_file() and not os.path.isabs(ref):
        return path
    available = sorted(str(p.relative_to(search_dir).with_suffix("")) for p in search_dir.rglob("*.yaml"))
    raise ConfigError(where, f"unknown preset '{ref}' (no {ref}.yaml under {search_dir}; a file path must end in "
                             f".yaml). Available presets: {', '.join(available) or '(none)'}")


def _load_with_defaults(path: Path, search_dir: Path, where: str, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load a YAML file merged over the files its ``defaults:`` list names (recursively, in order)."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(where, f"defaults chain loops: {chain}")
    cfg = _load_yaml(path, where)
    refs = cfg.pop("defaults", None)
    refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, (list, ListConfig)):
        raise ConfigError(f"{where}.defaults" if where else "defaults",
                          f"expected a list of preset names or .yaml paths, got {refs!r} (in {path})")
    layers = [_load_with_defaults(_preset_file(ref, search_dir, path.parent, f"{where}.defaults[{i}]"),
                                  search_dir, where, (*seen, path)) for i, ref in enumerate(refs)]
    return OmegaConf.merge(*layers, cfg) if layers else cfg


PRESET_DESCRIPTION_WIDTH = 90


def presets(section: str) -> list[tuple[str, str]]:
    """(name, description) of the shipped presets of ``model`` or ``datasets``: the name a ``preset:`` key takes,
    and the first sentence of the file's leading comment ('' without one)."""
    folder = PRESET_DIRS[section]
    found = []
    for path in sorted(folder.rglob("*.yaml")):
        comment = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        sentence = re.split(r"(?<=\.)\s+(?=[A-Z(])", " ".join(comment).strip(), maxsplit=1)[0]
        if len(sentence) > PRESET_DESCRIPTION_WIDTH:  # one line: cut at a word
            sentence = sentence[:PRESET_DESCRIPTION_WIDTH].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
        found.append((path.relative_to(folder).with_suffix("").as_posix(), sentence))
    return found


# ---------------------------------------------------------------------------------------------- overrides
def dotted_key(key: str) -> str:
    """A key path in either form error messages and overrides use: ``a.b[0].c`` -> ``a.b.0.c``."""
    return re.sub(r"\[(\d+)\]", r".\1", key.strip()).lstrip(".")


def parse_overrides(overrides: Iterable[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """``a.b=c`` assignments (``+a.b=c`` too, list items as ``a.0.b=c`` or ``a[0].b=c``) and ``~a.b`` deletions."""
    assignments, deletions = [], []
    for item in overrides:
        item = item.strip()
        if not item:
            continue
        if item.startswith("~"):
            deletions.append(dotted_key(item[1:].split("=", 1)[0]))
        elif "=" in item:
            key, text = item.lstrip("+").split("=", 1)
            key = dotted_key(key)
            try:  # values are read as YAML, as OmegaConf's dotlist does
                value = OmegaConf.from_dotlist([f"value={text}"])["value"]
            except OmegaConfBaseException as err:
                raise ConfigError(key, f"cannot parse the value of override '{item}': {err}") from err
            assignments.append((key, value))
        else:
            raise ConfigError(item, f"cannot read override '{item}': write key.path=value, or ~key.path to delete")
    return assignments, deletions


def _apply(cfg: DictConfig, assignments: list[tuple[str, Any]], strict: bool) -> None:
    for key, value in assignments:
        if not strict and any(part.isdigit() for part in key.split(".")):
            continue  # a list item: the list may only exist once presets are loaded
        try:
            OmegaConf.update(cfg, key, value, merge=False, force_add=True)
        except (OmegaConfBaseException, IndexError, ValueError, TypeError) as err:
            if strict:
                raise ConfigError(key, f"cannot set '{key}': {err}") from err


def _child(node: Any, part: str) -> Any:
    """``node[part]`` for a mapping key or a list index, else None."""
    if isinstance(node, DictConfig) and part in node:
        return node._get_node(part)
    if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
        return node._get_node(int(part))
    return None


def _delete(cfg: DictConfig, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = _child(node, part)
        if node is None:
            raise ConfigError(dotted, f"cannot delete '{dotted}': '{part}' is not in the config")
    if _child(node, leaf) is None:
        raise ConfigError(dotted, f"cannot delete '{dotted}': no such key")
    del node[int(leaf) if isinstance(node, ListConfig) else leaf]


# ---------------------------------------------------------------------------------------------- loading
def _expand_presets(node, search_dir: Path, base_dir: Path, where: str):
    """Put each ``preset:`` file's values under the mapping that names it, at any depth, top-down.

    The node is merged over its preset first and only then are its children expanded, so a nested
    preset chosen by the experiment or the command line replaces the one a parent preset named.
    """
    if isinstance(node, DictConfig):
        if "preset" in node and OmegaConf.is_missing(node, "preset"):
            raise ConfigError(f"{where}.preset", "value is missing ('???'): name a preset")
        ref = node.get("preset")
        if ref is not None:
            base = _load_with_defaults(_preset_file(ref, search_dir, base_dir, f"{where}.preset"),
                                       search_dir, f"{where}.preset")
            if "preset" in base:
                raise ConfigError(f"{where}.preset", f"preset '{ref}' itself sets 'preset'; a preset file "
                                                     "extends another with a 'defaults:' list instead")
            try:
                node = OmegaConf.merge(base, node)
            except (OmegaConfBaseException, TypeError) as err:
                raise ConfigError(where, f"cannot merge the config over preset '{ref}': {err} (a mapping given "
                                         "where the preset has a list, or the reverse?)") from err
        for key in list(node.keys()):
            if not OmegaConf.is_missing(node, key):  # '???' is reported by validation, with its key path
                node[key] = _expand_presets(node[key], search_dir, base_dir, f"{where}.{key}" if where else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            if not OmegaConf.is_missing(node, i):
                node[i] = _expand_presets(node[i], search_dir, base_dir, f"{where}[{i}]")
    return node


def load_config(path: str | os.PathLike, overrides: Sequence[str] = (), *, purpose: str | None = None,
                validate: bool = True, check_files: bool = False) -> DictConfig:
    """The resolved, validated experiment config of ``path`` with command-line ``overrides`` applied;
    ``check_files``: the datasets' annotation files must exist too (``vlmkit validate``)."""
    try:
        return _load_config(Path(path), overrides, purpose, validate, check_files)
    except OmegaConfBaseException as err:  # an interpolation or structure error found while merging
        key = getattr(err, "full_key", "") or ""
        if isinstance(err, MissingMandatoryValue):
            raise ConfigError(key, "value is missing ('???'): set it in the config or on the command line") from None
        raise ConfigError(key, f"{type(err).__name__}: {str(err).splitlines()[0]}") from None


def _load_config(path: Path, overrides: Sequence[str], purpose: str | None, validate: bool,
                 check_files: bool) -> DictConfig:
    cfg = _load_with_defaults(path, path.parent, "")
    assignments, deletions = parse_overrides(overrides)
    # Overrides go in before presets are read (so they can choose presets) and again after (so they win over
    # preset values, including list items such as branches.0 that only exist once a preset is loaded).
    if "model" in deletions and "model" in cfg:  # an evaluation config dropping its model: the checkpoint's
        deletions = [d for d in deletions if d != "model"]
        del cfg["model"]
    file_has_model = cfg.get("model") is not None
    _apply(cfg, assignments, strict=False)
    if not file_has_model:
        _model_from_checkpoint(cfg)
    for attempt in range(2):
        for section, search_dir in PRESET_DIRS.items():
            if isinstance(cfg.get(section), DictConfig):
                cfg[section] = _expand_presets(cfg[section], search_dir, path.parent, section)
        _apply(cfg, assignments, strict=True)
    for dotted in deletions:
        _delete(cfg, dotted)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(getattr(err, "full_key", "") or "", f"cannot resolve interpolation: {err}") from err
    if validate:
        validate_config(cfg, purpose=purpose)
    if check_files:
        problems = file_problems(cfg)
        if problems:
            raise problems[0] if len(problems) == 1 else ConfigError.many(problems)
    return cfg


def file_problems(cfg: DictConfig) -> list[ConfigError]:
    """Annotation files (``ANNOTATION_KEYS``, at any depth under ``datasets``) that do not exist, and a
    ``feature_cache`` folder of the run or evaluation section without a cache in it."""
    problems = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, DictConfig):
            for key, value in node.items():
                if key in ANNOTATION_KEYS and isinstance(value, str) and value and not os.path.exists(value):
                    problems.append(ConfigError(f"{where}.{key}", f"no such file or folder: {value} (fetch the data, "
                                                                  "or skip this check: --skip-files)"))
                else:
                    walk(value, f"{where}.{key}")
        elif isinstance(node, ListConfig):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(cfg.get("datasets"), "datasets")
    for section in SECTION_PURPOSE:  # a frozen-feature cache the run would read (vlmkit.data.feature_cache.store)
        runner = cfg.get(section)
        folder = runner.get("feature_cache") if isinstance(runner, DictConfig) else None
        if isinstance(folder, str) and folder and not os.path.isfile(os.path.join(folder, "manifest.json")):
            problems.append(ConfigError(f"{section}.feature_cache", f"no feature cache at {folder} (no manifest.json): "
                                        f"build it with `vlmkit cache-features CONFIG --output {folder}`, or skip "
                                        f"this check: --skip-files"))
    return problems


def trained_config(spec: str | os.PathLike) -> DictConfig:
    """The resolved config a training run saved: ``spec`` is the run directory, its ``checkpoints``
    directory or one checkpoint inside it."""
    path = Path(spec)
    for folder in (path, path.parent, path.parent.parent):
        if (folder / RESOLVED_NAME).is_file():
            return _load_yaml(folder / RESOLVED_NAME, "evaluation.checkpoint")
    raise ConfigError("evaluation.checkpoint", f"no {RESOLVED_NAME} of a training run at or above {path}; give the "
                                               "model section in the evaluation config instead")


def _model_from_checkpoint(cfg: DictConfig) -> None:
    """An evaluation config without a model section evaluates the model a checkpoint was trained as: the
    run's own preset, sampling, processors and template, so evaluation cannot silently differ from training."""
    evaluation = cfg.get("evaluation")
    if not isinstance(evaluation, DictConfig) or not evaluation.get("checkpoint"):
        return
    trained = trained_config(str(evaluation.checkpoint))
    if trained.get("model") is None:
        raise ConfigError("evaluation.checkpoint", "the run's saved config has no model section")
    cfg.model = OmegaConf.merge(trained.model, cfg.get("model") or {})  # command-line model.* on top
    own = [str(m) for m in (cfg.get("imports") or [])]
    brought = [str(m) for m in (trained.get("imports") or []) if str(m) not in own]
    if brought:  # components the run was built from: importing runs their code, so only when trusted
        print(f"the saved config of {evaluation.checkpoint} imports {brought}", file=sys.stderr)
        if not evaluation.get("trust_checkpoint_imports"):
            raise ConfigError("evaluation.trust_checkpoint_imports",
                              f"the checkpoint's saved config imports {brought}, and importing a module runs its "
                              f"code; set evaluation.trust_checkpoint_imports: true (or list them in this config's "
                              f"imports) if you trust them")
        cfg.imports = [*brought, *own]


def _import_plugins(cfg: DictConfig) -> None:
    from vlmkit.plugins import import_modules

    imports = cfg.get("imports")
    imports = [] if imports is None else [imports] if isinstance(imports, str) else imports
    if not isinstance(imports, (list, ListConfig)) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError("imports", f"expected a list of module names (my_pkg.my_module), got {imports!r}")
    import_modules(list(imports))


def config_problems(cfg: DictConfig, purpose: str | None = None) -> list[ConfigError]:
    """Every problem in a merged config: unknown sections, components, keys; wrong types; missing values."""
    from vlmkit.registry import registry
    from vlmkit.schema import check_component

    _import_plugins(cfg)
    problems: list[ConfigError] = []
    for key in cfg:
        if key not in SECTIONS and key not in META_KEYS:
            problems.append(ConfigError(str(key), f"unknown top-level section '{key}'. "
                                                  f"Accepted: {', '.join([*SECTIONS, *META_KEYS])}"))
    if purpose is not None:
        if purpose not in REQUIRED_SECTIONS:
            raise ValueError(f"purpose must be one of {list(REQUIRED_SECTIONS)}, got {purpose!r}")
        for section in REQUIRED_SECTIONS[purpose]:
            if cfg.get(section) is None:
                problems.append(ConfigError(section, f"a {purpose} config needs a '{section}' section"))
    for section, (kind, shape) in SECTIONS.items():
        node = cfg.get(section)
        if node is None:
            continue
        reg = registry(kind)
        if shape == "one":
            problems.extend(check_component(reg, node, section))
            if section in SECTION_PURPOSE:
                problems.extend(runner_purpose_problems(reg, node, section))
        elif not isinstance(node, DictConfig):
            problems.append(ConfigError(section, f"expected a mapping of name -> {kind} config, got {node!r}"))
        else:
            for key, entry in node.items():
                problems.extend(check_component(reg, entry, f"{section}.{key}"))
    return problems


def runner_purpose_problems(runners: Any, node: Any, section: str) -> list[ConfigError]:
    """A training runner under ``evaluation`` or an evaluator under ``run`` would validate and then fail
    (no ``train()`` / ``evaluate()``): name it now, with the runners that fit."""
    from vlmkit.errors import RegistryError

    wanted = SECTION_PURPOSE[section]
    try:
        name = runners.name_of(node, section)
        declared = getattr(runners.schema(name), "purpose", None)
    except (ConfigError, RegistryError):
        return []  # an unknown or missing name: check_component reports it
    if declared is None or declared == wanted:
        return []  # a plug-in runner that declares nothing is taken at its word
    fitting = [n for n in runners.names() if getattr(runners.schema(n), "purpose", None) == wanted]
    kind = {"train": "a training", "eval": "an evaluation"}
    entry = "train.py" if wanted == "train" else "evaluate.py"
    return [ConfigError(f"{section}.name", f"runner '{name}' is {kind.get(declared, repr(declared))} runner; the "
                                           f"'{section}' section ({entry}) needs {kind[wanted]} runner: "
                                           f"{', '.join(fitting)}")]


def validate_config(cfg: DictConfig, purpose: str | None = None) -> None:
    problems = config_problems(cfg, purpose)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError.many(problems)


def save_config(cfg: DictConfig, output_dir: str | os.PathLike, name: str = RESOLVED_NAME) -> Path:
    """Write the resolved config next to a run's outputs (atomically, so a crash leaves no half file)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(tmp, target)
    return target


def to_dict(cfg: DictConfig | ListConfig) -> Any:
    return OmegaConf.to_container(cfg, resolve=True)
