"""Outside components: modules named in a config's ``imports:`` and the ``vlmkit.plugins`` entry points."""
from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable

from vlmkit.errors import ConfigError

ENTRY_POINT_GROUP = "vlmkit.plugins"
_entry_points_loaded = False


def import_modules(modules: Iterable[str], path: str = "imports") -> None:
    """Import each module so its ``@REGISTRY.register`` decorators run."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"{path}[{i}]", f"cannot import plugin module '{module}': {err}. "
                                              "It must be importable (installed, or on PYTHONPATH)") from err


def load_entry_point_plugins() -> None:
    """Load every installed package's ``vlmkit.plugins`` entry point, once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True  # set first: a plugin's registrations look registries up, which calls us again
    try:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = entry_point.load()  # a module, or a function that registers components
            except Exception as err:
                err.add_note(f"while loading the '{entry_point.name} = {entry_point.value}' entry point of the "
                             f"{ENTRY_POINT_GROUP} group (an installed plugin package)")
                raise
            if callable(loaded) and not isinstance(loaded, type(importlib)):
                loaded()
    except BaseException:
        _entry_points_loaded = False  # the next call retries and re-raises, instead of skipping the plugins
        raise
