"""LAVIS InstructBLIP checkpoints load into ``instruct_qformer`` strictly (text parts included) and the loaded
Q-Former computes what transformers' InstructBlipQFormerModel computes from the same tensors."""
from __future__ import annotations

import pytest
import torch
from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

from tests.models.published_keys import BertQFormerSize, lavis_instructblip
from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.models.checkpoints.keymap import CheckpointMismatch
from vlmkit.models.checkpoints.load import load_checkpoint
from vlmkit.models.weight_sources import source_report

ENC, QF, PROJ = "branches.0.encoder", "branches.0.stages.0", "branches.0.stages.2"
# videotgb/tiny_llama's sizes: Q-Former 32 wide, FFN 64, 2 layers, cross-attention in every layer, EVA width 32,
# vocabulary 512, 512 positions (the config default), 4 queries, LLaMA width 64
SIZE = BertQFormerSize(hidden=32, intermediate=64, layers=2, cross_attention_freq=1, encoder_width=32, vocab=512)
TARGETS = f"{{qformer: {QF}, encoder: {ENC}, projector: {PROJ}}}"


def lavis_checkpoint(path, drop=()):
    torch.manual_seed(7)
    state = {name: torch.randn(shape) for name, shape in lavis_instructblip(SIZE, 4, 32, 64).items()
             if name not in drop}
    state["Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    torch.save({"model": state}, path)  # LAVIS's wrapping
    return state


def build(tmp_path, *overrides):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: videotgb/tiny_llama}\n")
    torch.manual_seed(0)
    return build_model(load_config(path, list(overrides))).eval()


def transformers_names(state):
    """LAVIS -> transformers InstructBLIP Q-Former names, after transformers'
    models/instructblip/convert_instructblip_original_to_pytorch.py ('Qformer.bert' -> 'qformer',
    'embeddings.LayerNorm' -> 'embeddings.layernorm', 'attention.self' -> 'attention.attention')."""
    out = {}
    for key, value in state.items():
        if key.startswith("Qformer.bert.") and not key.endswith("position_ids"):
            name = key.removeprefix("Qformer.bert.").replace("embeddings.LayerNorm", "embeddings.layernorm")
            out[name.replace("attention.self.", "attention.attention.")] = value
    return out


def test_a_lavis_instructblip_checkpoint_fills_the_instruct_qformer_through_init_weights(tmp_path):
    state = lavis_checkpoint(tmp_path / "instruct_blip_vicuna7b_trimmed.pth")
    model = build(tmp_path, f"model.init_weights=[{{path: {tmp_path / 'instruct_blip_vicuna7b_trimmed.pth'}, "
                            f"layout: instructblip_lavis, targets: {TARGETS}}}]")
    report = source_report(model, [ENC, QF, PROJ])
    source = f"{tmp_path / 'instruct_blip_vicuna7b_trimmed.pth'} (instructblip_lavis)"
    assert set(report[QF]) == {source} and set(report[PROJ]) == {source}  # every parameter from the file
    assert report[ENC][source] == 64  # ln_vision -> the tower's post_layernorm
    qformer = model.get_submodule(QF).qformer
    for lavis, ours in (("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"),
                        ("embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight"),
                        ("embeddings.LayerNorm.bias", "embeddings.layernorm.bias"),
                        ("encoder.layer.1.intermediate.dense.weight", "encoder.layer.1.intermediate.dense.weight"),
                        ("encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.weight")):
        assert torch.equal(qformer.get_parameter(ours), state[f"Qformer.bert.{lavis}"]), lavis
    assert torch.equal(model.get_submodule(PROJ).proj.weight, state["llm_proj.weight"])
    report = load_checkpoint(model, tmp_path / "instruct_blip_vicuna7b_trimmed.pth", "instructblip_lavis",
                             qformer=QF, encoder=ENC, projector=PROJ)
    assert report.ok and report.dropped == ["Qformer.bert.embeddings.position_ids"]
    assert len(report.loaded) == len(state) - 1


def test_the_loaded_instruct_qformer_matches_transformers_instructblip_qformer(tmp_path):
    state = lavis_checkpoint(tmp_path / "ckpt.pth")
    model = build(tmp_path)
    load_checkpoint(model, tmp_path / "ckpt.pth", "instructblip_lavis", qformer=QF)
    stage = model.get_submodule(QF)
    reference = InstructBlipQFormerModel(InstructBlipQFormerConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=512,
        cross_attention_frequency=1, encoder_hidden_size=32)).eval()
    reference.load_state_dict(transformers_names(state), strict=True)
    frames = torch.randn(2, 3, 5, 32)  # (batch, frames, ln_vision'd EVA tokens, width)
    text = torch.randint(1, 512, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        ours = stage(frames, text, mask)
        # LAVIS Blip2VicunaInstruct.generate on video: per frame, Qformer.bert(text ids, [query atts, text atts],
        # query_embeds=query_tokens, encoder_hidden_states=frame), the query positions kept
        queries = state["query_tokens"].expand(2, -1, -1)
        attention = torch.cat([torch.ones(2, 4, dtype=mask.dtype), mask], dim=1)
        expected = torch.stack([reference(input_ids=text, attention_mask=attention, query_embeds=queries,
                                          encoder_hidden_states=frames[:, t]).last_hidden_state[:, :4]
                                for t in range(3)], dim=1)
        other_text = stage(frames, torch.randint(1, 512, (2, 6)), mask)
    assert ours.shape == (2, 3, 4, 32)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours, other_text, atol=1e-3)  # the instruction reaches the queries


def test_blip2_lavis_into_an_instruct_qformer_is_refused_naming_the_layout_that_fits(tmp_path):
    lavis_checkpoint(tmp_path / "ckpt.pth")
    model = build(tmp_path)
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(model, tmp_path / "ckpt.pth", "blip2_lavis", qformer=QF)
    message = str(err.value)
    assert f"Qformer.bert.embeddings.LayerNorm.weight -> {QF}.qformer.layernorm.weight (the module has no" in message
    assert f"{QF}.qformer.embeddings.word_embeddings.weight" in message  # dropped by blip2_lavis: missing
    assert "hint: if the Q-Former is an instruct_qformer (InstructBLIP), use layout 'instructblip_lavis'" in message


def test_a_checkpoint_without_the_text_feed_forward_is_refused_by_name(tmp_path):
    lavis_checkpoint(tmp_path / "ckpt.pth", drop=("Qformer.bert.encoder.layer.1.intermediate.dense.weight",))
    model = build(tmp_path)
    before = model.get_submodule(QF).qformer.embeddings.word_embeddings.weight.clone()
    with pytest.raises(CheckpointMismatch, match=rf"1 missing .*\n  {QF}\.qformer\.encoder\.layer\.1\."
                                                 rf"intermediate\.dense\.weight"):
        load_checkpoint(model, tmp_path / "ckpt.pth", "instructblip_lavis", qformer=QF)
    assert torch.equal(model.get_submodule(QF).qformer.embeddings.word_embeddings.weight, before)


def test_the_default_vocabulary_is_instructblips_so_full_size_checkpoints_fit():
    from vlmkit.models.adapters.instruct_qformer import InstructQFormer

    with torch.device("meta"):
        stage = InstructQFormer(in_dim=1408, num_layers=1, require_text=False)
    # LAVIS resizes to len(BERT tokenizer + [DEC]); transformers' Salesforce/instructblip-* configs say 30523 too
    assert tuple(stage.qformer.embeddings.word_embeddings.weight.shape) == (30523, 768)
