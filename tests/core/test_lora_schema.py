"""``lora:`` is typed for every LLM that takes it: a misspelt key fails at ``vlmkit validate`` naming the key and
the accepted ones, before any model is built (issue 22 item 4)."""
import pytest

from vlmkit.cli import main
from vlmkit.registry import LLMS

PLLAVA = "train_configs/pllava/finetune_7b.yaml"


def lora_llms() -> list[str]:
    return [name for name in LLMS.names() if "lora" in LLMS.parameters(name)]


def test_the_causal_and_seq2seq_lms_take_lora():
    assert {"causal_lm", "seq2seq_lm"} <= set(lora_llms())


@pytest.mark.parametrize("llm", lora_llms())
def test_a_misspelt_lora_key_fails_at_validate(llm, capsys):
    rc = main(["validate", "--skip-files", PLLAVA, f"model.llm.name={llm}", "model.llm.lora={r: 4, alhpa: 8}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "model.llm.lora.alhpa: unknown key 'alhpa' for LoraSettings. Did you mean 'alpha'?" in err
    assert "Accepted keys: r, alpha=None, eval_alpha=None, dropout=0.0, target_modules='all-linear'" in err


def test_lora_values_are_typed_too(capsys):
    assert main(["validate", "--skip-files", PLLAVA, "model.llm.lora.dropout=1.5"]) == 2
    assert "model.llm.lora.dropout: must be below 1, got 1.5" in capsys.readouterr().err
    assert main(["validate", "--skip-files", PLLAVA, "model.llm.lora.bias=some"]) == 2
    assert "model.llm.lora.bias: expected one of 'none', 'all', 'lora_only', got 'some'" in capsys.readouterr().err
