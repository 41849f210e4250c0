"""Published checkpoint layouts (LAVIS BLIP-2, transformers BLIP-2, Video-LLaMA, MiniGPT-4, LLMVA-GEBC, Video-XL) load
into vlmkit modules through explicit key maps, strictly, with readable reports."""
from __future__ import annotations

import json
import re

import pytest
import safetensors.torch
import torch
from transformers import Blip2ForConditionalGeneration

from tests.models.test_published_key_lists import BLIP2_TINY, class_shapes, video_xl_released_names
from tests.models.tiny_published_checkpoints import blip2_stage1_checkpoint, random_tensors, video_llama_checkpoint
from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.errors import DataError
from vlmkit.models.adapters.video_qformer import VideoQFormer
from vlmkit.models.checkpoints import layouts
from vlmkit.models.checkpoints.io import read_state_dict
from vlmkit.models.checkpoints.keymap import CheckpointMismatch, load_mapped, locate
from vlmkit.models.checkpoints.load import load_checkpoint

ENC, QF, VQ, PROJ = "branches.0.encoder", "branches.0.stages.0", "branches.0.stages.1", "branches.0.stages.2"


def tiny(tmp_path, preset, seed):
    path = tmp_path / f"{seed}.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    torch.manual_seed(seed)
    return build_model(load_config(path))


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# Published names (from the independent lists of published_keys.py: LAVIS / Video-LLaMA model code) and the
# vlmkit parameters they must land on: the transformers Blip2QFormerModel names ('attention.attention' for BERT's
# 'attention.self', 'layernorm' for the embeddings' LayerNorm) and the tower's post_layernorm for ln_vision.
REAL_NAMES = {
    "video_Qformer.bert.embeddings.LayerNorm.weight": f"{VQ}.qformer.layernorm.weight",
    "video_Qformer.bert.encoder.layer.0.attention.self.query.weight":
        f"{VQ}.qformer.encoder.layer.0.attention.attention.query.weight",
    "video_Qformer.bert.encoder.layer.1.crossattention.self.value.bias":
        f"{VQ}.qformer.encoder.layer.1.crossattention.attention.value.bias",
    "video_Qformer.bert.encoder.layer.1.crossattention.output.LayerNorm.weight":
        f"{VQ}.qformer.encoder.layer.1.crossattention.output.LayerNorm.weight",
    "video_Qformer.bert.encoder.layer.0.attention.output.dense.bias":
        f"{VQ}.qformer.encoder.layer.0.attention.output.dense.bias",
    "video_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight":
        f"{VQ}.qformer.encoder.layer.0.intermediate_query.dense.weight",
    "video_Qformer.bert.encoder.layer.1.output_query.LayerNorm.bias":
        f"{VQ}.qformer.encoder.layer.1.output_query.LayerNorm.bias",
    "video_query_tokens": f"{VQ}.query_tokens",
    "video_frame_position_embedding.weight": f"{VQ}.frame_position_embedding.weight",
    "llama_proj.weight": f"{PROJ}.proj.weight",
    "Qformer.bert.encoder.layer.0.crossattention.self.key.weight":
        f"{QF}.qformer.encoder.layer.0.crossattention.attention.key.weight",
    "query_tokens": f"{QF}.query_tokens",
    "ln_vision.weight": f"{ENC}.model.post_layernorm.weight",
}
# Names in Video-LLaMA / BLIP-2 files that the video_llama layout must drop: BLIP-2's text parts and MLM head
# (published_keys), the audio branch's Q-Former and the frozen LLaMA / EVA weights of a full state dict
# (video_llama.py: audio_Qformer, llama_model, visual_encoder).
DROPPED = ["Qformer.bert.embeddings.word_embeddings.weight", "Qformer.bert.encoder.layer.1.output.dense.weight",
           "Qformer.cls.predictions.transform.dense.weight", "audio_Qformer.bert.encoder.layer.0.attention.self.query.weight",
           "llama_model.model.layers.0.self_attn.q_proj.weight", "visual_encoder.blocks.0.attn.qkv.weight"]


def test_real_video_llama_names_map_onto_the_tiny_models_parameters(tmp_path):
    model = tiny(tmp_path, "video_llama/tiny", 0)
    assert locate(model, VideoQFormer) == VQ
    keymap = layouts.video_llama(VQ, PROJ, qformer=QF, encoder=ENC)
    published = {**video_llama_checkpoint(), **blip2_stage1_checkpoint()}
    assert set(REAL_NAMES) <= set(published) and set(DROPPED[:3]) <= set(published)  # names with a source
    own = model.state_dict()
    for source, target in REAL_NAMES.items():
        mapped, _, dropped = keymap.target_of(source)
        assert (mapped, dropped) == (target, False) and mapped in own, source
    for source in DROPPED:
        assert keymap.target_of(source) == (None, None, True), source
    # every name of the published video branch lands on a parameter of the model, no two on the same one; only
    # the embeddings' position_ids buffer (kept by Video-LLaMA when it deletes the text parts) is dropped
    mapped = {name: keymap.target_of(name) for name in video_llama_checkpoint(audio=False)}
    assert {name for name, (_, _, dropped) in mapped.items() if dropped} == {
        "video_Qformer.bert.embeddings.position_ids"}
    targets = [target for target, _, dropped in mapped.values() if not dropped]
    assert len(set(targets)) == len(targets) and set(targets) <= set(own)


def test_lavis_blip2_and_video_llama_checkpoints_fill_the_model(tmp_path):
    """Two models with different random weights load the same file and end up equal in every targeted part: all
    of it came from the file. Spot checks against the published names say where values land."""
    first, second = tiny(tmp_path, "video_llama/tiny", 0), tiny(tmp_path, "video_llama/tiny", 1)
    assert not same(first.get_submodule(QF), second.get_submodule(QF))
    blip2 = blip2_stage1_checkpoint()
    for model in (first, second):
        report = load_mapped(model, blip2, layouts.blip2_lavis(QF, encoder=ENC))
        assert report.ok
    assert same(first.get_submodule(QF), second.get_submodule(QF))
    heads = ("Qformer.cls.", "vision_proj.", "text_proj.", "itm_head.", "temp")
    text = re.compile(r"embeddings\.(word|position)_|layer\.\d+\.(intermediate|output)\.")
    assert set(report.dropped) == {k for k in blip2 if k.startswith(heads) or text.search(k)}
    assert torch.equal(first.get_submodule(ENC).model.post_layernorm.weight, blip2["ln_vision.weight"])
    assert torch.equal(first.get_submodule(QF).query_tokens, blip2["query_tokens"])
    assert torch.equal(first.get_submodule(QF).qformer.encoder.layer[1].output_query.dense.weight,
                       blip2["Qformer.bert.encoder.layer.1.output_query.dense.weight"])
    state = video_llama_checkpoint()
    for model in (first, second):
        report = load_mapped(model, state, layouts.video_llama(VQ, PROJ))
        assert report.ok and set(report.dropped) == {"video_Qformer.bert.embeddings.position_ids", "audio_query_tokens"}
    assert same(first.get_submodule(VQ), second.get_submodule(VQ))
    assert same(first.get_submodule(PROJ), second.get_submodule(PROJ))
    assert torch.equal(first.get_submodule(VQ).frame_position_embedding.weight,
                       state["video_frame_position_embedding.weight"])
    assert torch.equal(first.get_submodule(VQ).qformer.encoder.layer[0].crossattention.attention.key.weight,
                       state["video_Qformer.bert.encoder.layer.0.crossattention.self.key.weight"])
    assert torch.equal(first.get_submodule(PROJ).proj.bias, state["llama_proj.bias"])


def test_transformers_blip2_layout(tmp_path):
    # names from transformers' Blip2ForConditionalGeneration itself (on meta), at video_llama/tiny's sizes
    state = random_tensors(class_shapes(Blip2ForConditionalGeneration, BLIP2_TINY))
    first, second = tiny(tmp_path, "video_llama/tiny", 0), tiny(tmp_path, "video_llama/tiny", 1)
    for model in (first, second):
        assert load_mapped(model, state, layouts.blip2_hf(QF, encoder=ENC)).ok
    assert same(first.get_submodule(QF), second.get_submodule(QF))
    assert same(first.get_submodule(ENC), second.get_submodule(ENC))
    assert torch.equal(first.get_submodule(QF).query_tokens, state["query_tokens"])
    assert torch.equal(first.get_submodule(ENC).model.post_layernorm.weight, state["vision_model.post_layernorm.weight"])


def test_strict_loading_lists_missing_unexpected_and_mismatched_keys_and_writes_nothing(tmp_path):
    target = tiny(tmp_path, "video_llama/tiny", 1)
    state = video_llama_checkpoint()
    del state["video_Qformer.bert.encoder.layer.1.crossattention.self.key.weight"]
    state["video_Qformer.bert.encoder.layer.7.attention.self.query.weight"] = torch.randn(32, 32)
    state["video_fusion_head.weight"] = torch.randn(3)
    state["llama_proj.weight"] = torch.randn(128, 32)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatch) as err:
        load_mapped(target, state, layouts.video_llama(VQ, PROJ), source="pretrain-vicuna7b.pth")
    message = str(err.value)
    assert "checkpoint pretrain-vicuna7b.pth (layout 'video_llama')" in message
    assert f"1 missing (the module expects them, the checkpoint lacks them):\n  " \
           f"{VQ}.qformer.encoder.layer.1.crossattention.attention.key.weight" in message
    assert (f"video_Qformer.bert.encoder.layer.7.attention.self.query.weight -> "
            f"{VQ}.qformer.encoder.layer.7.attention.attention.query.weight (the module has no such parameter)"
            in message)
    assert "video_fusion_head.weight (no rule of layout 'video_llama' maps it)" in message
    assert f"llama_proj.weight -> {PROJ}.proj.weight: checkpoint (128, 32), module (64, 32)" in message
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    # not strict: the good part loads and the report says what did not
    report = load_mapped(target, state, layouts.video_llama(VQ, PROJ), strict=False)
    assert not report.ok and torch.equal(target.get_submodule(VQ).query_tokens, state["video_query_tokens"])


def test_a_checkpoint_without_a_required_part_is_refused(tmp_path):
    target = tiny(tmp_path, "video_llama/tiny", 1)
    with pytest.raises(CheckpointMismatch, match=rf"missing.*\n  {PROJ}\.proj\.weight"):
        load_mapped(target, {"Qformer.bert.embeddings.LayerNorm.weight": torch.ones(32)}, layouts.minigpt4(PROJ))


def gebc_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """An LLMVA-GEBC checkpoint (video_blip2_opt_gebc): Video-LLaMA's video branch without llama_proj, plus
    temporal_pos_trans Linear(H, H) + temporal_pos_trans_norm LayerNorm(H) and opt_proj Linear(H, OPT width)."""
    state = {k: v for k, v in video_llama_checkpoint(seed, audio=False).items() if not k.startswith("llama_proj")}
    generator = torch.Generator().manual_seed(seed + 7)
    for name, shape in {"temporal_pos_trans.weight": (32, 32), "temporal_pos_trans.bias": (32,),
                        "temporal_pos_trans_norm.weight": (32,), "temporal_pos_trans_norm.bias": (32,),
                        "opt_proj.weight": (64, 32), "opt_proj.bias": (64,)}.items():
        state[name] = torch.randn(shape, generator=generator)
    return state


def test_gebc_starts_from_a_video_llama_checkpoint_and_loads_its_own(tmp_path):
    gebc, other = tiny(tmp_path, "gebc/tiny", 1), tiny(tmp_path, "gebc/tiny", 2)
    gebc_vq, gebc_proj = "branches.0.stages.0", "branches.0.stages.1"
    boundary_before = gebc.get_submodule(gebc_vq).boundary.proj.weight.clone()
    # LLMVA-GEBC's initialisation: the Video-LLaMA video branch, llama_proj deleted, the boundary embedding fresh
    video_llama = video_llama_checkpoint()
    report = load_mapped(gebc, video_llama, layouts.video_llama(gebc_vq, projector=None))
    assert report.ok and {"llama_proj.weight", "llama_proj.bias"} <= set(report.dropped)
    assert torch.equal(gebc.get_submodule(gebc_vq).qformer.layernorm.weight,
                       video_llama["video_Qformer.bert.embeddings.LayerNorm.weight"])
    assert torch.equal(gebc.get_submodule(gebc_vq).boundary.proj.weight, boundary_before)
    # a GEBC checkpoint: + temporal_pos_trans(+_norm) and opt_proj, which both branches share
    state = gebc_checkpoint()
    for model in (gebc, other):
        assert load_mapped(model, state, layouts.gebc(gebc_vq, gebc_proj)).ok
    assert same(gebc.get_submodule(gebc_vq), other.get_submodule(gebc_vq))
    assert torch.equal(gebc.get_submodule(gebc_vq).boundary.proj.weight, state["temporal_pos_trans.weight"])
    assert torch.equal(gebc.get_submodule(gebc_vq).boundary.norm.bias, state["temporal_pos_trans_norm.bias"])
    assert torch.equal(gebc.get_submodule("branches.1.stages.2").proj.weight, state["opt_proj.weight"])


# ---------------------------------------------------------------------------------------------- files
def test_files_load_safely_and_prefer_safetensors(tmp_path):
    target = tiny(tmp_path, "video_llama/tiny", 1)
    state = video_llama_checkpoint()
    torch.save({"model": state, "optimizer": {"lr": 1.0}, "epoch": 3}, tmp_path / "ckpt.pth")  # LAVIS wrapping
    assert read_state_dict(tmp_path / "ckpt.pth").keys() == state.keys()
    report = load_checkpoint(target, tmp_path / "ckpt.pth", "video_llama", video_qformer=VQ, projector=PROJ)
    assert report.ok and torch.equal(target.get_submodule(VQ).query_tokens, state["video_query_tokens"])
    safetensors.torch.save_file({"llama_proj.weight": torch.zeros(64, 32), "llama_proj.bias": torch.zeros(64)},
                                str(tmp_path / "ckpt.safetensors"))
    assert set(read_state_dict(tmp_path / "ckpt.pth")) == {"llama_proj.weight", "llama_proj.bias"}
    assert set(read_state_dict(tmp_path)) == {"llama_proj.weight", "llama_proj.bias"}  # a directory


class Payload:
    """Any class outside torch's allow-list: unpickling it could run code."""


def test_pickles_with_code_are_refused(tmp_path):
    torch.save({"model": {"w": torch.zeros(1)}, "hook": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(DataError, match="not a plain tensor checkpoint"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(Exception, match="unknown checkpoint layout 'videollama'"):
        load_checkpoint(torch.nn.Linear(1, 1), tmp_path / "evil.pth", "videollama")


# ---------------------------------------------------------------------------------------------- Video-XL
def released_video_xl(seed: int = 0) -> dict[str, torch.Tensor]:
    """A released Video-XL (LlavaQwenForCausalLM) checkpoint at video_xl/tiny's sizes: names and shapes from
    transformers' classes and Video-XL's model code (test_published_key_lists.video_xl_released_names), not from
    vlmkit's modules or key map; random values."""
    return random_tensors(video_xl_released_names(), seed)


def test_released_video_xl_names_land_on_the_beacon_llm_clip_and_projector(tmp_path):
    model = tiny(tmp_path, "video_xl/tiny", 0)
    state = released_video_xl()
    assert {"model.layers.1.self_attn.beacon_k_proj.weight", "model.beacon_embed_tokens.weight",
            "model.mm_projector.2.bias", "model.vision_tower.vision_tower.vision_model.post_layernorm.weight",
            "model.vision_tower.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.weight",
            "model.norm.weight", "lm_head.weight"} <= set(state)
    keymap = layouts.video_xl()
    own = model.state_dict()
    assert keymap.target_of("model.layers.1.self_attn.beacon_v_proj.bias")[0] == \
        "llm.model.model.layers.1.self_attn.beacon_v_proj.bias"
    assert keymap.target_of("model.mm_projector.0.weight")[0] == "branches.0.stages.0.layers.0.weight"
    for key in state:
        assert keymap.target_of(key)[0] in own, key
    assert keymap.target_of("model.vision_tower.vision_tower.vision_model.embeddings.position_ids") == \
        (None, None, True)


def test_a_released_video_xl_folder_loads_through_init_weights(tmp_path):
    state = released_video_xl()
    state["model.vision_tower.vision_tower.vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    folder = tmp_path / "Video-XL"  # transformers-style shards with an index, as the release ships them
    folder.mkdir()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for shard, names in shards.items():
        safetensors.torch.save_file({k: state[k].contiguous() for k in names}, str(folder / shard))
    index = {"metadata": {}, "weight_map": {k: shard for shard, names in shards.items() for k in names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    path = tmp_path / "exp.yaml"
    path.write_text(f"model:\n  preset: video_xl/tiny\n  init_weights: [{{path: '{folder}', layout: video_xl}}]\n")
    targets = []
    for seed in (1, 2):  # different random weights before loading ...
        torch.manual_seed(seed)
        targets.append(build_model(load_config(path)))
    assert same(*targets)  # ... the same after: every tensor came from the folder, summary-token parts included
    target = targets[0]
    assert torch.equal(target.llm.model.model.layers[1].self_attn.beacon_k_proj.weight,
                       state["model.layers.1.self_attn.beacon_k_proj.weight"])
    assert torch.equal(target.llm.model.model.beacon_embed_tokens.weight, state["model.beacon_embed_tokens.weight"])
    assert torch.equal(target.branches[0].stages[0].layers[2].bias, state["model.mm_projector.2.bias"])
    tower = target.branches[0].encoder.model
    assert torch.equal(getattr(tower, "vision_model", tower).post_layernorm.weight,
                       state["model.vision_tower.vision_tower.vision_model.post_layernorm.weight"])


def test_a_released_video_xl_checkpoint_without_beacon_k_proj_is_refused_by_name(tmp_path):
    target = tiny(tmp_path, "video_xl/tiny", 1)
    state = released_video_xl()
    del state["model.layers.1.self_attn.beacon_k_proj.weight"]
    state["model.vision_resampler.mm_projector.weight"] = torch.randn(3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "video_xl.safetensors"))
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(target, tmp_path / "video_xl.safetensors", "video_xl")
    message = str(err.value)
    assert "(layout 'video_xl')" in message
    assert ("1 missing (the module expects them, the checkpoint lacks them):\n"
            "  llm.model.model.layers.1.self_attn.beacon_k_proj.weight") in message
    assert "model.vision_resampler.mm_projector.weight (no rule of layout 'video_xl' maps it)" in message
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    # a target set to None is not loaded: only the LLM from the release
    released = released_video_xl()
    llm_only = {k: v for k, v in released.items() if not k.startswith("model.vision_tower.")
                and not k.startswith("model.mm_projector.")}
    report = load_mapped(target, llm_only, layouts.video_xl(encoder=None, projector=None))
    assert report.ok and torch.equal(target.llm.model.model.layers[1].self_attn.beacon_k_proj.weight,
                                     released["model.layers.1.self_attn.beacon_k_proj.weight"])
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items() if k.startswith("branches."))
