"""``config:`` mappings of the transformers-backed components are checked at validation against the transformers
config class they feed (``HFConfig`` in the signature), by the schema index and by transformers itself alike;
InternVideo2's architecture values against their own settings class (issue 22 item 4)."""
import json

import pytest

from vlmkit import schema_index_file
from vlmkit.registry import registry


def problems(kind, cfg):
    return [str(e) for e in registry(kind).check(cfg, path="x")]


@pytest.fixture(params=["index", "transformers"])
def key_source(request, monkeypatch):
    """Each case twice: key sets from the schema index, and read from transformers (another installed version)."""
    if request.param == "transformers":
        monkeypatch.setattr(schema_index_file, "_hf_part", lambda: None)
    for cached in (schema_index_file.hf_config_keys, schema_index_file.hf_model_type_class):
        cached.cache_clear()
    yield request.param
    for cached in (schema_index_file.hf_config_keys, schema_index_file.hf_model_type_class):
        cached.cache_clear()


@pytest.mark.parametrize("kind, cfg, typo, close, config_class", [
    ("encoders", {"name": "clip_vit", "arch": "clip_vit_l14"}, "hiden_size", "hidden_size", "CLIPVisionConfig"),
    ("encoders", {"name": "siglip"}, "num_hiden_layers", "num_hidden_layers", "SiglipVisionConfig"),
    ("encoders", {"name": "eva_vit_g"}, "patchsize", "patch_size", "Blip2VisionConfig"),
    ("stages", {"name": "qformer", "num_query": 8}, "hidden_dropout", "hidden_dropout_prob",
     "Blip2QFormerConfig"),
    ("stages", {"name": "video_qformer"}, "intermediate_sise", "intermediate_size", "Blip2QFormerConfig"),
    ("stages", {"name": "boundary_video_qformer"}, "layer_norm_epsilon", "layer_norm_eps", "Blip2QFormerConfig"),
    ("stages", {"name": "instruct_qformer"}, "vocab_sise", "vocab_size", "InstructBlipQFormerConfig"),
    ("llms", {"name": "causal_lm", "arch": "llama"}, "num_hiden_layers", "num_hidden_layers", "LlamaConfig"),
    ("llms", {"name": "causal_lm", "arch": "opt"}, "ffn_dimm", "ffn_dim", "OPTConfig"),
    ("llms", {"name": "seq2seq_lm", "arch": "t5"}, "num_decoder_layer", "num_decoder_layers", "T5Config"),
    ("llms", {"name": "beacon_qwen2"}, "rms_norm_epsilon", "rms_norm_eps", "Qwen2Config"),  # arch defaults to qwen2
])
def test_a_misspelt_config_key_names_its_class_and_close_matches(key_source, kind, cfg, typo, close, config_class):
    found = problems(kind, {**cfg, "config": {typo: 1}})
    assert len(found) == 1, found
    assert found[0].startswith(f"x.config.{typo}: unknown key '{typo}' for transformers {config_class}")
    assert f"Did you mean '{close}'" in found[0]
    assert close in found[0].split("Accepted keys: ")[1].split(", ")
    assert problems(kind, {**cfg, "config": {close: 1}}) == []


def test_real_keys_and_older_spellings_transformers_reads_are_accepted(key_source):
    qwen = {"rope_theta": 1e6, "torch_dtype": "bfloat16", "hidden_size": 64, "max_window_layers": 2}
    assert problems("llms", {"name": "causal_lm", "arch": "qwen2", "config": qwen}) == []
    # read by T5's modeling code, not declared by T5Config
    assert problems("llms", {"name": "seq2seq_lm", "arch": "t5", "config": {"decoder_start_token_id": 0}}) == []


def test_the_model_type_of_a_checkpoint_folder_picks_the_class(key_source, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "opt"}))
    found = problems("llms", {"name": "causal_lm", "pretrained": str(tmp_path), "config": {"num_hiden_layers": 2}})
    assert len(found) == 1 and "for transformers OPTConfig" in found[0]
    # a hub id (no local folder) and no arch: the class is unknown until loading, nothing is claimed
    assert problems("llms", {"name": "causal_lm", "pretrained": "org/model", "config": {"anything": 1}}) == []


def test_keys_a_qformer_sets_itself_are_refused_with_the_reason(key_source):
    found = problems("stages", {"name": "qformer", "config": {"num_hidden_layers": 4}})
    assert found == ["x.config.num_hidden_layers: do not set 'num_hidden_layers' in the config of stage 'qformer': "
                     "use the adapter's 'num_layers' parameter"]


def test_internvideo2_architecture_values_are_typed():
    found = problems("encoders", {"name": "internvideo2", "config": {"embed_dims": 64, "depth": 0}})
    assert any("x.config.embed_dims: unknown key 'embed_dims' for InternVideo2Architecture. Did you mean "
               "'embed_dim'?" in p for p in found), found
    assert any("x.config.depth: must be > 0, got 0" in p for p in found), found
    assert problems("encoders", {"name": "internvideo2", "config": {"embed_dim": 64, "depth": 2}}) == []


def test_a_typo_fails_vlmkit_validate_of_a_full_size_recipe(capsys):
    from vlmkit.cli import main

    assert main(["validate", "--skip-files", "train_configs/pllava/finetune_7b.yaml",
                 "model.llm.config.num_hiden_layers=2"]) == 2
    assert "model.llm.config.num_hiden_layers: unknown key 'num_hiden_layers' for transformers LlamaConfig (the " \
           "config of llm 'causal_lm'). Did you mean 'num_hidden_layers'?" in capsys.readouterr().err
