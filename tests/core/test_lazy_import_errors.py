"""A component module that fails to import fails every lookup with its own error, never 'unknown name'; once
it is fixed, the next lookup loads it (a failed import must not leave a registry or the plugins half-loaded)."""
import importlib
import subprocess
import sys
import textwrap

import pytest

from vlmkit import plugins
from vlmkit.registry import ADAPTERS, Registry

BROKEN = "from vlmkit.registry import ADAPTERS\nraise ImportError('needs the package frobnicate')\n"
FIXED = textwrap.dedent("""
    from vlmkit.registry import ADAPTERS
    @ADAPTERS.register("lazily_fixed_adapter")
    class LazilyFixed:
        '''Registers once its import works.'''
""")


@pytest.fixture
def forget_modules():
    """The modules these tests write are dropped from sys.modules afterwards."""
    yield
    for name in [n for n in sys.modules if n.split(".")[0] in ("failing_widgets_pkg", "my_broken_vlmkit_plugin")]:
        del sys.modules[name]


def broken_package(root, name):
    """A component package whose registry is ``name.REG`` and whose ``widget`` module fails to import."""
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(
        f"from vlmkit.registry import Registry\nREG = Registry('widgets', ['{name}'])\n")
    (root / name / "good.py").write_text("")
    (root / name / "widget.py").write_text(f"raise ImportError('{name}.widget needs the package frobnicate')\n")
    return root / name / "widget.py"


def test_every_lookup_re_raises_a_components_import_error(tmp_path, monkeypatch, forget_modules):
    widget = broken_package(tmp_path, "failing_widgets_pkg")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = importlib.import_module("failing_widgets_pkg").REG
    for _ in range(2):
        with pytest.raises(ImportError, match="needs the package frobnicate"):
            reg.get("square")
    widget.write_text("from failing_widgets_pkg import REG\n\n@REG.register('square')\nclass Square:\n    pass\n")
    importlib.invalidate_caches()
    assert reg.get("square").__name__ == "Square"


def test_a_failing_entry_point_fails_again_and_loads_once_fixed(tmp_path, monkeypatch, isolated, forget_modules):
    module = tmp_path / "my_broken_vlmkit_plugin.py"
    module.write_text(BROKEN)
    dist = tmp_path / "my_broken_vlmkit_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-broken-vlmkit-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vlmkit.plugins]\nbroken = my_broken_vlmkit_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    for _ in range(2):
        with pytest.raises(ImportError, match="needs the package frobnicate") as raised:
            plugins.load_entry_point_plugins()
        assert "'broken = my_broken_vlmkit_plugin' entry point" in " ".join(raised.value.__notes__)
    module.write_text(FIXED)
    sys.modules.pop("my_broken_vlmkit_plugin", None)
    importlib.invalidate_caches()
    plugins.load_entry_point_plugins()
    assert "lazily_fixed_adapter" in ADAPTERS


def test_a_component_first_imported_inside_isolated_registries_stays_usable_after():
    """Built-in registries list names from the schema index and import a module on first use; undoing a block's
    registrations must not put the index's not-yet-imported listing back over the imported component (a fresh
    process, so that the template module is imported inside the block)."""
    code = ("from vlmkit.registry import TEMPLATES\n"
            "with TEMPLATES.isolated():\n"
            "    inside = TEMPLATES.get('vicuna_v1')\n"
            "assert TEMPLATES.get('vicuna_v1') is inside\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
