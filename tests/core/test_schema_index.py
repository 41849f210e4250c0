"""The schema index (vlmkit.schema_index): validating a config imports only what it needs, and the committed index
is what the real registrations give (issue 22 item 4)."""
import json
import shutil
import subprocess
import sys

import pytest

from vlmkit import schema_index, schema_index_deps, schema_index_file
from vlmkit.registry import ALL
from vlmkit.schema import signature_of

PLLAVA = "train_configs/pllava/finetune_7b.yaml"
HEAVY = ("torch", "transformers", "timm", "peft", "numpy")


def run_python(code: str) -> dict:
    """Run ``code`` in a new interpreter (nothing imported yet); it prints one JSON line, returned here."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def imported_after(statements: str) -> dict:
    return run_python(f"""
import json, sys
{statements}
print(json.dumps({{"modules": sorted(sys.modules)}}))""")


@pytest.mark.slow
def test_the_committed_index_is_up_to_date():
    result = subprocess.run([sys.executable, "-m", "vlmkit.tools.schema_index", "--check"], capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_registry_of_the_package_is_fresh_in_the_index():
    stale = [kind for kind, reg in ALL.items() if schema_index.registry_part(kind, reg.locations) is None]
    assert not stale, f"schema index stale for {stale}: run python -m vlmkit.tools.schema_index"


def test_validating_a_full_size_recipe_imports_only_the_schema_modules():
    modules = imported_after(f"""
from vlmkit.cli import main
assert main(["validate", "--skip-files", "{PLLAVA}"]) == 0""")["modules"]
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    # no component module at all: signatures, hooks and the LLM's config keys came from the index
    components = [m for m in modules if m.startswith(("vlmkit.models.", "vlmkit.data.", "vlmkit.runners."))]
    # (the light modules of cross-field hooks are imported to run them)
    assert set(components) <= {"vlmkit.models.llms", "vlmkit.models.llms.lora_settings", "vlmkit.runners",
                               "vlmkit.runners.trainer_rules", "vlmkit.models.encoders",
                               "vlmkit.models.encoders.block_checkpointing"}, components


def test_building_one_component_imports_its_module_only():
    modules = set(imported_after("""
from vlmkit.registry import ENCODERS
assert "siglip" in ENCODERS and ENCODERS.get("clip").__name__ == "CLIPViTEncoder" """)["modules"])
    assert "vlmkit.models.encoders.clip_vit" in modules
    assert not {"vlmkit.models.encoders.siglip", "vlmkit.models.encoders.internvideo2",
                "vlmkit.models.llms.causal_lm"} & modules


def test_a_stale_index_is_not_used():
    """A source file that no longer hashes as recorded: that registry imports its modules, as without an index."""
    result = run_python(f"""
import json, sys
from vlmkit import schema_index
real = schema_index.file_key
schema_index.file_hash = lambda rel: "edited"
schema_index.file_key = lambda rel, names: "edited" if rel == "vlmkit/models/encoders/siglip.py" else real(rel, names)
from vlmkit.cli import main
assert main(["validate", "--skip-files", "{PLLAVA}"]) == 0
print(json.dumps({{"siglip": "vlmkit.models.encoders.siglip" in sys.modules,
                  "llms": "vlmkit.models.llms.causal_lm" in sys.modules}}))""")
    assert result == {"siglip": True, "llms": False}


CLIP = "vlmkit/models/encoders/clip_vit.py"
PACKING = "vlmkit/data/packing_settings.py"  # a struct (run.packing) the trainer's schema holds: another module
NEW_REGISTRATION = '''

@ENCODERS.register("clip_copy")
def clip_copy(width: int = 3) -> None:
    """A copy."""
'''
HELPER = '''
import math


def rounded(x: float, digits: int = 2) -> float:
    return round(x, digits)

'''
# (file, what is replaced, by what, whether the index stays fresh): edits outside what the entries are made of
# keep it; edits to a registration, a signature, a docstring's first line (the description) or a struct do not.
EDITS = {
    "method body and comment": (CLIP, "        self.drop_cls = drop_cls", "        self.drop_cls = bool(drop_cls)  # why",
                                True),
    "another method's signature": (CLIP, "def _features(self, pixels: torch.Tensor)",
                                   "def _features(self, pixels: torch.Tensor, scale: float = 1.0)", True),
    "a new helper and import": (CLIP, "\n# Real config values", HELPER + "\n# Real config values", True),
    "a preset value": (CLIP, '"image_size": 336}', '"image_size": 448}', True),
    "struct method body": (PACKING, "expected a mapping such as", "expected a mapping, e.g.", True),
    "default": (CLIP, "select_layer: int = -2", "select_layer: int = -1", False),
    "annotation": (CLIP, "drop_cls: bool = True", "drop_cls: Optional[bool] = True", False),
    "a parameter added": (CLIP, "checkpoint_offload: bool = False) -> None:",
                          "checkpoint_offload: bool = False, extra: int = 0) -> None:", False),
    "aliases": (CLIP, 'aliases=["clip"]', 'aliases=["clip", "openai_clip"]', False),
    "description": (CLIP, '"""CLIP ViT: ', '"""OpenAI CLIP ViT: ', False),
    "registration removed": (CLIP, '@ENCODERS.register("clip_vit", aliases=["clip"])\n', "", False),
    "registration added": (CLIP, "        return hidden[:, 1:] if self.drop_cls else hidden\n",
                           "        return hidden[:, 1:] if self.drop_cls else hidden\n" + NEW_REGISTRATION, False),
    "struct field default": (PACKING, "    max_length: Positive[int]\n", "    max_length: Positive[int] = 2048\n",
                             False),
    "type alias in another module": ("vlmkit/dtypes.py", '"bfloat16"]  # a component',
                                     '"bfloat16", "float64"]  # a component', False),
}


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the vlmkit sources, read by the index's freshness checks instead of the real ones."""
    shutil.copytree(schema_index.PACKAGE, tmp_path / "vlmkit", ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    monkeypatch.setattr(schema_index, "PACKAGE", tmp_path / "vlmkit")
    schema_index.clear_caches()
    yield tmp_path
    schema_index.clear_caches()


def recorded_for(rel: str) -> list:
    """What the committed index recorded for ``rel`` (from a registry that depends on it)."""
    for part in schema_index_file.load_index()["registries"].values():
        if rel in part["files"] and part["files"][rel][1]:
            return part["files"][rel]
    raise AssertionError(f"no registry depends on {rel}")


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edit_keeps_the_index_fresh_only_outside_what_it_holds(case, package_copy):
    rel, old, new, fresh = EDITS[case]
    path = package_copy / rel
    text = path.read_text()
    assert text.count(old) >= 1, f"{rel} no longer holds {old!r}: update the test"
    recorded = recorded_for(rel)
    assert schema_index._file_fresh(rel, recorded)
    path.write_text(text.replace(old, new, 1))
    schema_index.clear_caches()
    assert schema_index._file_fresh(rel, recorded) is fresh, case


@pytest.mark.parametrize("module", ["new_helpers.py", "__init__.py"])  # a new module, one that registered nothing
@pytest.mark.parametrize("registers", [False, True])
def test_a_plain_module_in_a_location_stales_the_index_only_if_it_comes_to_register(module, registers, package_copy):
    part = schema_index_file.load_index()["registries"]["encoders"]
    assert schema_index._fresh(part, part["locations"])
    assert f"vlmkit/models/encoders/{module}" not in part["files"]
    path = package_copy / "vlmkit" / "models" / "encoders" / module
    text = path.read_text() if path.exists() else ""
    path.write_text(text + "from vlmkit.registry import ENCODERS\n" + (NEW_REGISTRATION if registers else HELPER))
    schema_index.clear_caches()
    assert schema_index._fresh(part, part["locations"]) is not registers


FAKE_COMPONENT = '''from vlmkit.fake.consts import WIDTH
from vlmkit.registry import ENCODERS

SCALE = 2.0
UNUSED = 1


@ENCODERS.register("fake")
class Fake:
    """A fake encoder."""

    def __init__(self, width: int = WIDTH, scale: float = SCALE) -> None:
        self.width = width

    def forward(self) -> int:
        return 1
'''


def test_constants_a_default_names_are_tracked_in_their_own_module(tmp_path, monkeypatch):
    """Defaults naming constants (here, in the file and imported from another vlmkit module) are part of the key;
    other constants and method bodies are not."""
    folder = tmp_path / "vlmkit" / "fake"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "consts.py").write_text("WIDTH = 8\nHEIGHT = 4\n")
    (folder / "component.py").write_text(FAKE_COMPONENT)
    monkeypatch.setattr(schema_index_deps, "ROOT", tmp_path)
    component, consts = "vlmkit/fake/component.py", "vlmkit/fake/consts.py"
    tracked = schema_index_deps.closure({component: set()}, skip=set())
    assert {"Fake", "WIDTH", "SCALE"} <= tracked[component] and "UNUSED" not in tracked[component]
    assert tracked[consts] == {"WIDTH"}

    def keys() -> tuple[str, str]:
        schema_index_deps.clear_cache()
        return tuple(schema_index_deps.view(rel).key(sorted(tracked[rel])) for rel in (component, consts))

    before = keys()
    for rel, old, new, changed in [(consts, "HEIGHT = 4", "HEIGHT = 5", False),
                                   (component, "UNUSED = 1", "UNUSED = 2", False),
                                   (component, "return 1", "return 2", False),
                                   (consts, "WIDTH = 8", "WIDTH = 9", True),
                                   (component, "SCALE = 2.0", "SCALE = 3.0", True)]:
        path = tmp_path / rel
        original = path.read_text()
        path.write_text(original.replace(old, new))
        assert (keys() != before) is changed, (rel, old, new)
        path.write_text(original)
    schema_index_deps.clear_cache()


def test_indexed_schemas_equal_the_signatures():
    """The index's stand-ins give the signatures, attributes and hooks the classes have."""
    for kind, reg in ALL.items():
        for name in reg.names():
            real = reg.get(name)
            if not real.__module__.startswith("vlmkit."):
                continue  # a test's or plugin's own component, added at run time: never indexed
            indexed = schema_index.component_schema(kind, name)
            assert indexed is not None, (kind, name)
            got, want = signature_of(indexed).parameters, signature_of(real).parameters
            assert list(got) == list(want), (kind, name)
            for pname, param in want.items():
                assert got[pname].kind == param.kind and got[pname].default == param.default, (kind, name, pname)
            for attr in ("purpose", "requires_packages"):
                assert getattr(indexed, attr, None) == getattr(real, attr, None), (kind, name, attr)
            assert hasattr(indexed, "config_problems") == hasattr(real, "config_problems"), (kind, name)


def test_the_trainer_rules_run_from_the_index():
    trainer = schema_index.component_schema("runners", "trainer")
    message = str(trainer.config_problems({"max_epochs": 1, "max_steps": 5}, "run")[0])
    assert message.startswith("run: set exactly one of max_epochs and max_steps")
