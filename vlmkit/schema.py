"""Constructor signatures as config schemas.

Annotations tell the validator what a config value must be.  Two markers extend plain types:

- ``Component("encoders")`` / ``ComponentList(...)`` / ``ComponentMap(...)``: the value is itself a
  component config (or a list / name->config mapping of them), validated against that registry.
- ``Runtime[T]``: the framework supplies the argument when it builds the component (an input width,
  the model's data contract); a config must not set it.
- ``Positive[T]`` / ``NonNegative[T]``: a number > 0 / >= 0 (a batch size, a learning rate).
- ``HFConfig("CLIPVisionConfig")`` / ``HFConfig(model_type_from="arch")``: a mapping of transformers config values,
  whose keys must be keys of that config class (or of the class of the model type another key names); a misspelt
  key would otherwise be set silently on the config and ignored by the model.

A component class may also declare ``requires_packages = ("tensorboard",)`` (checked importable) and a classmethod
``config_problems(cls, values, path) -> list[ConfigError]`` for rules across fields (``values``: the constructor
defaults with the config's keys over them); both run at validation, before anything is built.
"""
from __future__ import annotations

import difflib
import importlib.util
import inspect
import pathlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from vlmkit.errors import ConfigError, RegistryError

# Keys of a component config that are not constructor parameters.
NAME_KEYS = ("name", "type")
RESERVED_KEYS = (*NAME_KEYS, "preset")


@dataclass(frozen=True)
class ComponentRef:
    kind: str
    shape: str = "one"  # "one", "list" or "map"


@dataclass(frozen=True)
class StructRef:
    """A nested mapping validated against a class's constructor, without a 'name' (e.g. a visual branch)."""

    cls: type
    shape: str = "one"


class _RuntimeMarker:
    def __repr__(self) -> str:
        return "Runtime"


RUNTIME = _RuntimeMarker()


def Component(kind: str):  # noqa: N802 - used like a type
    return Annotated[Any, ComponentRef(kind)]


def ComponentList(kind: str):  # noqa: N802
    return Annotated[list, ComponentRef(kind, "list")]


def ComponentMap(kind: str):  # noqa: N802
    return Annotated[dict, ComponentRef(kind, "map")]


@dataclass(frozen=True)
class HFConfigRef:
    """A mapping of transformers config values for ``class_name``, or for the config class of the model type in the
    sibling key ``model_type_from`` (or in the config.json of the checkpoint folder in ``checkpoint_from``).
    ``owned``: keys the component sets itself, each with the reason."""

    class_name: str | None = None
    model_type_from: str | None = None
    checkpoint_from: str | None = None
    owned: tuple[tuple[str, str], ...] = ()


def HFConfig(class_name: str | None = None, *, model_type_from: str | None = None,  # noqa: N802
             checkpoint_from: str | None = None, owned: Mapping[str, str] | None = None):
    return Annotated[dict, HFConfigRef(class_name, model_type_from, checkpoint_from, tuple((owned or {}).items()))]


def Struct(cls: type):  # noqa: N802
    return Annotated[dict, StructRef(cls)]


def StructList(cls: type):  # noqa: N802
    return Annotated[list, StructRef(cls, "list")]


@dataclass(frozen=True)
class Bound:
    """A lower bound on a number: ``> low`` (strict) or ``>= low``."""

    low: float
    strict: bool

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # the type check reports it
        if value > self.low or (not self.strict and value == self.low):
            return None
        return f"must be {'>' if self.strict else '>='} {self.low:g}, got {value!r}"


class Positive:
    """``Positive[int]``: a number > 0."""

    def __class_getitem__(cls, item):
        return Annotated[item, Bound(0, strict=True)]


class NonNegative:
    """``NonNegative[float]``: a number >= 0."""

    def __class_getitem__(cls, item):
        return Annotated[item, Bound(0, strict=False)]


class Runtime:
    """``Runtime[int]``: an argument the framework passes at build time, never read from a config."""

    def __class_getitem__(cls, item):
        return Annotated[item, RUNTIME]


def signature_of(obj: Any) -> inspect.Signature:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target, eval_str=True)
    except (NameError, TypeError):
        sig = inspect.signature(target)
    params = [p for p in sig.parameters.values()]
    if inspect.isclass(obj) and params and params[0].name == "self":
        params = params[1:]
    return sig.replace(parameters=params)


def is_runtime(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and any(m is RUNTIME for m in annotation.__metadata__)


def to_plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def plain_params(cfg: Any) -> dict[str, Any]:
    """The constructor keyword arguments of a component config (name and preset removed)."""
    if isinstance(cfg, str):
        return {}
    return {k: to_plain(v) for k, v in cfg.items() if k not in RESERVED_KEYS}


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    text = getattr(annotation, "__name__", None) or repr(annotation)
    return text.replace("typing.", "")


def _describe_params(sig: inspect.Signature) -> str:
    parts = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or is_runtime(p.annotation):
            continue
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts) or "(no parameters)"


# How a ``Component("kind")`` annotation finds its registry. vlmkit.registry builds on this module and installs
# the lookup when it is imported (this module importing the registry back made the two an import cycle).
_registry_lookup: Callable[[str], Any] | None = None


def use_registry_lookup(lookup: Callable[[str], Any]) -> None:
    """Install ``lookup(kind) -> registry`` (vlmkit.registry does, once)."""
    global _registry_lookup
    _registry_lookup = lookup


def registry_of(kind: str) -> Any:
    """The registry of a component kind ('samplers', 'stages', ...)."""
    if _registry_lookup is None:
        raise RegistryError(f"no registry for '{kind}' components: import vlmkit.registry first")
    return _registry_lookup(kind)


def component_name(cfg: Any, path: str = "") -> str:
    """The component name of a config: the string itself, or the value of its 'name' (or 'type') key."""
    if isinstance(cfg, str):
        return cfg
    if not isinstance(cfg, Mapping) and not hasattr(cfg, "keys"):
        raise ConfigError(path, f"expected a component config (a mapping with 'name') or a name, got {cfg!r}")
    present = [k for k in NAME_KEYS if k in cfg]
    if not present:
        raise ConfigError(path, f"component config has no 'name' key (keys: {sorted(map(str, cfg.keys()))})")
    if len(present) > 1:
        raise ConfigError(path, "give either 'name' or 'type', not both")
    name = cfg[present[0]]
    if not isinstance(name, str):
        raise ConfigError(f"{path}.{present[0]}", f"a component name must be a string, got {name!r}")
    return name


def check_component(reg, cfg: Any, path: str, runtime: set[str] = frozenset()) -> list[ConfigError]:
    """All problems of one component config against registry ``reg``."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    try:
        name = component_name(cfg, path)
    except ConfigError as err:
        return [err]
    if name not in reg:
        return [ConfigError(f"{path}.name" if isinstance(cfg, Mapping) else path, reg._miss_message(name))]
    canonical = reg.canonical(name)
    alias = f" (given as '{name}')" if canonical != name else ""
    label = f"{reg.kind[:-1] if reg.kind.endswith('s') else reg.kind} '{canonical}'{alias}"
    return check_signature(reg.schema(name), cfg if isinstance(cfg, Mapping) else {}, path, label, runtime)


def check_signature(obj: Any, given: Mapping, path: str, label: str,
                    runtime: set[str] = frozenset()) -> list[ConfigError]:
    """Problems of a mapping of constructor arguments for ``obj`` (a class or function)."""
    sig = signature_of(obj)
    params = sig.parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    errors: list[ConfigError] = []
    for key, value in given.items():
        if key in RESERVED_KEYS:
            continue
        key_path = f"{path}.{key}"
        param = params.get(key)
        if param is None or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            if accepts_any and param is None:
                continue
            close = difflib.get_close_matches(key, list(params), n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            errors.append(ConfigError(key_path, f"unknown key '{key}' for {label}.{hint} "
                                                f"Accepted keys: {_describe_params(sig)}"))
            continue
        if is_runtime(param.annotation) or key in runtime:
            errors.append(ConfigError(key_path, f"'{key}' of {label} is supplied by vlmkit when it builds the "
                                                f"component (derived from other settings); remove it from the config"))
            continue
        errors.extend(check_value(value, param.annotation, key_path))
        hf_ref = hf_config_ref(param.annotation)
        if hf_ref is not None and isinstance(value, Mapping):
            errors.extend(hf_config_problems(value, hf_ref, given, params, key_path, label))
    for pname, param in params.items():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or param.default is not param.empty:
            continue
        if pname in given or pname in runtime or is_runtime(param.annotation):
            continue
        errors.append(ConfigError(f"{path}.{pname}", f"missing required key '{pname}' for {label}"))
    missing = [p for p in getattr(obj, "requires_packages", ()) if importlib.util.find_spec(p) is None]
    if missing:
        errors.append(ConfigError(path, f"{label} needs the package(s) {', '.join(missing)}: pip install "
                                        f"{' '.join(missing)}, or choose another component"))
    if not errors and hasattr(obj, "config_problems"):
        defaults = {k: p.default for k, p in params.items() if p.default is not p.empty}
        errors.extend(obj.config_problems({**defaults, **given}, path))
    return errors


def check_value(value: Any, annotation: Any, path: str) -> list[ConfigError]:
    """Problems of one value against its parameter annotation (empty list when it fits)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return []
    if value == "???":
        return [ConfigError(path, "value is missing ('???'): set it in the config or on the command line")]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        ref = next((m for m in annotation.__metadata__ if isinstance(m, (ComponentRef, StructRef))), None)
        if ref is None:
            errors = check_value(value, args[0], path)
            bounds = [m.problem(value) for m in annotation.__metadata__ if isinstance(m, Bound)]
            return errors or [ConfigError(path, problem) for problem in bounds if problem]
        if isinstance(ref, StructRef):
            return _check_struct_value(value, ref, path)
        return _check_component_value(value, ref, path)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        options = [a for a in args if a is not type(None)]
        results = [check_value(value, a, path) for a in options]
        if any(not r for r in results):
            return []
        if len(options) == 1:
            return results[0]
        # An option whose errors all lie inside the value matched its shape: its errors say what is wrong.
        inner = [r for r in results if all(e.path != path for e in r)]
        if inner:
            return min(inner, key=len)
        return [ConfigError(path, f"expected one of {' | '.join(_type_name(a) for a in args)}, got {value!r}")]
    if origin is Literal:
        if value in args:
            return []
        return [ConfigError(path, f"expected one of {', '.join(repr(a) for a in args)}, got {value!r}")]
    if annotation is type(None):
        return [] if value is None else [ConfigError(path, f"expected null, got {value!r}")]
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return [ConfigError(path, f"expected a list, got {value!r}")]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return [ConfigError(path, f"expected a list of {len(args)} items, got {len(value)}")]
            return [e for i, (v, a) in enumerate(zip(value, args)) for e in check_value(v, a, f"{path}[{i}]")]
        item = args[0] if args else Any
        return [e for i, v in enumerate(value) for e in check_value(v, item, f"{path}[{i}]")]
    if origin in (dict, Mapping, typing.Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            return [ConfigError(path, f"expected a mapping, got {value!r}")]
        item = args[1] if len(args) == 2 else Any
        return [e for k, v in value.items() for e in check_value(v, item, f"{path}.{k}")]
    if annotation is bool:
        ok = isinstance(value, bool)
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif annotation in (str, pathlib.Path):
        ok = isinstance(value, str)
    elif isinstance(annotation, type):
        ok = isinstance(value, annotation)
    else:
        ok = True  # an annotation we cannot check statically (a TypeVar, a Protocol...)
    return [] if ok else [ConfigError(path, f"expected {_type_name(annotation)}, got {value!r} "
                                            f"({type(value).__name__})")]


def _check_component_value(value: Any, ref: ComponentRef, path: str) -> list[ConfigError]:
    reg = registry_of(ref.kind)
    if ref.shape == "one":
        return check_component(reg, value, path)
    if ref.shape == "list":
        if not isinstance(value, (list, tuple)):
            return [ConfigError(path, f"expected a list of {ref.kind} configs, got {value!r}")]
        return [e for i, v in enumerate(value) for e in check_component(reg, v, f"{path}[{i}]")]
    if not isinstance(value, Mapping):
        return [ConfigError(path, f"expected a mapping of name -> {ref.kind} config, got {value!r}")]
    return [e for k, v in value.items() for e in check_component(reg, v, f"{path}.{k}")]


def _check_struct_value(value: Any, ref: StructRef, path: str) -> list[ConfigError]:
    label = ref.cls.__name__
    items = [(path, value)] if ref.shape == "one" else None
    if items is None:
        if not isinstance(value, (list, tuple)):
            return [ConfigError(path, f"expected a list of {label} settings, got {value!r}")]
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    errors: list[ConfigError] = []
    for item_path, item in items:
        if not isinstance(item, Mapping):
            errors.append(ConfigError(item_path, f"expected a mapping of {label} settings, got {item!r}"))
        else:
            errors.extend(check_signature(ref.cls, item, item_path, label))
    return errors


# ---------------------------------------------------------------------------------------------- HF config dicts
def hf_config_ref(annotation: Any) -> HFConfigRef | None:
    """The ``HFConfig`` marker of an annotation (also inside ``Optional[...]``), or None."""
    if typing.get_origin(annotation) is Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, HFConfigRef)), None)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return next((r for r in map(hf_config_ref, typing.get_args(annotation)) if r is not None), None)
    return None


def _hf_model_type(ref: HFConfigRef, given: Mapping, params: Mapping[str, inspect.Parameter]) -> str | None:
    """The model type that picks the config class: the ``model_type_from`` key (or its default), else the
    ``model_type`` of the checkpoint folder's config.json."""
    if ref.model_type_from:
        param = params.get(ref.model_type_from)
        default = param.default if param is not None and param.default is not param.empty else None
        model_type = given.get(ref.model_type_from, default)
        if isinstance(model_type, str):
            return model_type
    folder = given.get(ref.checkpoint_from) if ref.checkpoint_from else None
    if isinstance(folder, str) and (pathlib.Path(folder) / "config.json").is_file():
        import json

        try:
            return json.loads((pathlib.Path(folder) / "config.json").read_text()).get("model_type")
        except (OSError, ValueError):
            return None  # loading reports an unreadable checkpoint
    return None


def hf_config_problems(value: Mapping, ref: HFConfigRef, given: Mapping, params: Mapping[str, inspect.Parameter],
                       path: str, label: str) -> list[ConfigError]:
    """Keys of a transformers config mapping that its config class does not have (with close matches), and keys
    the component sets itself.  The class is unknown (nothing checked) for a remote checkpoint without ``arch``."""
    from vlmkit import schema_index_file

    owned = dict(ref.owned)
    errors = [ConfigError(f"{path}.{key}", f"do not set '{key}' in the config of {label}: {owned[key]}")
              for key in value if key in owned]
    class_name = ref.class_name
    if class_name is None:
        model_type = _hf_model_type(ref, given, params)
        class_name = schema_index_file.hf_model_type_class(model_type) if model_type else None
    keys = schema_index_file.hf_config_keys(class_name) if class_name else None
    if keys is None:
        return errors
    for key in value:
        if key in keys or key in owned:
            continue
        close = difflib.get_close_matches(str(key), sorted(keys), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        errors.append(ConfigError(f"{path}.{key}", f"unknown key '{key}' for transformers {class_name} (the config "
                                                   f"of {label}).{hint} Accepted keys: {', '.join(sorted(keys))}"))
    return errors
