"""uint8 frames from the data side, scaled and normalised by the model on its device: the same visual tokens."""
from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from tests.runners.stream_fixtures import tiny_video_llm
from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.contracts import CLIP_MEAN, CLIP_STD, UINT8_PIXELS, ImagePreprocessing, normalise_frames
from vlmkit.data.datasets.base import MediaLoader
from vlmkit.data.processors.encoder_default import from_preprocessing


def clip(frames: int = 4, height: int = 40, width: int = 52, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("train", [False, True])
def test_unnormalised_frames_finished_by_normalise_frames_equal_the_float_processor(train):
    prep = ImagePreprocessing(32, CLIP_MEAN, CLIP_STD, "bicubic")
    processor = from_preprocessing(prep, train=train)
    frames = clip()
    # the processor before the split: geometry, then ToDtype + Normalize in one Compose
    former = v2.Compose([processor.geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(CLIP_MEAN, CLIP_STD)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        expected = former(frames)
    small = processor.unnormalised()(frames, seed=7)
    assert small.dtype == torch.uint8 and small.shape == (4, 3, 32, 32)
    assert processor.normalise  # the original is untouched
    assert torch.equal(processor(frames, seed=7), expected)
    assert torch.equal(normalise_frames(small, processor.stats()), expected)


def test_the_model_asks_for_uint8_and_the_media_loader_delivers_them():
    contract = tiny_video_llm().data_contract()
    assert contract.extra[UINT8_PIXELS] is True
    frames = clip(contract.num_frames, seed=1)
    assert MediaLoader(contract, train=False).process(frames)[0].dtype == torch.uint8
    contract.extra[UINT8_PIXELS] = False  # a model that normalises nothing itself gets float frames
    assert MediaLoader(contract, train=False).process(frames)[0].dtype == torch.float32


def test_same_pixels_give_the_same_visual_tokens_as_uint8_or_float():
    model = tiny_video_llm().eval()
    contract = model.data_contract()
    processor = contract.sampling.processor(contract.preprocessing[0], False)
    frames = [clip(contract.num_frames, 48, 64, seed=s) for s in (2, 3)]
    as_float = torch.stack([processor(f) for f in frames])
    as_uint8 = torch.stack([processor.unnormalised()(f) for f in frames])
    assert as_uint8.dtype == torch.uint8
    with torch.no_grad():
        from_float = model.encode_video([as_float])
        from_uint8 = model.encode_video([as_uint8])
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["video_xl/tiny", "videotgb/tiny_t5"])  # chunked encoding; a frame selector
def test_chunked_branches_and_selectors_see_the_same_pixels(preset, tmp_path):
    (tmp_path / "exp.yaml").write_text(f"model: {{preset: {preset}, allow_random_frozen: true}}\n")
    torch.manual_seed(0)
    model = build_model(load_config(tmp_path / "exp.yaml")).eval()
    contract = model.data_contract()
    as_uint8 = [torch.randint(0, 256, (2, contract.num_frames, 3, p.size, p.size), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(4)) for p in contract.preprocessing]
    as_float = [normalise_frames(p, prep) for p, prep in zip(as_uint8, contract.preprocessing)]
    ids = torch.ones(2, 5, dtype=torch.long)  # the question / instruction a selector or Q-Former reads
    inputs = {"question_ids": ids, "question_mask": ids, "instruction_ids": ids, "instruction_mask": ids}
    seen = []  # what the selector reads
    if model.selector is not None:
        forward = model.selector.forward
        model.selector.forward = lambda pixels, *rest: seen.append(pixels) or forward(pixels, *rest)
    with torch.no_grad():
        from_float = model.encode_video(as_float, inputs=inputs)
        from_uint8 = model.encode_video(as_uint8, inputs=inputs)
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=1e-6)
    assert (model.selector is None) == (seen == [])
    for float_input, uint8_input in zip(seen[0::2], seen[1::2]):
        assert all(torch.equal(a, b) for a, b in zip(float_input, uint8_input))
