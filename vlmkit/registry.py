"""Name -> component registries, one per kind.

A component is a class or factory function registered under a name.  Its constructor signature is
the schema of its YAML config: ``build(cfg)`` binds ``cfg`` keys to parameters, and ``check(cfg)``
validates a config against the signature without building anything (see ``vlmkit.schema``).

The built-in registries list their names from the schema index (``vlmkit.schema_index``) while it is fresh, and
import a component's module only when it is built: validating a config imports no torch.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

from vlmkit.errors import ConfigError, RegistryError
from vlmkit.schema import component_name, use_registry_lookup


@dataclass
class Entry:
    name: str
    obj: Optional[Callable]  # None until ``module`` is imported (an entry listed from the schema index)
    aliases: tuple[str, ...]
    description: str
    module: str = ""


def _first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _import_location(location: str) -> None:
    """Import a module, or every module of a package (so one file per component needs no index)."""
    module = importlib.import_module(location)
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, prefix=location + "."):
            importlib.import_module(info.name)


class Registry:
    """Maps names (and aliases) to builders of one kind of component."""

    def __init__(self, kind: str, locations: Iterable[str] = ()):
        self.kind = kind
        self.locations = list(locations)
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None, *, aliases: Iterable[str] = (), force: bool = False,
                 description: str | None = None) -> Callable[[Callable], Callable]:
        """Decorator: ``@ENCODERS.register("clip", aliases=["clip_vit"])``."""

        def decorator(obj: Callable) -> Callable:
            self.add(name or obj.__name__, obj, aliases=aliases, force=force, description=description)
            return obj

        return decorator

    def add(self, name: str, obj: Callable, *, aliases: Iterable[str] = (), force: bool = False,
            description: str | None = None) -> None:
        if not callable(obj):
            raise RegistryError(f"{self.kind}: '{name}' must be a class or function, got {type(obj).__name__}")
        aliases = tuple(aliases)
        for key in (name, *aliases):
            owner = self._aliases.get(key, key if key in self._entries else None)
            if owner is not None and self._entries[owner].obj is None:
                self._drop(key)  # the index's listing of this component, now imported
            elif owner is not None and not force and self._entries[owner].obj is not obj:
                raise RegistryError(
                    f"{self.kind}: the name '{key}' is already registered by "
                    f"{self._qualname(self._entries[owner].obj)}; pick another name or pass force=True")
        if force:
            for key in (name, *aliases):
                self._drop(key)
        self._entries[name] = Entry(name, obj, aliases, description or _first_doc_line(obj))
        for alias in aliases:
            self._aliases[alias] = name

    def _drop(self, key: str) -> None:
        owner = self._aliases.pop(key, None) or (key if key in self._entries else None)
        if owner and owner in self._entries:
            for alias in self._entries.pop(owner).aliases:
                self._aliases.pop(alias, None)

    @staticmethod
    def _qualname(obj: Any) -> str:
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"

    # ------------------------------------------------------------------ lookup
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: the modules we import call register() on us
        try:
            from vlmkit import schema_index

            indexed = schema_index.registry_part(self.kind, self.locations) if self.locations else None
            if indexed is None:
                for location in self.locations:
                    _import_location(location)
            else:
                for name, item in indexed.items():
                    if name not in self._entries and name not in self._aliases:
                        self._entries[name] = Entry(name, None, tuple(item["aliases"]), item["description"],
                                                    item["module"])
                        self._aliases.update(dict.fromkeys(item["aliases"], name))
            from vlmkit.plugins import load_entry_point_plugins
            load_entry_point_plugins()
        except BaseException:
            self._loaded = False  # the next lookup retries and re-raises the import error, never "unknown name"
            raise

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries or name in self._aliases

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def canonical(self, name: str) -> str:
        self._ensure_loaded()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise RegistryError(self._miss_message(name))

    def get(self, name: str) -> Callable:
        """The registered class or function; raises (never returns None) with suggestions on a miss."""
        entry = self._entries[self.canonical(name)]
        if entry.obj is None:  # listed from the index: importing its module registers it
            importlib.import_module(entry.module)
            entry = self._entries.get(entry.name, entry)
            if entry.obj is None:
                raise RegistryError(f"{self.kind}: the schema index lists '{entry.name}' in {entry.module}, but "
                                    f"importing that module did not register it; regenerate the index: "
                                    f"python -m vlmkit.tools.schema_index")
        return entry.obj

    def schema(self, name: str) -> Callable:
        """What validation reads of a component (its signature, ``purpose``, ``requires_packages``,
        ``config_problems``): the class itself once imported, else its record in the schema index."""
        entry = self._entries[self.canonical(name)]
        if entry.obj is not None:
            return entry.obj
        from vlmkit import schema_index

        indexed = schema_index.component_schema(self.kind, entry.name)
        return indexed if indexed is not None else self.get(name)

    def _miss_message(self, name: Any) -> str:
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "(none registered)"
        return f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} '{name}'.{hint} " \
               f"Registered {self.kind}: {listing}"

    # ------------------------------------------------------------------ building
    @staticmethod
    def name_of(cfg: Any, path: str = "") -> str:
        """The component name of a config (``vlmkit.schema.component_name``)."""
        return component_name(cfg, path)

    def build(self, cfg: Any, path: str = "", **runtime: Any) -> Any:
        """Build from ``{name: ..., **params}``; ``runtime`` supplies arguments only code knows (widths, the model)."""
        from vlmkit.schema import check_component, plain_params

        errors = check_component(self, cfg, path or self.kind, runtime=set(runtime))
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigError.many(errors)
        obj = self.get(self.name_of(cfg, path))
        return obj(**plain_params(cfg), **runtime)

    def build_offering(self, cfg: Any, path: str = "", **available: Any) -> Any:
        """``build``, passing only those of ``available`` (an input width, the model, the data contract...) that
        the component's constructor accepts."""
        from vlmkit.schema import signature_of

        params = signature_of(self.get(self.name_of(cfg, path))).parameters
        return self.build(cfg, path=path, **{k: v for k, v in available.items() if k in params})

    def check(self, cfg: Any, path: str = "", runtime: Iterable[str] = ()) -> list[ConfigError]:
        """Every problem in ``cfg`` (unknown name, unknown key, wrong type, missing value) without building."""
        from vlmkit.schema import check_component

        return check_component(self, cfg, path or self.kind, runtime=set(runtime))

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        from vlmkit.schema import signature_of

        return dict(signature_of(self.schema(name)).parameters)

    # ------------------------------------------------------------------ isolation for tests
    @contextlib.contextmanager
    def isolated(self):
        """Registrations made inside the block are undone afterwards."""
        self._ensure_loaded()
        saved = (dict(self._entries), dict(self._aliases), self._loaded)
        try:
            yield self
        finally:
            entries, aliases, loaded = saved
            for name, entry in self._entries.items():  # an index listing imported inside the block stays imported
                if name in entries and entries[name].obj is None and entry.obj is not None:
                    entries[name] = entry
            self._entries, self._aliases, self._loaded = entries, aliases, loaded

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} registered)"


class RegistryUnion(Registry):
    """Looks a name up in several registries in turn: a visual stage is an adapter or a pooler."""

    def __init__(self, kind: str, *members: Registry):
        super().__init__(kind)
        self.members = members

    def add(self, name, obj, **kwargs):
        raise RegistryError(f"register {self.kind} in one of {', '.join(m.kind for m in self.members)}")

    def _owner(self, name: str) -> Registry | None:
        return next((m for m in self.members if name in m), None)

    def names(self) -> list[str]:
        return sorted(n for m in self.members for n in m.names())

    def entries(self) -> list[Entry]:
        return sorted((e for m in self.members for e in m.entries()), key=lambda e: e.name)

    def __contains__(self, name: object) -> bool:
        return self._owner(name) is not None

    def canonical(self, name: str) -> str:
        owner = self._owner(name)
        if owner is None:
            raise RegistryError(self._miss_message(name))
        return owner.canonical(name)

    def get(self, name: str) -> Callable:
        return self._entries_owner(name).get(name)

    def schema(self, name: str) -> Callable:
        return self._entries_owner(name).schema(name)

    def _entries_owner(self, name: str) -> Registry:
        owner = self._owner(name)
        if owner is None:
            raise RegistryError(self._miss_message(name))
        return owner

    def _miss_message(self, name: Any) -> str:
        known = sorted(k for m in self.members for k in [*m._entries, *m._aliases])
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (f"unknown {self.kind[:-1]} '{name}' (looked in {', '.join(m.kind for m in self.members)}).{hint} "
                f"Registered: {', '.join(known) or '(none)'}")

    @contextlib.contextmanager
    def isolated(self):
        yield self


# The demo's encoder lives with the demo scaffolding; named here by module path (a location, not an import).
ENCODERS = Registry("encoders", ["vlmkit.models.encoders", "vlmkit.demo.tiny_video_vit"])
ADAPTERS = Registry("adapters", ["vlmkit.models.adapters"])
POOLERS = Registry("poolers", ["vlmkit.models.pooling"])
SELECTORS = Registry("selectors", ["vlmkit.models.selectors"])
LLMS = Registry("llms", ["vlmkit.models.llms"])
MODELS = Registry("models", ["vlmkit.models.video_llm"])
TEMPLATES = Registry("templates", ["vlmkit.models.templates"])
SAMPLERS = Registry("samplers", ["vlmkit.data.samplers"])
PROCESSORS = Registry("processors", ["vlmkit.data.processors"])
DATASETS = Registry("datasets", ["vlmkit.data.datasets"])
TASKS = Registry("tasks", ["vlmkit.tasks"])
RUNNERS = Registry("runners", ["vlmkit.runners"])
STRATEGIES = Registry("strategies", ["vlmkit.runners.strategies"])
OPTIMIZERS = Registry("optimizers", ["vlmkit.runners.optimizers"])
SCHEDULERS = Registry("schedulers", ["vlmkit.runners.schedulers"])
METRICS = Registry("metrics", ["vlmkit.metrics"])
LOGGERS = Registry("loggers", ["vlmkit.runners.loggers"])

ALL: dict[str, Registry] = {r.kind: r for r in (
    ENCODERS, ADAPTERS, POOLERS, SELECTORS, LLMS, MODELS, TEMPLATES, SAMPLERS, PROCESSORS, DATASETS,
    TASKS, RUNNERS, STRATEGIES, OPTIMIZERS, SCHEDULERS, METRICS, LOGGERS)}


# A visual stage after the encoder: an adapter (Q-Former, projector) or a pooler, in any order.
STAGES = RegistryUnion("stages", ADAPTERS, POOLERS)
UNIONS: dict[str, Registry] = {STAGES.kind: STAGES}


def registry(kind: str) -> Registry:
    """The registry of one kind, by name ('encoders', 'adapters', ...)."""
    if kind in UNIONS:
        return UNIONS[kind]
    if kind not in ALL:
        close = difflib.get_close_matches(kind, ALL, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RegistryError(f"unknown registry kind '{kind}'.{hint} Kinds: {', '.join(ALL)}")
    return ALL[kind]


use_registry_lookup(registry)  # Component("kind") annotations find their registries through it


@contextlib.contextmanager
def isolated_registries():
    """Undo every registration made inside the block, in all registries."""
    with contextlib.ExitStack() as stack:
        for reg in ALL.values():
            stack.enter_context(reg.isolated())
        yield
