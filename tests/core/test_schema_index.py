"""The schema index (vlmkit.schema_index): validating a config imports only what it needs, and the committed index
is what the real registrations give (issue 22 item 4)."""
import json
import subprocess
import sys

import pytest

from vlmkit import schema_index, schema_index_file
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
real = schema_index.schema_hash
schema_index.file_hash = lambda rel: "edited"
schema_index.schema_hash = lambda rel: "edited" if rel == "vlmkit/models/encoders/siglip.py" else real(rel)
from vlmkit.cli import main
assert main(["validate", "--skip-files", "{PLLAVA}"]) == 0
print(json.dumps({{"siglip": "vlmkit.models.encoders.siglip" in sys.modules,
                  "llms": "vlmkit.models.llms.causal_lm" in sys.modules}}))""")
    assert result == {"siglip": True, "llms": False}


def test_an_edit_outside_the_schema_leaves_the_index_fresh(tmp_path, monkeypatch):
    """A method body or a comment changed: the index stays in use. A signature changed: it does not."""
    source = (schema_index.PACKAGE.parent / "vlmkit/models/encoders/clip_vit.py").read_text()
    copy = tmp_path / "vlmkit" / "models" / "encoders" / "clip_vit.py"
    copy.parent.mkdir(parents=True)
    monkeypatch.setattr(schema_index, "PACKAGE", tmp_path / "vlmkit")
    rel = "vlmkit/models/encoders/clip_vit.py"
    recorded = schema_index_file.load_index()["registries"]["encoders"]["files"][rel]
    body_edit = source.replace("        self.drop_cls = drop_cls", "        self.drop_cls = bool(drop_cls)  # why")
    signature_edit = source.replace("select_layer: int = -2", "select_layer: int = -1")
    assert source != body_edit and source != signature_edit
    for text, fresh in [(source, True), (body_edit, True), (signature_edit, False)]:
        copy.write_text(text)
        schema_index.file_hash.cache_clear()
        schema_index.schema_hash.cache_clear()
        assert schema_index._file_fresh(rel, recorded) is fresh
    schema_index.file_hash.cache_clear()
    schema_index.schema_hash.cache_clear()


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
