"""Synthetic check that the sampler learns to ground: the answer lives in one segment of each video (the only
segment with motion, at a random place), and a tiny sampler trained briefly on span labels picks frames inside
that segment far more often than uniform selection does."""
from __future__ import annotations

import pytest
import torch

from vlmkit.contracts import ImagePreprocessing
from vlmkit.models.selectors.spans import reduce_to
from vlmkit.registry import SELECTORS

FRAMES, SEGMENT, K = 16, 4, 4
PREP = ImagePreprocessing(size=32)
TINY = dict(name="temporal_grounding_sampler", tokenizer="local:word", num_selected=K, hidden_size=32,
            num_layers=2, num_heads=4, intermediate_size=64, fusion_layer=1, vocab_size=512, max_positions=40,
            flow_size=32, flow_patch=8, dropout=0.0, flow_estimator={"name": "frame_difference_flow_standin"})


def videos(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 3, 32, 32) still scenes where a square moves only in frames [s, s + SEGMENT); spans as fractions."""
    frames = torch.full((batch, FRAMES, 3, 32, 32), 0.2)
    starts = torch.randint(0, FRAMES - SEGMENT + 1, (batch,), generator=generator)
    for b, s in enumerate(starts.tolist()):
        for t in range(FRAMES):
            step = min(max(t - s, 0), SEGMENT - 1)  # still before and after the segment
            x = 4 + 6 * step
            frames[b, t, :, 12:20, x:x + 8] = 0.9
    spans = torch.stack([starts, starts + SEGMENT - 1], dim=1).float() / (FRAMES - 1)
    mean, std = torch.tensor(PREP.mean).view(3, 1, 1), torch.tensor(PREP.std).view(3, 1, 1)
    return (frames - mean) / std, spans  # normalised like the model's pixel branch


def inside(indices: torch.Tensor, spans: torch.Tensor) -> float:
    bounds = (spans * (FRAMES - 1)).round().long()
    hit = (indices >= bounds[:, :1]) & (indices <= bounds[:, 1:] + 1)  # flow of frame t covers t -> t+1
    return hit.float().mean().item()


@pytest.mark.slow  # ~15-25 s on 2 cores
def test_trained_sampler_picks_the_answer_segment_far_more_often_than_uniform():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    sampler = SELECTORS.build(TINY, num_frames=FRAMES, preprocessing=PREP)
    enc = sampler.tokenizer(["what happens while the square moves"] * 8, return_tensors="pt")
    question = {"question_ids": enc["input_ids"], "question_mask": enc["attention_mask"]}
    optimizer = torch.optim.AdamW(sampler.parameters(), lr=1e-2)
    sampler.train()
    for _ in range(60):
        frames, spans = videos(8, generator)
        loss = sampler([frames], {**question, "tgb_span": spans}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sampler.eval()
    frames, spans = videos(16, torch.Generator().manual_seed(99))
    torch.manual_seed(1)
    with torch.no_grad():
        picked = sampler([frames], {k: v[:1].expand(16, -1) for k, v in question.items()}).indices
    uniform = torch.tensor(reduce_to(range(FRAMES), K)).expand(16, -1)
    learned_rate, uniform_rate = inside(picked, spans), inside(uniform, spans)
    print(f"frames inside the answer segment: sampler {learned_rate:.2f}, uniform {uniform_rate:.2f}")
    assert learned_rate >= 0.8 and learned_rate > 2 * uniform_rate, (learned_rate, uniform_rate)
