"""backend: auto -- the cost model's choice per dataset, same frames either way, counted fallbacks, config errors."""
from __future__ import annotations

import logging

import pytest
import torch

from tests.data.dataset_fixtures import conversation, contract, write_json  # noqa: F401
from vlmkit.data import backend_choice
from vlmkit.data.backend_choice import FileFeatures, decode_plan, predict_ms
from vlmkit.data.video import VideoReader
from vlmkit.demo import synthetic_video as sv
from vlmkit.registry import DATASETS, SAMPLERS


# A cost model with a clear crossover: decord pays per frame of the file, PyAV a fixed 100 ms; so an 8-frame file
# is decord's and a 300-frame one PyAV's whatever the fitted coefficients say (each refit moves them; the current
# fit prefers PyAV on both).
CROSSOVER = {"decord": (0.0, 1.0, 0.0, 0.0, 0.0, 0.0), "pyav": (100.0, 0.0, 0.0, 0.0, 0.0, 0.0)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A very short clip and a long, seek-heavy one (PyAV's by a wide margin in the fitted model)."""
    root = tmp_path_factory.mktemp("auto_backend")
    sv.write_video(root / "short.mp4", sv.test_pattern(8, 32, 32), fps=10, gop=12)
    sv.write_video(root / "long.mp4", sv.test_pattern(300, 32, 32), fps=25, gop=30)
    return root


def dataset(contract, root, tmp_path, names, **cfg):
    ann = write_json(tmp_path / "ann.json", [{"id": n, "video": n, "conversations": conversation("what?", "it")}
                                             for n in names])
    return DATASETS.build({"name": "llava_instruct", "ann_path": ann, "media_root": str(root), "train": False,
                           **cfg}, contract=contract)


def test_decode_plan_counts_seeks_and_decoded_frames_as_pyav_reads():
    # keyframes 0, 30, 60: frame 5 decodes 0..5; 20 continues 6..20; 45 jumps to 30 and decodes 30..45
    assert decode_plan([0, 30, 60], [45, 5, 20, 20]) == (2, 6 + 15 + 16)
    assert decode_plan([0], [0, 1, 2]) == (1, 3)
    assert decode_plan([0, 10], [9, 10]) == (1, 11)  # the keyframe right after the position: decode on, no jump


def test_predictions_are_the_coefficients_dotted_with_the_features():
    tiny = FileFeatures("t", 8, 32, 32, (0,), tuple(range(8)))
    long = FileFeatures("l", 900, 180, 240, tuple(range(0, 900, 60)), tuple(range(0, 900, 60)))
    assert tiny.vector().tolist() == [1, 8, 1, 8, 8 * 32 * 32 / 1e6, 8 * 32 * 32 / 1e6]
    assert predict_ms(tiny, CROSSOVER) == {"decord": 8.0, "pyav": 100.0}
    assert predict_ms(long, CROSSOVER) == {"decord": 900.0, "pyav": 100.0}
    # the fitted model: one non-negative coefficient per feature and backend; a long file with a seek per wanted
    # frame costs decord several times what it costs PyAV (2.6x measured on such a 900-frame 240x180 clip:
    # docs/performance.md)
    assert all(len(c) == len(backend_choice.FEATURES) and min(c) >= 0 for c in backend_choice.COEFFICIENTS.values())
    fitted = predict_ms(long)
    assert fitted["decord"] > 2 * fitted["pyav"]


def test_auto_follows_the_prediction_per_dataset_logs_it_and_keeps_the_pixels(contract, clips, tmp_path, caplog,
                                                                              monkeypatch):
    monkeypatch.setattr(backend_choice, "COEFFICIENTS", CROSSOVER)
    with caplog.at_level(logging.INFO, logger="vlmkit.data.backend_choice"):
        short = dataset(contract, clips, tmp_path, ["short.mp4", "short.mp4"])
        long = dataset(contract, clips, tmp_path, ["long.mp4"])
    # the model predicts 8 (decord) vs 100 (PyAV) ms for the short file, 300 vs 100 for the long one
    assert short.media.choice.predicted_ms == {"decord": 8.0, "pyav": 100.0}
    assert long.media.choice.predicted_ms == {"decord": 300.0, "pyav": 100.0}
    assert short.media.choice.backend == "decord" and long.media.choice.backend == "pyav"
    assert short.media.choice.probed == [str(clips / "short.mp4")] * 2
    assert "backend auto -> decord" in caplog.text and "backend auto -> pyav" in caplog.text
    for auto, name in ((short, "short.mp4"), (long, "long.mp4")):
        sample = auto[0]
        assert auto.media.reader.backend == auto.media.choice.backend
        for forced in ("decord", "pyav"):
            other = dataset(contract, clips, tmp_path, [name], backend=forced)
            assert other.media.choice.backend == forced
            assert torch.equal(other[0]["pixel_values"][0], sample["pixel_values"][0])
        assert auto.decode_fallbacks() == []


def test_both_backends_give_the_same_frames_at_the_sampled_indices(clips):
    path = str(clips / "long.mp4")
    indices = SAMPLERS.build({"name": "fps", "max_frames": 16})(300, 25.0)
    decord, pyav = (VideoReader(b, fallback=False).read(path, indices) for b in ("decord", "pyav"))
    assert torch.equal(decord.frames, pyav.frames) and decord.indices == pyav.indices == indices


def test_a_dataset_without_readable_files_decides_on_its_first_decoded_file(contract, clips, tmp_path):
    ds = dataset(contract, clips, tmp_path, ["long.mp4"])
    ds.media.choice = None  # as for a stream, or files that appear after construction
    ds[0]
    assert ds.media.choice.backend == "pyav" and ds.media.choice.probed == [str(clips / "long.mp4")]
    assert backend_choice.choose([str(tmp_path / "absent.mp4")], ds.media.sampler).backend == \
        backend_choice.DEFAULT_BACKEND


def test_with_one_library_installed_auto_takes_it_without_probing(clips, monkeypatch):
    monkeypatch.setattr(backend_choice, "installed", lambda: ["pyav"])
    sampler = SAMPLERS.build({"name": "linspace", "num_frames": 8})
    choice = backend_choice.choose([str(clips / "short.mp4")], sampler)
    assert (choice.backend, choice.probed) == ("pyav", []) and "only decoding library" in choice.reason
    monkeypatch.setattr(backend_choice, "installed", lambda: ["decord"])
    assert backend_choice.choose([str(clips / "long.mp4")], sampler).backend == "decord"


def test_a_file_the_chosen_backend_cannot_open_is_read_by_the_other_counted_and_logged(contract, clips, tmp_path,
                                                                                      monkeypatch, caplog):
    from vlmkit.data import video
    from vlmkit.errors import DataError

    def refuse(path, num_threads):
        raise DataError(f"{path}: decord cannot open it: stand-in refusal")
    monkeypatch.setitem(video._OPENERS, "decord", refuse)
    ds = dataset(contract, clips, tmp_path, ["short.mp4", "short.mp4"], backend="decord")
    with caplog.at_level(logging.WARNING):
        first, second = ds[0], ds[1]
    fallbacks = ds.decode_fallbacks()
    assert [f["decoded_by"] for f in fallbacks] == ["pyav", "pyav"]
    assert "stand-in refusal" in fallbacks[0]["reason"]
    assert "decoded by pyav instead of decord" in caplog.text and "2 such file(s)" in caplog.text
    assert torch.equal(first["pixel_values"][0], second["pixel_values"][0])


def test_an_unknown_backend_names_the_accepted_ones(contract, clips, tmp_path):
    from vlmkit.data.datasets.base import MediaLoader

    with pytest.raises(ValueError, match="unknown decoding backend 'ffmpeg'; accepted: auto, decord, pyav"):
        MediaLoader(contract, train=False, backend="ffmpeg")
    with pytest.raises(Exception, match="auto.*decord.*pyav") as err:
        dataset(contract, clips, tmp_path, ["short.mp4"], backend="ffmpeg")
    assert "ffmpeg" in str(err.value)
