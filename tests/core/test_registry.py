import sys
import textwrap

import pytest

from vlmkit import plugins
from vlmkit.errors import ConfigError, RegistryError
from vlmkit.registry import ADAPTERS, ALL, Registry, registry
from vlmkit.schema import Runtime


def make_registry():
    reg = Registry("widgets")

    @reg.register("round_widget", aliases=["round"])
    class RoundWidget:
        """A round widget."""

        def __init__(self, radius: float, in_dim: Runtime[int] = 0, label: str = "w"):
            self.radius, self.in_dim, self.label = radius, in_dim, label

    return reg, RoundWidget


def test_register_alias_and_describe():
    reg, cls = make_registry()
    assert reg.get("round_widget") is cls
    assert reg.get("round") is cls
    assert reg.canonical("round") == "round_widget"
    assert reg.entries()[0].description == "A round widget."
    assert "round" in reg and "square" not in reg


def test_duplicate_name_or_alias_rejected_unless_forced():
    reg, cls = make_registry()

    class Other:
        pass

    with pytest.raises(RegistryError, match="already registered"):
        reg.add("round_widget", Other)
    with pytest.raises(RegistryError, match="'round' is already registered"):
        reg.add("new_name", Other, aliases=["round"])
    reg.add("round_widget", Other, force=True)
    assert reg.get("round_widget") is Other
    assert "round" not in reg  # the old entry's aliases went with it


def test_miss_suggests_close_names_and_lists_all():
    reg, _ = make_registry()
    with pytest.raises(RegistryError) as info:
        reg.get("round_widgt")
    message = str(info.value)
    assert "Did you mean 'round_widget'" in message
    assert "Registered widgets: round, round_widget" in message


def test_build_binds_keys_and_runtime():
    reg, cls = make_registry()
    widget = reg.build({"name": "round", "radius": 2.5}, in_dim=7)
    assert isinstance(widget, cls) and widget.radius == 2.5 and widget.in_dim == 7
    assert reg.build({"type": "round", "radius": 1}).radius == 1  # 'type' works like 'name'


def test_build_rejects_unknown_key_naming_key_component_and_accepted():
    reg, _ = make_registry()
    with pytest.raises(ConfigError) as info:
        reg.build({"name": "round", "radius": 1.0, "radios": 2}, path="model.widget")
    message = str(info.value)
    assert "model.widget.radios" in message and "round_widget" in message
    assert "Accepted keys: radius, label='w'" in message


def test_build_rejects_runtime_argument_in_config_and_wrong_type_and_missing():
    reg, _ = make_registry()
    problems = reg.check({"name": "round", "in_dim": 3, "label": 5})
    text = "\n".join(map(str, problems))
    assert "widgets.in_dim" in text and "supplied by vlmkit" in text
    assert "widgets.label: expected str, got 5" in text
    assert "missing required key 'radius'" in text


def test_lazy_locations_import_on_first_lookup(tmp_path, monkeypatch):
    pkg = tmp_path / "lazy_widgets_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "spinner.py").write_text(textwrap.dedent("""
        from tests.core.test_registry import LAZY
        @LAZY.register("spinner")
        class Spinner:
            '''Spins.'''
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "lazy_widgets_pkg.spinner" not in sys.modules
    assert LAZY.names() == ["spinner"]
    assert "lazy_widgets_pkg.spinner" in sys.modules


LAZY = Registry("lazies", ["lazy_widgets_pkg"])


def test_isolated_undoes_registrations():
    before = ADAPTERS.names()
    with ADAPTERS.isolated():
        @ADAPTERS.register("temporary_adapter")
        def temporary_adapter():
            return 1

        assert "temporary_adapter" in ADAPTERS
    assert "temporary_adapter" not in ADAPTERS
    assert ADAPTERS.names() == before


def test_registry_kind_lookup():
    assert registry("encoders") is ALL["encoders"]
    with pytest.raises(RegistryError, match="Did you mean encoders"):
        registry("encoder")


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch, isolated):
    (tmp_path / "my_vlmkit_plugin.py").write_text(textwrap.dedent("""
        from vlmkit.registry import ADAPTERS
        @ADAPTERS.register("plugin_adapter")
        class PluginAdapter:
            '''From an installed plugin.'''
    """))
    dist = tmp_path / "my_vlmkit_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-vlmkit-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vlmkit.plugins]\nmine = my_vlmkit_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    plugins.load_entry_point_plugins()
    assert "plugin_adapter" in ADAPTERS


def test_stage_union_finds_adapters_and_poolers(isolated):
    from vlmkit.registry import POOLERS, STAGES

    @ADAPTERS.register("union_adapter")
    class UnionAdapter:
        def __init__(self, in_dim: Runtime[int]):
            self.in_dim = in_dim

    @POOLERS.register("union_pooler")
    class UnionPooler:
        def __init__(self, in_dim: Runtime[int], size: int = 2):
            self.size = size

    assert STAGES.build({"name": "union_adapter"}, in_dim=3).in_dim == 3
    assert STAGES.build({"name": "union_pooler", "size": 4}, in_dim=3).size == 4
    with pytest.raises(RegistryError, match="looked in adapters, poolers.*Did you mean 'union_pooler'"):
        STAGES.get("union_poler")
    with pytest.raises(RegistryError):
        STAGES.add("x", UnionAdapter)


def test_struct_values_are_checked_against_a_constructor():
    from typing import Optional

    from vlmkit.schema import StructList, check_value

    class Branch:
        def __init__(self, encoder: str, frames: int = 8, note: Optional[str] = None):
            pass

    annotation = StructList(Branch)
    assert check_value([{"encoder": "clip"}, {"encoder": "eva", "frames": 4}], annotation, "model.branches") == []
    problems = check_value([{"encoder": "clip", "frame": 4}, {"frames": 2}, 3], annotation, "model.branches")
    text = "\n".join(map(str, problems))
    assert "model.branches[0].frame: unknown key 'frame' for Branch. Did you mean 'frames'?" in text
    assert "model.branches[1].encoder: missing required key 'encoder'" in text
    assert "model.branches[2]: expected a mapping of Branch settings" in text


def test_union_reports_the_errors_of_the_option_that_matched_its_shape(isolated):
    from typing import Union

    from vlmkit.schema import Component, check_value

    @ADAPTERS.register("union_target")
    class UnionTarget:
        def __init__(self, width: int = 1):
            pass

    annotation = Union[Component("adapters"), dict[str, Component("adapters")]]
    problems = check_value({"name": "union_target", "widht": 2}, annotation, "run.tasks")
    assert len(problems) == 1 and "run.tasks.widht: unknown key 'widht'" in str(problems[0])
