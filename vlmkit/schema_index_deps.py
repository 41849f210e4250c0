"""What in a source file the schema index depends on, read from its AST (``ast.parse``: no import, ~1 ms a file).

An index entry is made from a registration (``@REG.register(...)``: name, aliases, description) and the registered
object's signature (``__init__`` or the function's arguments: annotations, defaults), docstring's first line,
``purpose``, ``requires_packages`` and ``config_problems``.  Those read other definitions: base classes, the
structs and type aliases an annotation names, the constants a default names, the function a hook names.  So a
file's *key* hashes only:

- its registrations (decorators and module-level statements that call ``.register``/``REG.add``), always, so a new
  or removed registration changes it;
- the projection of each *tracked name* of the file: a class's header, docstring line, fields and ``purpose``-like
  attributes and the signatures of ``__init__``/``__new__``/``config_problems``; a function's decorators, arguments
  and docstring line (its whole code when a registration calls it to make what it registers); an assignment or an
  import as written.  A name no longer bound hashes as missing.

``closure`` finds the tracked names when the index is written: the registered objects, their vlmkit base classes
and hooks (from the real objects), and every name those projections mention, followed within the file and through
``from vlmkit... import`` into other files.  Method bodies, other functions and classes, comments and unrelated
imports are outside every key: editing them leaves the index fresh.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the folder that holds the vlmkit package
# Class members that shape an entry (signature_of reads __init__; schema.check_signature the others).
CLASS_MEMBERS = {"__init__", "__new__", "__signature__", "purpose", "requires_packages", "config_problems"}
CALLED = "()"  # suffix of a tracked name whose whole code counts (a registration calls it)


def module_file(module: str, root: pathlib.Path | None = None) -> pathlib.Path | None:
    """The source file of a vlmkit module (a package's ``__init__.py``), found without importing it."""
    if module != "vlmkit" and not module.startswith("vlmkit."):
        return None
    base = (root or ROOT).joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _parse(path: pathlib.Path) -> ast.Module:
    try:
        return ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return ast.Module(body=[], type_ignores=[])  # gone or unreadable: every tracked name hashes as missing


def clear_cache() -> None:
    _parse.cache_clear()


def _is_registration(node: ast.AST) -> bool:
    """``X.register`` anywhere in it, or ``REG.add`` on an upper-case name (a registry)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and (sub.attr == "register" or (
                sub.attr == "add" and isinstance(sub.value, ast.Name) and sub.value.id.isupper())):
            return True
    return False


def _statements(body: list[ast.stmt]):
    """Top-level statements, those inside module-level ``if``/``try``/``with`` blocks included."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in (getattr(node, "body", []), getattr(node, "orelse", []), getattr(node, "finalbody", []),
                          *[h.body for h in getattr(node, "handlers", [])]):
                yield from _statements(block)


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, (ast.AnnAssign, ast.AugAssign)) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


class FileView:
    """One source file's top-level bindings and registrations."""

    def __init__(self, path: pathlib.Path, module: str) -> None:
        self.module = module  # dotted name, for relative imports
        self.is_package = path.name == "__init__.py"
        tree = _parse(path)
        self.bindings: dict[str, list[ast.stmt]] = {}
        self.registrations: list[ast.stmt] = []  # module-level statements that register
        self.registered: list[str] = []  # names of defs and classes with a registering decorator
        for node in _statements(tree.body):
            if isinstance(node, (ast.If, ast.Try, ast.With)):
                continue
            for name in _bound_names(node):
                self.bindings.setdefault(name, []).append(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if any(_is_registration(d) for d in node.decorator_list):
                    self.registered.append(node.name)
            elif _is_registration(node):
                self.registrations.append(node)

    # ------------------------------------------------------------------ projections
    def _pieces(self, name: str) -> list[ast.AST]:
        """The AST parts of ``name``'s definitions that can shape an entry (see the module docstring)."""
        called = name.endswith(CALLED)
        name = name.removesuffix(CALLED)
        pieces: list[ast.AST] = []
        for node in self.bindings.get(name, []):
            if isinstance(node, (ast.Import, ast.ImportFrom)):  # only the alias that binds ``name``
                kept = [a for a in node.names if (a.asname or a.name).split(".")[0] == name]
                pieces.append(type(node)(**{**{f: getattr(node, f, None) for f in node._fields}, "names": kept}))
            elif called or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                pieces.append(node)
            elif isinstance(node, ast.ClassDef):
                pieces += [*node.decorator_list, *node.bases, *node.keywords, ast.Constant(_doc_line(node))]
                for member in node.body:
                    if isinstance(member, ast.AnnAssign) or (isinstance(member, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id in CLASS_MEMBERS for t in member.targets)):
                        pieces.append(member)
                    elif isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and member.name in CLASS_MEMBERS:
                        pieces += [ast.Constant(member.name), *member.decorator_list, member.args]
            else:
                pieces += [*node.decorator_list, node.args, ast.Constant(_doc_line(node))]
        return pieces or [ast.Constant(f"{name}: missing")]

    def key(self, names: list[str]) -> str:
        """The hash of this file's registrations and of the projections of ``names`` (as ``ast.unparse`` writes
        them: formatting and comments left out, and the same text on every Python version, unlike ``ast.dump``)."""
        text = [ast.unparse(n) for n in self.registrations]
        text.append(repr(self.registered))
        for name in sorted(names):
            text.append(name)
            text += [ast.unparse(p) for p in self._pieces(name)]
        return hashlib.sha1("\n".join(text).encode()).hexdigest()

    # ------------------------------------------------------------------ what a projection refers to
    def references(self, name: str) -> list[tuple[str, bool]]:
        """Names (``name`` or ``module_alias.attr``) the projection of ``name`` mentions; True for a call's target."""
        if name == "":  # the registration statements (decorated definitions are tracked by their names)
            pieces: list[ast.AST] = list(self.registrations)
        else:
            pieces = self._pieces(name)
        called = {id(c.func) for p in pieces for c in ast.walk(p) if isinstance(c, ast.Call)}
        found = []
        for piece in pieces:
            for sub in ast.walk(piece):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name):
                    found.append((f"{sub.value.id}.{sub.attr}", id(sub) in called))
                elif isinstance(sub, ast.Name):
                    found.append((sub.id, id(sub) in called))
                elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value.isidentifier():
                    found.append((sub.value, False))  # a string annotation ("Foo")
        return found

    def import_target(self, name: str) -> tuple[str, str] | None:
        """Where an imported ``name`` (or ``alias.attr``) is defined in vlmkit: (module, name there or '')."""
        head, _, attr = name.partition(".")
        for node in self.bindings.get(head, []):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = self.module if self.is_package else self.module.rpartition(".")[0]
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                for alias in node.names:
                    if (alias.asname or alias.name) == head:
                        if module_file(f"{base}.{alias.name}") is not None:  # a submodule
                            return f"{base}.{alias.name}", attr
                        return base, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == head:
                        return alias.name, attr
        return None


def _doc_line(node: ast.AST) -> str:
    doc = (ast.get_docstring(node) or "").strip()
    return doc.splitlines()[0] if doc else ""


def rel_of(path: pathlib.Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def module_of(rel: str) -> str:
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def view(rel: str, root: pathlib.Path | None = None) -> FileView:
    return FileView((root or ROOT) / rel, module_of(rel))


def closure(roots: dict[str, set[str]], skip: set[str]) -> dict[str, set[str]]:
    """The tracked names of every file the entries depend on: ``roots`` (file -> top-level names, e.g. the
    registered classes, their bases and hooks; every location file with an empty set for its registrations), then
    what their projections mention, followed through imports from vlmkit modules (``skip``: core files, not
    followed)."""
    tracked: dict[str, set[str]] = {rel: set() for rel in roots}
    work = [(rel, "") for rel in roots] + [(rel, name) for rel, names in roots.items() for name in names]
    seen = set()
    while work:
        rel, name = work.pop()
        if (rel, name) in seen:
            continue
        seen.add((rel, name))
        file = view(rel)
        if name:
            tracked.setdefault(rel, set()).add(name)
            follow = [(name.removesuffix(CALLED), name.endswith(CALLED))]  # an imported name: where it is defined
        else:
            work += [(rel, registered) for registered in file.registered]
            follow = []
        for ref, called in file.references(name):
            head = ref.partition(".")[0]
            if head not in file.bindings:
                continue  # a builtin, or a name bound elsewhere (star import): not followed
            work.append((rel, head + (CALLED if called and ref == head else "")))
            if ref != head:
                follow.append((ref, called))  # ``module.attr``: attr's definition, if ``module`` is a vlmkit module
        for ref, called in follow:
            target = file.import_target(ref)
            path = target and target[1] and module_file(target[0])
            if path:  # else outside vlmkit, or a module used as a whole (its registrations are its own)
                other = rel_of(path)
                if other not in skip:
                    work.append((other, target[1] + (CALLED if called else "")))
    return tracked
