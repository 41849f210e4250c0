"""Packed rows through each decoder-only backbone (LLaMA, Qwen2, OPT, Phi-3 with and without a sliding window), sdpa
and eager: a conversation packed behind another gives its unpacked logits, and changing the other conversation
leaves them bit-identical (attention never crosses). Backbones that cannot pack say why."""
from __future__ import annotations

import pathlib

import pytest
import torch
import yaml

from vlmkit.registry import LLMS

PRESETS = pathlib.Path(__file__).resolve().parents[2] / "vlmkit" / "configs" / "models" / "llms"
BACKBONES = [("tiny_llama", {}), ("tiny_qwen2", {}), ("tiny_opt", {}), ("tiny_phi3", {}),
             ("tiny_phi3", {"sliding_window": 4})]  # a window shorter than a conversation: it must be kept


def tiny(name: str, config: dict, attn: str):
    torch.manual_seed(0)
    cfg = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    cfg["config"] = {**cfg["config"], **config}
    return LLMS.build({**cfg, "attn_implementation": attn}).eval()


def packed_row(first: torch.Tensor, second: torch.Tensor, pad: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.cat([first, second, torch.zeros(pad, dtype=torch.long)])[None]
    positions = torch.cat([torch.arange(len(first)), torch.arange(len(second)), torch.arange(pad)])[None]
    return ids, positions


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name,config", BACKBONES, ids=["llama", "qwen2", "opt", "phi3", "phi3-sliding"])
def test_packed_conversation_attends_only_to_itself(name, config, attn):
    model = tiny(name, config, attn)
    generator = torch.Generator().manual_seed(1)
    first, second = torch.randint(4, 500, (7,), generator=generator), torch.randint(4, 500, (9,), generator=generator)
    with torch.no_grad():
        alone = model(inputs_embeds=model.embed(second[None])).logits[0]
        ids, positions = packed_row(first, second)
        packed = model(inputs_embeds=model.embed(ids), position_ids=positions).logits[0, 7:16]
        changed = first.clone()
        changed[2:] = torch.randint(4, 500, (5,), generator=generator)
        ids, positions = packed_row(changed, second)
        after_change = model(inputs_embeds=model.embed(ids), position_ids=positions).logits[0, 7:16]
    assert torch.allclose(packed, alone, atol=1e-5), (packed - alone).abs().max()
    assert torch.equal(packed, after_change)


def test_packed_loss_is_the_loss_over_each_conversations_own_labels():
    model = tiny("tiny_llama", {}, "sdpa")
    first, second = torch.arange(10, 17), torch.arange(30, 39)
    labels = [torch.cat([torch.full((3,), -100), seq[3:]]) for seq in (first, second)]
    with torch.no_grad():
        alone = [model(inputs_embeds=model.embed(s[None]), labels=lab[None]) for s, lab in zip((first, second), labels)]
        ids, positions = packed_row(first, second)
        packed_labels = torch.cat([labels[0], labels[1], torch.full((3,), -100)])[None]
        packed = model(inputs_embeds=model.embed(ids), position_ids=positions, labels=packed_labels)
    counts = [int((lab[1:] != -100).sum()) for lab in labels]
    expected = sum(float(out.loss) * n for out, n in zip(alone, counts)) / sum(counts)
    assert float(packed.loss) == pytest.approx(expected, abs=1e-5)


def test_flash_attention_lays_packed_rows_end_to_end(monkeypatch):
    """flash_attention_2 reads packed conversations from position_ids only in a one-row batch: the rows go in as one
    row and the logits come back as rows (checked here on sdpa, whose mask transformers builds from the same
    position_ids, so the one-row call must give the rows' logits)."""
    from vlmkit.models.llms import packed_rows

    model = tiny("tiny_llama", {}, "sdpa")
    rows = torch.randint(4, 500, (2, 12), generator=torch.Generator().manual_seed(3))
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 0, 1]])
    with torch.no_grad():
        expected = model(inputs_embeds=model.embed(rows), position_ids=positions).logits
        seen = {}
        real = model.model.forward

        def spy(**kwargs):
            seen["shape"] = tuple(kwargs["inputs_embeds"].shape)
            return real(**kwargs)

        monkeypatch.setattr(model.model, "forward", spy)
        out = packed_rows.packed_forward(model.model, "flash_attention_2", model.embed(rows), positions)
    assert seen["shape"][:2] == (1, 24)
    assert torch.allclose(out.logits, expected, atol=1e-5)


def test_backbones_that_cannot_pack_say_why():
    llama = tiny("tiny_llama", {}, "sdpa")
    assert llama.packing_problem() is None
    llama.attn_implementation = "flex_attention"  # an attention packed_rows does not handle
    assert "'flex_attention'" in llama.packing_problem() and "sdpa, eager, flash_attention_2" in llama.packing_problem()
    t5 = tiny("tiny_t5", {}, "eager")
    assert "encoder-decoder" in t5.packing_problem() and "causal_lm" in t5.packing_problem()
