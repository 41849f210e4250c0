"""LoRA merged into the LLM at the evaluator's alpha (issue 19 item 6): the merged model computes what the
unmerged one computes in eval mode, up to float rounding."""
import torch

from tests.export.conftest import outputs_of
from vlmkit.export.lora_merge import merge_lora

ATOL = 1e-5  # float32: W + s * B @ A summed once instead of on every forward


def test_merged_logits_equal_the_unmerged_models_at_the_eval_alpha(preset_model):
    trained = preset_model("pllava/tiny")  # r 8, alpha 2 in training, eval_alpha 0.25 in evaluation
    model = trained.model
    logits, answers = outputs_of(model)
    model.train()  # the training alpha gives other logits: the check below can tell the alphas apart
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    with torch.no_grad():
        from tests.export.conftest import inputs_for

        train_alpha_logits = model(**inputs_for(model, generation=False)).logits
    assert not torch.allclose(train_alpha_logits, logits, atol=1e-3)

    merged = merge_lora(model)
    assert merged["alpha_used"] == 0.25 and merged["scaling"] == 0.25 / 8 and merged["layers"] == 4
    assert not any("lora" in name for name, _ in model.named_parameters())
    merged_logits, merged_answers = outputs_of(model)
    torch.testing.assert_close(merged_logits, logits, atol=ATOL, rtol=0)
    assert merged_answers == answers


def test_merged_weight_is_base_plus_eval_alpha_over_r_times_b_a(preset_model):
    trained = preset_model("pllava/tiny")
    peft_layer = trained.model.llm.model.base_model.model.model.layers[1].self_attn.v_proj
    base = peft_layer.base_layer.weight.detach().clone()
    update = peft_layer.lora_B["default"].weight @ peft_layer.lora_A["default"].weight
    merge_lora(trained.model)
    merged = trained.model.llm.model.model.layers[1].self_attn.v_proj.weight
    torch.testing.assert_close(merged, base + (0.25 / 8) * update, atol=1e-6, rtol=0)
    assert not torch.allclose(merged, base + (2 / 8) * update, atol=1e-4)


def test_a_model_without_lora_is_left_as_it_is(preset_model):
    trained = preset_model("tiny/pooling")
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    assert merge_lora(trained.model) is None
    after = trained.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
