import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from vlmkit.metrics.coco_scorers import spice_unavailable_reason
from vlmkit.metrics.gebc import CAPTION_TYPES, split_caption
from vlmkit.registry import METRICS

REFS = {
    "v1": ["A man is riding a horse on the beach.", "Someone rides a brown horse near the sea."],
    "v2": ["Two dogs play with a ball in the park!", "Dogs are playing in a grassy park."],
    "v3": ["A woman slices tomatoes in a kitchen.", "A person is cutting vegetables."],
}
HYPS = {"v1": "a man rides a horse on a beach", "v2": "two dogs are playing with a ball",
        "v3": "a woman is cooking in the kitchen"}


def peer_scores(refs, hyps):
    """pycocoevalcap's own classes, called directly (as its COCOEvalCap does)."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tokenizer.tokenize({k: [{"caption": hyps[k]}] for k in refs})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {**{f"BLEU_{i + 1}": b for i, b in enumerate(bleu)}, "ROUGE_L": Rouge().compute_score(gts, res)[0],
            "CIDEr": Cider().compute_score(gts, res)[0]}


def records(refs, hyps):
    return [{"id": k, "prediction": hyps[k], "references": v} for k, v in refs.items()]


def test_caption_scores_equal_pycocoevalcap_and_spice_is_reported():
    metric = METRICS.build({"name": "caption_coco", "scorers": ["BLEU", "ROUGE_L", "CIDEr", "SPICE"]})
    ours = metric.compute(records(REFS, HYPS))
    peer = peer_scores(REFS, HYPS)
    for name, value in peer.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name
    assert 0 < ours["BLEU_4"] < ours["BLEU_1"] < 1
    reason = spice_unavailable_reason()
    if reason is None:
        assert 0 <= ours["SPICE"] <= 1
    else:
        assert ours["SPICE_not_computed"] == reason and "SPICE" not in ours


def test_identical_captions_score_one():
    refs = {k: [HYPS[k]] for k in HYPS}
    out = METRICS.build({"name": "caption_coco", "scorers": ["BLEU", "ROUGE_L"], "percent": True}).compute(
        records(refs, HYPS))
    for name in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L"):
        assert out[name] == pytest.approx(100.0, abs=1e-6), name


def test_split_caption_follows_gebplus():
    gt = "Subject: a man //Status_Before: standing still //Status_After: running away"
    assert split_caption(gt, "//") == {"subject": "a man", "status_before": "standing still",
                                       "status_after": "running away"}
    assert split_caption("subject: a man / / before: idle", "/ /") == {
        "subject": "a man", "status_before": "idle", "status_after": " "}


def test_gebc_scores_each_type_then_averages():
    boundaries = {
        "b0": ("a man", "standing still near a car", "running away from the car"),
        "b1": ("the dog", "sleeping on the sofa", "jumping off the sofa"),
        "b2": ("a woman", "holding a cup", "drinking from the cup"),
    }
    guesses = {
        "b0": ("a man", "standing by a car", "running away"),
        "b1": ("a dog", "sleeping on a couch", "jumping down"),
        "b2": ("the woman", "holding a red cup", "drinking water"),
    }
    preds = [{"id": b, "prediction": dict(zip(CAPTION_TYPES, guesses[b])),
              "answer": "Subject: {} //Status_Before: {} //Status_After: {}".format(*boundaries[b])}
             for b in boundaries]
    out = METRICS.build({"name": "gebc", "scorers": ["ROUGE_L", "CIDEr", "SPICE"]}).compute(preds)
    for index, kind in enumerate(CAPTION_TYPES):
        refs = {b: [boundaries[b][index]] for b in boundaries}
        hyps = {b: guesses[b][index] for b in boundaries}
        peer = peer_scores(refs, hyps)
        assert out[f"{kind}/CIDEr"] == pytest.approx(100 * peer["CIDEr"], abs=1e-9)
        assert out[f"{kind}/ROUGE_L"] == pytest.approx(100 * peer["ROUGE_L"], abs=1e-9)
    assert out["avg/CIDEr"] == pytest.approx(sum(out[f"{k}/CIDEr"] for k in CAPTION_TYPES) / 3)
    if spice_unavailable_reason() is not None:
        assert "SPICE_not_computed" in out and "avg/SPICE" not in out


@pytest.mark.slow
def test_meteor_runs_offline_and_equals_pycocoevalcap():
    from pycocoevalcap.meteor.meteor import Meteor

    ours = METRICS.build({"name": "caption_coco", "scorers": ["METEOR"]}).compute(records(REFS, HYPS))
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tokenizer.tokenize({k: [{"caption": HYPS[k]}] for k in REFS})
    assert ours["METEOR"] == pytest.approx(Meteor().compute_score(gts, res)[0], abs=1e-12)
