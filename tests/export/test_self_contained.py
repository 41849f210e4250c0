"""``vlmkit export --format vlmkit`` (issue 19 item 6): every tiny recipe exports to a folder that
``vlmkit.load`` reads without the run or the weight files it was built from, with the same logits and answers."""
import json
import shutil

import pytest
import torch

from tests.export.conftest import PRESETS, outputs_of
from vlmkit.assemble import build_exported_model, build_trained_model
from vlmkit.errors import ConfigError
from vlmkit.export.command import export_trained

ATOL = 1e-5  # float32; the LoRA merge (pllava, videogpt_plus) moves only rounding


@pytest.mark.parametrize("preset", PRESETS)  # each under 20 s on 2 loaded cores (video_xl/tiny the longest, ~15 s)
def test_every_tiny_recipe_reloads_with_the_same_logits_and_answers(preset, preset_model, tmp_path):
    trained = preset_model(preset)
    logits, answers = outputs_of(trained.model)
    export_trained(trained, tmp_path / "out")
    reloaded = build_trained_model(str(tmp_path / "out"))
    again_logits, again_answers = outputs_of(reloaded.model)
    torch.testing.assert_close(again_logits, logits, atol=ATOL, rtol=0)
    assert again_answers == answers
    assert not any("lora" in name for name, _ in reloaded.model.named_parameters())


def test_every_value_comes_from_the_file_not_the_seed(preset_model, tmp_path):
    """The tiny recipes' frozen towers are random: a different build seed must not change the reloaded model."""
    trained = preset_model("pllava/tiny")
    logits, _ = outputs_of(trained.model)
    export_trained(trained, tmp_path / "out")
    other_seed = build_exported_model(tmp_path / "out", seed=1234)
    torch.testing.assert_close(outputs_of(other_seed.model)[0], logits, atol=ATOL, rtol=0)


def test_pretrained_folders_are_not_needed_after_export(tmp_path):
    """An LLM and a CLIP tower read from local transformers folders (deleted after export) rebuild from the
    architecture the export wrote, in the dtype they computed in."""
    from tests.export.conftest import trained_from_preset
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    llm_dir, clip_dir = tmp_path / "weights" / "llm", tmp_path / "weights" / "clip"
    LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=512, tie_word_embeddings=False)
                     ).to(torch.bfloat16).save_pretrained(llm_dir)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     image_size=32, patch_size=8)).save_pretrained(clip_dir)
    trained = trained_from_preset(tmp_path, "tiny/pooling", f"model.llm.pretrained={llm_dir}", "~model.llm.config",
                                  "~model.llm.arch", f"model.branches.0.encoder.pretrained={clip_dir}",
                                  "~model.branches.0.encoder.config")
    assert next(trained.model.llm.parameters()).dtype == torch.bfloat16  # dtype 'auto' followed the file
    logits, answers = outputs_of(trained.model)
    export_trained(trained, tmp_path / "out")
    shutil.rmtree(tmp_path / "weights")
    reloaded = build_trained_model(str(tmp_path / "out"))
    assert next(reloaded.model.llm.parameters()).dtype == torch.bfloat16
    again_logits, again_answers = outputs_of(reloaded.model)
    torch.testing.assert_close(again_logits, logits, atol=0, rtol=0)
    assert again_answers == answers
    notes = json.loads((tmp_path / "out" / "vlmkit_export.json").read_text())["notes"]
    assert any("llm.pretrained" in n for n in notes) and any("branches.0.encoder.pretrained" in n for n in notes)


def test_an_edited_file_is_refused_naming_it(preset_model, tmp_path):
    export_trained(preset_model("tiny/pooling"), tmp_path / "out")
    (tmp_path / "out" / "tokenizers" / "llm" / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigError, match="tokenizers/llm/tokenizer.json: sha256"):
        build_trained_model(str(tmp_path / "out"))


def test_dtype_stores_bf16_weights_that_reload_as_the_rounded_model(preset_model, tmp_path):
    from safetensors import safe_open

    import copy

    trained = preset_model("tiny/pooling")
    rounded = copy.deepcopy(trained.model)  # the model with its values rounded to bf16, computed in float32
    with torch.no_grad():
        for tensor in rounded.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.bfloat16().float())
    export_trained(trained, tmp_path / "out", dtype="bf16")
    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes == {"BF16"}
    assert json.loads((tmp_path / "out" / "vlmkit_export.json").read_text())["dtype"] == "bfloat16"
    reloaded = build_trained_model(str(tmp_path / "out"))  # built in the recipe's dtypes, filled with those values
    assert next(reloaded.model.parameters()).dtype == torch.float32
    torch.testing.assert_close(outputs_of(reloaded.model)[0], outputs_of(rounded)[0], atol=0, rtol=0)


def test_a_raft_weight_file_read_at_build_is_written_into_the_folder(tmp_path):
    """VideoTGB's RAFT flow estimator reads a weight file when it is built: the export carries it."""
    from torchvision.models.optical_flow import raft_small

    from tests.export.conftest import trained_from_preset

    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft.pt")
    trained = trained_from_preset(tmp_path, "videotgb/tiny_llama", "model.selector.flow_estimator={name: raft_flow, "
                                  f"arch: small, weights: {tmp_path / 'raft.pt'}, num_flow_updates: 2}}")
    before = {name: tensor.clone() for name, tensor in trained.model.state_dict().items()}
    export_trained(trained, tmp_path / "out")
    (tmp_path / "raft.pt").unlink()
    after = build_trained_model(str(tmp_path / "out")).model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "out" / "weights" / "selector.flow_estimator.pt").is_file()


def test_a_config_that_does_not_describe_the_model_is_refused_at_export(preset_model, tmp_path):
    """The rewritten config is rebuilt on the meta device before DIR is moved into place: a mismatch (here a
    config edited after the build) is refused naming the tensors, and nothing is left behind."""
    trained = preset_model("tiny/pooling")
    trained.config["model"]["llm"]["config"]["intermediate_size"] = 96
    with pytest.raises(ConfigError, match=r"does not rebuild the exported tensors .*mlp\.(down|gate|up)_proj"):
        export_trained(trained, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]
