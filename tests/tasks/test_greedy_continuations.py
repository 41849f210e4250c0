"""The greedy flag of score_continuations (lmms-eval's is_greedy): every continuation token is its position's
argmax, aligned as the log-probs are (causal: position t-1 predicts token t)."""
import torch

from vlmkit.contracts import IGNORE_INDEX
from vlmkit.tasks.multiple_choice import greedy_continuations


def logits_favouring(ids):
    logits = torch.zeros(1, len(ids), 5)
    for t, i in enumerate(ids):
        logits[0, t, i] = 5.0
    return logits


def test_causal_shift_and_ignored_prompt():
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 4]])
    # position t predicts label t+1: argmaxes (x, 3, 4, x) make the continuation greedy
    assert greedy_continuations(logits_favouring([0, 3, 4, 1]), labels, causal=True).tolist() == [True]
    # unshifted argmaxes (x, x, 3, 4) are off by one: not greedy
    assert greedy_continuations(logits_favouring([0, 0, 3, 4]), labels, causal=True).tolist() == [False]


def test_seq2seq_aligned_and_one_wrong_token():
    labels = torch.tensor([[2, 3]])
    assert greedy_continuations(logits_favouring([2, 3]), labels, causal=False).tolist() == [True]
    assert greedy_continuations(logits_favouring([2, 1]), labels, causal=False).tolist() == [False]
