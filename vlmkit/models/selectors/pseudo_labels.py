"""VideoTGB's pseudo-label spans from a model: the published procedure, used by the command
``python -m vlmkit.tools.tgb_pseudo_labels``.

The MLLM answers the question from each decoded frame alone (the frame repeated as a still video), each answer is
scored by unigram recall of the reference answer (',' and '.' ignored), and the best-scoring span is the largest
rectangle under the min-shifted scores (``spans.best_span``): ``{sample id: [start, end]}`` as fractions of the
video, which ``tgb_inputs`` reads as ``tgb_span``. The dataset must be built for generation (``train: false``) and
carry ``answer`` in its meta.
"""
from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from typing import Optional

import torch

from vlmkit.models.selectors.spans import best_span
from vlmkit.models.selectors.uniform import UniformSelector

_WORD = re.compile(r"[^\s,.]+")


def unigram_recall(reference: str, prediction: str) -> float:
    """Share of the reference's unigrams (lower case, ',' and '.' dropped) found in the prediction, clipped."""
    ref, pred = Counter(_WORD.findall(reference.lower())), Counter(_WORD.findall(prediction.lower()))
    total = sum(ref.values())
    return sum(min(n, pred[w]) for w, n in ref.items()) / total if total else 0.0


@contextlib.contextmanager
def still_frames(model) -> Iterator[None]:
    """While active, a selector-equipped model encodes whatever it is given uniformly (each row is one frame
    repeated, so any K picks are that frame)."""
    saved = model.selector
    if saved is not None:
        model.selector = UniformSelector(saved.num_selected, num_frames=saved.num_frames)
    try:
        yield
    finally:
        model.selector = saved


@torch.no_grad()
def frame_scores(model, sample: dict, max_new_tokens: int = 32, extra: Optional[dict] = None) -> list[float]:
    """Unigram recall of the answer generated from each decoded frame alone."""
    frames = [p for p in sample["pixel_values"]]
    count = frames[0].shape[0]
    ids = torch.as_tensor(sample["input_ids"]).unsqueeze(0).expand(count, -1)
    stills = [f.unsqueeze(1).expand(-1, count, *f.shape[1:]) for f in frames]  # row t: frame t, T times
    inputs = {k: v.expand(count, *v.shape[1:]) for k, v in (extra or {}).items()}
    with still_frames(model):
        answers = model.generate(ids, torch.ones_like(ids), stills, max_new_tokens=max_new_tokens,
                                 do_sample=False, **inputs)
    reference = str(sample["meta"]["answer"])
    return [unigram_recall(reference, answer) for answer in answers]


def pseudo_labels(model, dataset, max_new_tokens: int = 32, limit: Optional[int] = None) -> dict[str, list[float]]:
    """{sample id: [start, end]} fractions of the best-scoring span, for every sample of ``dataset``."""
    model.eval()
    labels = {}
    for index in range(len(dataset) if limit is None else min(limit, len(dataset))):
        sample = dataset[index]
        if sample is None:
            continue
        extra = {}
        for key in ("question", "instruction"):  # the sampler's question, the Q-Former's instruction
            if f"{key}_ids" in sample:
                ids = torch.as_tensor(sample[f"{key}_ids"]).unsqueeze(0)
                extra.update({f"{key}_ids": ids, f"{key}_mask": torch.ones_like(ids)})
        scores = frame_scores(model, sample, max_new_tokens, extra)
        start, end = best_span(scores)
        last = max(len(scores) - 1, 1)
        labels[str(sample["id"])] = [start / last, end / last]
    return labels
