import pytest

from vlmkit.registry import METRICS


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlmkit.models.llms.local_tokenizer import builtin_tokenizer

    tokenizer = builtin_tokenizer("local:word")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_judge")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_local_judge_plumbing_and_cache(tiny_judge_dir, tmp_path):
    cfg = {"name": "judged_qa", "judge": {"name": "transformers_judge", "model_path": tiny_judge_dir,
                                          "max_tokens": 6, "cache_dir": str(tmp_path)}}
    preds = [{"id": 0, "question": "what is the man doing", "answer": "cooking", "prediction": "he cooks"}]
    metric = METRICS.build(cfg)
    out = metric.compute(preds)
    # random weights: the reply is noise, so it is counted as unparseable, never silently scored
    assert out["num_samples"] == 1 and out["num_unparseable"] + out["num_judged"] == 1
    assert out["judge.kind"] == "transformers_judge" and out["judge.model"] == tiny_judge_dir
    assert out["judge.requests"] == 1
    reply = metric.score_sample(preds[0])
    assert isinstance(reply["reply"], str)
    again = METRICS.build(cfg).compute(preds)
    assert again["judge.requests"] == 0 and again["num_cached"] == 1
