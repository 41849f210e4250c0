"""The schema index: what validating a config needs from the built-in components, without importing them.

Validation checks a config against constructor signatures (``vlmkit.schema``).  Reading a signature by importing
its module imports torch and transformers, seconds of CPU for ``vlmkit validate``.  So ``python -m
vlmkit.tools.schema_index`` writes ``schema_index.json`` from the real registrations: each registry's names, aliases,
descriptions and modules; each component's parameters (names, defaults, annotations), ``purpose``,
``requires_packages`` and where its ``config_problems`` hook lives; and the keys of the transformers config classes
that ``HFConfig`` annotations name.  A registry lists names from the index, imports only the module of a component
that is built (``Registry.get``), and validates against the recorded signature (``Registry.schema``).

The index is used only while it is fresh: the registry's locations are the same, a module added to them holds no
registration, and every source file its part depends on (the location modules and the files of base classes,
structs, type aliases and constants its schemas read) is unchanged, or changed only outside what the entries are
made of (``file_key``, see ``vlmkit.schema_index_deps``: registrations, the registered objects' signatures and
docstring first lines, and the definitions those name; not method bodies, comments, other functions or unrelated
imports); the HF key sets need the transformers version they were read from.  Otherwise the registry imports its
modules, as without an index: slower, never wrong.  ``tests/core/test_schema_index.py`` fails when the committed
index differs from a new one in anything but content hashes (regenerate it with the command above).
"""
from __future__ import annotations

import collections.abc
import functools
import hashlib
import importlib
import inspect
import pathlib
import sys
import types
import typing
from typing import Annotated, Any, Literal, Union

from vlmkit.schema import RUNTIME, Bound, ComponentRef, HFConfigRef, StructRef, hf_config_ref, signature_of
from vlmkit import schema_index_deps as deps
from vlmkit.schema_index_file import load_index

PACKAGE = pathlib.Path(__file__).resolve().parent
# Core modules whose edits do not change any component's schema (markers are decoded through schema.py itself).
CORE_FILES = {"vlmkit/__init__.py", "vlmkit/errors.py", "vlmkit/registry.py", "vlmkit/schema.py",
              "vlmkit/schema_index.py", "vlmkit/schema_index_deps.py", "vlmkit/schema_index_file.py",
              "vlmkit/plugins.py"}
_PLAIN_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "list": list, "tuple": tuple,
                "Path": pathlib.Path, "None": type(None), "Any": Any}
_GENERICS = {"list": list, "tuple": tuple, "dict": dict, "Sequence": collections.abc.Sequence,
             "Mapping": collections.abc.Mapping}


class Unindexable(Exception):
    """A signature the index cannot represent (a default or annotation that is not plain data): such a component
    is validated by importing it."""


# ---------------------------------------------------------------------------------------------- source files
def _rel(path: str | pathlib.Path) -> str:
    return pathlib.Path(path).resolve().relative_to(PACKAGE.parent).as_posix()


def _module_file(module: str) -> pathlib.Path | None:
    return deps.module_file(module, PACKAGE.parent)


def location_files(location: str) -> list[str] | None:
    """The files a registry imports for one location (a module, or a package and every module below it, as
    ``registry._import_location`` walks it); None for a location outside vlmkit."""
    start = _module_file(location)
    if start is None:
        return None
    if start.name != "__init__.py":
        return [_rel(start)]
    files = []

    def walk(folder: pathlib.Path) -> None:
        files.append(_rel(folder / "__init__.py"))
        for child in sorted(folder.iterdir()):
            if child.suffix == ".py" and child.name != "__init__.py":
                files.append(_rel(child))
            elif child.is_dir() and (child / "__init__.py").is_file():
                walk(child)

    walk(start.parent)
    return files


@functools.lru_cache(maxsize=None)
def file_hash(rel: str) -> str | None:
    try:
        return hashlib.sha1((PACKAGE.parent / rel).read_bytes()).hexdigest()
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def file_key(rel: str, names: tuple[str, ...]) -> str:
    """The hash of what in a file the index depends on: its registrations and the projections of its tracked
    ``names`` (``schema_index_deps``): method bodies, comments, untracked functions leave it as it was."""
    return deps.view(rel, PACKAGE.parent).key(list(names))


def clear_caches() -> None:
    """Forget files read (a test that edits sources)."""
    file_hash.cache_clear()
    file_key.cache_clear()
    deps.clear_cache()


def _file_fresh(rel: str, recorded: list) -> bool:
    """Unchanged (a cheap content hash), or changed only outside what the index depends on (``file_key``)."""
    content, names, key = recorded
    return file_hash(rel) == content or file_key(rel, tuple(names)) == key


def _registers(rel: str) -> bool:
    file = deps.view(rel, PACKAGE.parent)
    return bool(file.registrations or file.registered)


def _source_roots(obj: Any) -> dict[str, set[str]]:
    """The top-level names whose definitions shape ``obj``'s entry, by file: it and its vlmkit base classes
    (``schema_index_deps.closure`` adds what they mention: annotations' structs and aliases, defaults' constants)."""
    owners = inspect.getmro(obj) if inspect.isclass(obj) else (obj,)
    roots: dict[str, set[str]] = {}
    for owner in owners:
        path = getattr(sys.modules.get(getattr(owner, "__module__", "")), "__file__", None)
        if not path or not pathlib.Path(path).resolve().is_relative_to(PACKAGE):
            continue
        qualname = getattr(owner, "__qualname__", "")
        head = qualname.split(".")[0] + (deps.CALLED if "<locals>" in qualname else "")
        roots.setdefault(_rel(path), set()).add(head)
    return roots


def _merge(into: dict[str, set[str]], more: dict[str, set[str]]) -> None:
    for rel, names in more.items():
        if rel not in CORE_FILES:
            into.setdefault(rel, set()).update(names)


# ---------------------------------------------------------------------------------------------- encoding
class _Encoder:
    """Signatures -> JSON; collects the structs, files and transformers config classes they need."""

    def __init__(self) -> None:
        self.structs: dict[str, dict] = {}
        self.struct_roots: dict[str, dict[str, set[str]]] = {}
        self.roots: dict[str, set[str]] = {}  # file -> top-level names the specs read (schema_index_deps)
        self.hf_classes: set[str] = set()
        self.model_type_params: list[tuple[Any, str]] = []

    def spec(self, obj: Any) -> dict:
        _merge(self.roots, _source_roots(obj))
        params = []
        for param in signature_of(obj).parameters.values():
            item: dict[str, Any] = {"name": param.name, "kind": param.kind.name,
                                    "annotation": self.annotation(param.annotation)}
            if param.default is not param.empty:
                item["default"] = _encode_default(param.default)
            params.append(item)
            ref = hf_config_ref(param.annotation)
            if ref is not None and ref.class_name:
                self.hf_classes.add(ref.class_name)
            elif ref is not None:
                self.model_type_params.append((obj, ref.model_type_from or ""))
        spec: dict[str, Any] = {"qualname": getattr(obj, "__qualname__", getattr(obj, "__name__", "")),
                                "params": params}
        for attr in ("purpose", "requires_packages"):
            if getattr(obj, attr, None) is not None:
                spec[attr] = _encode_default(getattr(obj, attr))
        hook = getattr(obj, "config_problems", None)
        if hook is not None:
            func = getattr(hook, "__func__", hook)
            spec["hook"] = [func.__module__, func.__qualname__]
            module_file = _module_file(func.__module__)
            if module_file is not None:
                _merge(self.roots, {_rel(module_file): {func.__qualname__.split(".")[0]}})
        return spec

    def annotation(self, ann: Any) -> Any:
        if ann is inspect.Parameter.empty:
            return "empty"
        if ann is Any or ann is None or ann is type(None):
            return "Any" if ann is Any else "None"
        for name, plain in _PLAIN_TYPES.items():
            if ann is plain:
                return name
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if origin is Annotated:
            meta = [self.marker(m) for m in ann.__metadata__]
            base = "Any" if RUNTIME in ann.__metadata__ else self.annotation(args[0])  # Runtime values: unchecked
            return {"annotated": base, "meta": meta}
        if origin in (Union, types.UnionType):
            return {"union": [self.annotation(a) for a in args]}
        if origin is Literal:
            if not all(isinstance(a, (str, int, float, bool, type(None))) for a in args):
                raise Unindexable(f"Literal of {args!r}")
            return {"literal": list(args)}
        for name, generic in _GENERICS.items():
            if origin is generic:
                return {"generic": name, "args": ["..." if a is Ellipsis else self.annotation(a) for a in args]}
        raise Unindexable(f"annotation {ann!r}")

    def marker(self, meta: Any) -> Any:
        if meta is RUNTIME:
            return "runtime"
        if isinstance(meta, Bound):
            return {"bound": [meta.low, meta.strict]}
        if isinstance(meta, ComponentRef):
            return {"component": [meta.kind, meta.shape]}
        if isinstance(meta, HFConfigRef):
            return {"hf_config": [meta.class_name, meta.model_type_from, meta.checkpoint_from,
                                  [list(pair) for pair in meta.owned]]}
        if isinstance(meta, StructRef):
            key = f"{meta.cls.__module__}:{meta.cls.__qualname__}"
            if key not in self.structs:
                outer, self.roots = self.roots, {}
                self.structs[key] = {}  # placeholder first: a struct may refer to itself
                self.structs[key] = self.spec(meta.cls)
                self.struct_roots[key], self.roots = self.roots, outer
            _merge(self.roots, self.struct_roots[key])  # every registry whose schemas hold the struct depends on it
            return {"struct": [key, meta.shape]}
        raise Unindexable(f"marker {meta!r}")


def _encode_default(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_encode_default(v) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [_encode_default(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode_default(v) for k, v in value.items()}}
    raise Unindexable(f"default {value!r}")


def _decode_default(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_default(v) for v in value]
    if isinstance(value, dict):
        if "tuple" in value:
            return tuple(_decode_default(v) for v in value["tuple"])
        return {k: _decode_default(v) for k, v in value["dict"].items()}
    return value


# ---------------------------------------------------------------------------------------------- decoding
class IndexedSchema:
    """A component's schema read from the index: what ``schema.check_signature`` reads from a class (its
    signature, ``purpose``, ``requires_packages``, ``config_problems``), without importing the class."""

    def __init__(self, spec: dict, decode: Any) -> None:
        self.__qualname__ = spec["qualname"]
        self.__name__ = spec["qualname"].rsplit(".", 1)[-1]
        self.__signature__ = inspect.Signature([
            inspect.Parameter(p["name"], getattr(inspect.Parameter, p["kind"]),
                              default=_decode_default(p["default"]) if "default" in p else inspect.Parameter.empty,
                              annotation=decode(p["annotation"])) for p in spec["params"]])
        if "purpose" in spec:
            self.purpose = spec["purpose"]
        if "requires_packages" in spec:
            self.requires_packages = _decode_default(spec["requires_packages"])
        if "hook" in spec:
            self._hook = spec["hook"]
            self.config_problems = self._run_hook

    def _run_hook(self, values: dict, path: str) -> list:
        """The component's ``config_problems``, imported from where it is defined (a light module by design)."""
        module, qualname = self._hook
        owner: Any = importlib.import_module(module)
        *parents, name = qualname.split(".")
        for part in parents:
            owner = getattr(owner, part)
        hook = getattr(owner, name)
        return hook(values, path) if parents else hook(self, values, path)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.__qualname__} from the schema index only describes the component; "
                        "build it through its registry")

    def __repr__(self) -> str:
        return f"IndexedSchema({self.__qualname__})"


class _Decoder:
    def __init__(self, structs: dict[str, dict]) -> None:
        self.structs = structs
        self.made: dict[str, IndexedSchema] = {}

    def schema(self, spec: dict) -> IndexedSchema:
        return IndexedSchema(spec, self.annotation)

    def annotation(self, enc: Any) -> Any:
        if enc == "empty":
            return inspect.Parameter.empty
        if isinstance(enc, str):
            return _PLAIN_TYPES[enc]
        if "annotated" in enc:
            return Annotated[(self.annotation(enc["annotated"]), *map(self.marker, enc["meta"]))]
        if "union" in enc:
            return Union[tuple(self.annotation(a) for a in enc["union"])]
        if "literal" in enc:
            return Literal[tuple(enc["literal"])]
        args = tuple(Ellipsis if a == "..." else self.annotation(a) for a in enc["args"])
        generic = _GENERICS[enc["generic"]]
        return generic[args] if args else generic

    def marker(self, enc: Any) -> Any:
        if enc == "runtime":
            return RUNTIME
        if "bound" in enc:
            return Bound(*enc["bound"])
        if "component" in enc:
            return ComponentRef(*enc["component"])
        if "hf_config" in enc:
            class_name, model_type_from, checkpoint_from, owned = enc["hf_config"]
            return HFConfigRef(class_name, model_type_from, checkpoint_from, tuple(tuple(p) for p in owned))
        key, shape = enc["struct"]
        if key not in self.made:
            self.made[key] = self.schema(self.structs[key])
        return StructRef(self.made[key], shape)




def _fresh(part: dict, locations: list[str]) -> bool:
    """Same locations; every recorded file fresh; a file added to a location holds no registration."""
    if part.get("locations") != locations:
        return False
    listed = [f for location in locations for f in (location_files(location) or [None])]
    if None in listed:
        return False
    plain = part.get("plain", {})  # location modules that registered nothing: read only if they changed
    if any(rel not in part["files"] and plain.get(rel) != file_hash(rel) and _registers(rel) for rel in listed):
        return False
    return all(_file_fresh(rel, recorded) for rel, recorded in part["files"].items())


def registry_part(kind: str, locations: list[str]) -> dict | None:
    """The index's entries of one registry, if the index is fresh for it (else None: import its modules)."""
    index = load_index()
    part = index and index["registries"].get(kind)
    if not part or not _fresh(part, list(locations)):
        return None
    return part["entries"]


@functools.lru_cache(maxsize=None)
def component_schema(kind: str, name: str) -> IndexedSchema | None:
    index = load_index()
    spec = index["registries"][kind]["entries"][name].get("spec") if index else None
    return None if spec is None else _Decoder(index["structs"]).schema(spec)
