"""Task.supervised_tokens counts the tokens transformers' LM loss averages over (causal: shifted; seq2seq: all),
so that loss x count is the summed token loss the token-weighted step needs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlmkit.errors import DataError
from vlmkit.tasks.base import Task, supervised_tokens

LABELS = torch.tensor([[5, 6, -100, 7], [-100, -100, 8, -100]])


def summed_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))


def test_a_causal_lm_never_predicts_the_first_position():
    assert supervised_tokens(LABELS, encoder_decoder=False) == 3
    assert supervised_tokens(LABELS, encoder_decoder=True) == 4


def test_count_matches_what_the_transformers_losses_average_over():
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    causal = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2, num_key_value_heads=2, vocab_size=32))
    ids = torch.randint(0, 32, LABELS.shape)
    with torch.no_grad():
        out = causal(input_ids=ids, labels=LABELS)
        summed = summed_token_loss(out.logits[:, :-1], LABELS[:, 1:])
    assert float(out.loss) * supervised_tokens(LABELS, False) == pytest.approx(summed, rel=1e-5)

    seq2seq = T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                                                  vocab_size=32, decoder_start_token_id=0))
    with torch.no_grad():
        out = seq2seq(input_ids=ids, labels=LABELS)
        summed = summed_token_loss(out.logits, LABELS)
    assert float(out.loss) * supervised_tokens(LABELS, True) == pytest.approx(summed, rel=1e-5)


def test_the_llms_layout_decides_the_count_and_missing_labels_name_the_setting():
    class Seq2Seq(torch.nn.Module):
        is_encoder_decoder = True

    class Model(torch.nn.Module):
        def __init__(self, llm):
            super().__init__()
            self.llm = llm

    assert Task().supervised_tokens(Model(Seq2Seq()), {"labels": LABELS}) == 4
    assert Task().supervised_tokens(torch.nn.Linear(1, 1), {"labels": LABELS}) == 3
    with pytest.raises(DataError, match="run.loss_normalization: sample"):
        Task().supervised_tokens(torch.nn.Linear(1, 1), {"input_ids": LABELS})
