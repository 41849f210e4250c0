"""The import rule of docs/architecture.md ("Layers"), read from the source with ``ast``: every import of every
module of vlmkit counts, at module level or inside a function, absolute or relative, and
``importlib.import_module("vlmkit...")`` with a literal name. Registry locations and other module paths held as
plain strings are not imports (a registry imports them when a name is first looked up).

Layers, bottom first; a module may import its own layer's modules and any layer below, never one above:

    core      registry, schema, config, contracts, errors, plugins and the shared value modules at the top of vlmkit
    tools     stand-alone utilities (checksums, safetensors files, feature conversion): core only
    models | data | metrics   independent of each other
    tasks     may use models (prompting) and metrics
    runners
    entry     assemble, cli, entry, inference, estimate, export, integrations, plot, sweep, the commands
    demo      the CPU demo and tiny data: imported by nothing else in vlmkit (tests and benchmarks may)

and no two modules may import each other, directly or through others (a cycle hidden in a function-level import
is still a cycle).
"""
from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Rank of each layer; models, data and metrics share a rank but may not import each other.
RANKS = {"core": 0, "tools": 1, "models": 2, "data": 2, "metrics": 2, "tasks": 3, "runners": 4, "entry": 5,
         "demo": 6}
SUBPACKAGE_LAYERS = {"models": "models", "data": "data", "metrics": "metrics", "tasks": "tasks",
                     "runners": "runners", "tools": "tools", "demo": "demo",
                     "inference": "entry", "estimate": "entry", "export": "entry", "integrations": "entry"}
# Modules at the top of vlmkit, each named: a new one must be given a layer here (the test says so).
TOP_LEVEL = {
    "core": {"registry", "schema", "schema_index", "schema_index_file", "schema_index_deps",
             "config", "contracts", "errors", "plugins",
             "dtypes", "protocols", "constants", "video_sampling", "mc_format", "openmp_env"},
    "entry": {"assemble", "cli", "entry", "plot", "sweep", "data_validate_cmd", "feature_cache_cmd"},
}
# Commands inside the tools package: they build models and datasets through assemble.
TOOL_COMMANDS = {"vlmkit.tools.tgb_pseudo_labels"}
# Imports that break the rule today and are being fixed elsewhere; each entry says by whom. Remove an entry with
# its fix (the test fails on an entry that no longer matches an import, so none outlives its reason).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer of a vlmkit module (see the module docstring); None for a top-level module not yet placed."""
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"  # vlmkit/__init__.py: the version and `vlmkit.load`, which imports vlmkit.inference
    if module in TOOL_COMMANDS:
        return "entry"
    if parts[1] in SUBPACKAGE_LAYERS:
        return SUBPACKAGE_LAYERS[parts[1]]
    return next((layer for layer, names in TOP_LEVEL.items() if parts[1] in names), None)


def allowed(importer: str, imported: str) -> bool:
    a, b = layer_of(importer), layer_of(imported)
    if a is None or b is None:
        return True  # reported by test_every_module_has_a_layer
    return a == b or RANKS[b] < RANKS[a]


def _imported_names(node: ast.AST, package: str) -> Iterable[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolved against the importing module's package
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg (resolved below)
        yield from (f"{module}.{alias.name}" for alias in node.names)
    elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
          and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
          and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        yield node.args[0].value


def imports_of(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The vlmkit modules ``source`` imports: each imported name resolved to the longest known module prefix
    (``from vlmkit.errors import ConfigError`` -> ``vlmkit.errors``)."""
    known = set(known)
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        for name in _imported_names(node, package):
            parts = name.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            target = ".".join(parts)
            if target and target != module and target.split(".")[0] == "vlmkit":
                found.add(target)
    return found


def import_graph(root: Path = REPO, package: str = "vlmkit") -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    return {m: imports_of(p.read_text(), m, p.name == "__init__.py", files) for m, p in files.items()}


def violations(graph: Mapping[str, set[str]], exceptions=frozenset()) -> list[str]:
    found = []
    for importer in sorted(graph):
        for imported in sorted(graph[importer]):
            if not allowed(importer, imported) and (importer, imported) not in exceptions:
                a, b = layer_of(importer), layer_of(imported)
                rule = (f"'{a}' and '{b}' are independent" if RANKS[a] == RANKS[b]
                        else f"'{a}' may not import the higher layer '{b}'")
                found.append(f"{importer} imports {imported}: {rule}")
    return found


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _as_cycle(component: list[str], graph: Mapping[str, Iterable[str]]) -> list[str]:
    """A path through the component from its first module back to it: a -> b -> ... -> a."""
    members, start = set(component), component[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == start:
                return [*path, start]
            if nxt in members and nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return component


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_import_follows_the_layer_order(graph):
    found = violations(graph, KNOWN_EXCEPTIONS)
    assert not found, "imports against the layer order (docs/architecture.md, Layers):\n" + "\n".join(found)


def test_known_exceptions_still_exist(graph):
    stale = [pair for pair in KNOWN_EXCEPTIONS if pair[1] not in graph.get(pair[0], ())]
    assert not stale, f"these exceptions no longer match an import; delete them from KNOWN_EXCEPTIONS: {stale}"


def describe_cycle(component: list[str], graph: Mapping[str, Iterable[str]]) -> str:
    path = " -> ".join(_as_cycle(component, graph))
    return path if len(component) <= 2 else f"{path}  (modules importing each other: {', '.join(component)})"


def test_no_import_cycles(graph):
    found = [describe_cycle(c, graph) for c in cycles(graph)]
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(found)


def test_only_tests_and_benchmarks_import_the_demo_from_outside_it():
    """vlmkit's own modules are covered above (demo is the top layer); here everything else in the repository."""
    outside = []
    for folder in [REPO, *(p for p in REPO.iterdir() if p.is_dir() and p.name not in (
            "vlmkit", "tests", "benchmarks", ".venv", ".git", "output") and not p.name.endswith(".egg-info"))]:
        for path in sorted(folder.glob("*.py") if folder == REPO else folder.rglob("*.py")):
            found = imports_of(path.read_text(), path.stem, False, {"vlmkit.demo"})
            if "vlmkit.demo" in found:
                outside.append(str(path.relative_to(REPO)))
    assert not outside, f"only tests/ and benchmarks/ may import vlmkit.demo; also imported by {outside}"


def test_every_module_has_a_layer(graph):
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"modules in no layer: {unplaced}; add them to TOP_LEVEL (a module) or SUBPACKAGE_LAYERS " \
                         f"(a package) in tests/core/test_layers.py, and to the rule in docs/architecture.md"
    assert {layer_of(m) for m in graph} == set(RANKS), "a layer of the rule has no module: update the rule"


# ---------------------------------------------------------------------------------------------- the checker itself
def _graph_of(tmp_path: Path, files: Mapping[str, str]) -> dict[str, set[str]]:
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path)


def test_checker_sees_function_level_relative_and_importlib_imports(tmp_path):
    graph = _graph_of(tmp_path, {
        "vlmkit/__init__.py": "",
        "vlmkit/errors.py": "",
        "vlmkit/models/__init__.py": "",
        "vlmkit/models/a.py": "def f():\n    from ..data import b\n",
        "vlmkit/data/__init__.py": "",
        "vlmkit/data/b.py": "import importlib\ndef g():\n    importlib.import_module('vlmkit.runners.r')\n",
        "vlmkit/runners/__init__.py": "",
        "vlmkit/runners/r.py": "from vlmkit.errors import Thing\nfrom . import s\n",
        "vlmkit/runners/s.py": "",
    })
    assert graph["vlmkit.models.a"] == {"vlmkit.data.b"}
    assert graph["vlmkit.data.b"] == {"vlmkit.runners.r"}
    assert graph["vlmkit.runners.r"] == {"vlmkit.errors", "vlmkit.runners.s"}
    assert violations(graph) == [
        "vlmkit.data.b imports vlmkit.runners.r: 'data' may not import the higher layer 'runners'",
        "vlmkit.models.a imports vlmkit.data.b: 'models' and 'data' are independent",
    ]


def test_checker_lists_a_cycle_hidden_in_a_function(tmp_path):
    graph = _graph_of(tmp_path, {
        "vlmkit/__init__.py": "",
        "vlmkit/schema.py": "def check():\n    from vlmkit.registry import REG\n",
        "vlmkit/registry.py": "from vlmkit.contracts import X\n",
        "vlmkit/contracts.py": "import vlmkit.schema\n",
        "vlmkit/errors.py": "",
    })
    assert cycles(graph) == [["vlmkit.contracts", "vlmkit.registry", "vlmkit.schema"]]
    assert describe_cycle(cycles(graph)[0], graph) == (
        "vlmkit.contracts -> vlmkit.schema -> vlmkit.registry -> vlmkit.contracts  "
        "(modules importing each other: vlmkit.contracts, vlmkit.registry, vlmkit.schema)")
    assert not violations(graph)


def test_demo_is_imported_by_nothing_else_in_vlmkit():
    assert not allowed("vlmkit.runners.trainer_x", "vlmkit.demo.synthetic")
    assert not allowed("vlmkit.cli", "vlmkit.demo")
    assert allowed("vlmkit.demo.pipeline", "vlmkit.assemble")


if __name__ == "__main__":  # a quick report: python tests/core/test_layers.py
    g = import_graph()
    print("\n".join(violations(g, KNOWN_EXCEPTIONS)) or "no violations")
    print("\n".join(describe_cycle(c, g) for c in cycles(g)) or "no cycles")
    sys.exit(0)
