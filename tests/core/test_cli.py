import subprocess
import sys
import textwrap

from vlmkit.cli import doctor_report, main


def test_list_shows_registered_components(isolated, capsys):
    from tests.core.components import register_toys

    register_toys()
    assert main(["list", "adapters"]) == 0
    out = capsys.readouterr().out
    assert "toy_proj" in out and "Projects to a width the model supplies." in out and "aka toy_projector" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("encoders", "adapters", "poolers", "llms", "models", "datasets", "tasks", "runners", "metrics"):
        assert f"\n{kind} (" in "\n" + out


def test_list_unknown_kind_suggests(capsys):
    assert main(["list", "adaptors"]) == 2
    assert "Did you mean adapters" in capsys.readouterr().err


def test_validate_good_and_bad_config(isolated, tmp_path, capsys):
    from tests.core.components import register_toys

    register_toys()
    good = tmp_path / "good.yaml"
    good.write_text(textwrap.dedent("""
        model: {name: toy_model, hidden: 8}
        datasets: {train: {name: toy_data, n: 3}}
        run: {name: toy_runner}
    """))
    assert main(["validate", str(good), "--purpose", "train", "run.lr=0.1"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["validate", str(good), "model.hiden=4"]) == 2
    err = capsys.readouterr().err
    assert "model.hiden: unknown key 'hiden' for model 'toy_model'. Did you mean 'hidden'?" in err
    assert "Accepted keys: hidden=8, dropout=0.0, adapter=None, frames=4" in err


def test_doctor_reports_stack():
    rows = dict(doctor_report())
    for key in ("torch", "CUDA", "transformers", "decord", "av", "flash-attn", "java", "attention", "video decoding"):
        assert key in rows
    assert rows["attention"].startswith("sdpa") or rows["attention"] == "flash_attention_2"


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "vlmkit.cli", "doctor"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "torch" in result.stdout
