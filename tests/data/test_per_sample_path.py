"""The per-sample shortcuts give what the long way gives: direct processor kernels, the Rust tokenizer call,
the cached visual-token id, decoding without timestamps, one stat for a local path."""
from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from tests.data.dataset_fixtures import contract  # noqa: F401
from vlmkit.contracts import ImagePreprocessing
from vlmkit.data.processors.encoder_default import from_preprocessing
from vlmkit.data.video import VideoReader, local_path
from vlmkit.errors import DataError
from vlmkit.models import prompting


@pytest.mark.parametrize("crop", [True, False])
@pytest.mark.parametrize("size", [32, 224])
def test_evaluation_processors_call_the_kernels_v2_would(crop, size):
    prep = ImagePreprocessing(size, crop=crop)
    frames = torch.randint(0, 256, (3, 120, 160, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    frames = frames.permute(0, 3, 1, 2)  # channels-last, as decoded
    for processor in (from_preprocessing(prep), from_preprocessing(prep).unnormalised()):
        assert processor._kernels is not None
        direct = processor(frames)
        processor._kernels = None  # the v2 pipeline on a tv_tensors.Video
        assert torch.equal(direct, processor(frames))
    assert from_preprocessing(prep, train=True)._kernels is None  # random draws keep v2's per-video parameters


def test_the_rust_tokenizer_call_gives_transformers_ids_and_offsets(contract):
    tokenizer = contract.tokenizer
    text = "USER: <video> What moves, and where to?\nASSISTANT: A red square, right.</s>"
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    expected = (list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]])
    assert prompting._tokenize_with_offsets(tokenizer, text) == expected
    backend = tokenizer.backend_tokenizer
    backend.enable_truncation(max_length=4)  # a backend left truncating: the transformers call resets it
    try:
        assert prompting._tokenize_with_offsets(tokenizer, text) == expected
    finally:
        backend.no_truncation()


def test_the_visual_token_id_is_looked_up_once_per_tokenizer(contract):
    tokenizer = contract.tokenizer
    first = prompting.visual_token_id(tokenizer)
    assert prompting._VISUAL_IDS[tokenizer][prompting.VISUAL_TOKEN] == first
    prompting._VISUAL_IDS[tokenizer][prompting.VISUAL_TOKEN] = -7  # the cache answers, not the tokenizer
    try:
        assert prompting.visual_token_id(tokenizer) == -7
    finally:
        prompting._VISUAL_IDS[tokenizer][prompting.VISUAL_TOKEN] = first
    with pytest.raises(Exception, match="not a single token"):
        prompting.visual_token_id(tokenizer, "<never-added-token>")
    assert "<never-added-token>" not in prompting._VISUAL_IDS[tokenizer]  # a miss is not cached


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_decoding_without_timestamps_gives_the_same_frames(media, backend):
    indices = [0, 7, 3, 39]
    timed = VideoReader(backend, fallback=False).read(media["mp4"], indices)
    untimed = VideoReader(backend, fallback=False, timestamps=False).read(media["mp4"], indices)
    assert untimed.timestamps is None and len(timed.timestamps) == 4
    assert torch.equal(timed.frames, untimed.frames)


def test_a_local_path_is_checked_with_one_stat(media, tmp_path):
    assert local_path(str(media["mp4"])) == str(media["mp4"])
    for path, reason in ((media["missing"], "file not found"), (media["empty"], "empty file"),
                         (tmp_path, "is a directory")):
        with pytest.raises(DataError, match=reason):
            local_path(str(path))


@pytest.mark.parametrize("shape", [(4, 3, 120, 160), (2, 3, 32, 32), (3, 3, 6, 200)])  # last: the fallback crop
def test_seeded_training_crop_and_flip_draw_what_v2_draws_under_the_seed(shape):
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for processor in (from_preprocessing(ImagePreprocessing(32), train=True),
                      from_preprocessing(ImagePreprocessing(24), train=True).unnormalised()):
        assert processor._seeded is not None
        state = torch.get_rng_state()
        direct = [processor(frames, seed=seed) for seed in range(40)]
        assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
        seeded, processor._seeded = processor._seeded, None  # the long way: v2 under a forked, re-seeded RNG
        try:
            for seed, out in enumerate(direct):
                assert torch.equal(out, processor(frames, seed=seed)), seed
        finally:
            processor._seeded = seeded
        distinct = len({tuple(out.flatten()[:64].tolist()) for out in direct})
        assert distinct == 2 if shape[2] == 6 else distinct > 10  # a fixed central crop flipped or not there


def test_evaluation_indices_are_computed_once_per_frame_count_and_fps():
    from vlmkit.data.datasets.base import RepeatedIndices
    from vlmkit.registry import SAMPLERS

    for config in ({"name": "linspace", "num_frames": 8}, {"name": "fps", "target_fps": 2.0, "max_frames": 16}):
        sampler = SAMPLERS.build(config)
        calls = []
        kept = RepeatedIndices(lambda n, fps=None, rng=None, s=sampler: calls.append((n, fps)) or s(n, fps, rng=rng))
        for count, fps in [(16, 10.0), (300, 25.0), (300, 30.0), (16, 10.0), (300, 25.0), (7, 25.0)] * 2:
            picks = kept(count, fps)
            assert picks == sampler(count, fps)
            picks.append(-1)  # a caller's change does not reach the kept indices
        assert sorted(calls) == sorted({(16, 10.0), (300, 25.0), (300, 30.0), (7, 25.0)})
