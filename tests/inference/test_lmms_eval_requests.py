"""The lmms-eval plug-in's request handling without a model: a task's generation_kwargs mapped onto vlmkit's
settings, and the clear errors for what it cannot take (no video, several images, a bad score or batch size)."""
import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (make test installs it)")

from vlmkit.errors import ConfigError, DataError  # noqa: E402
from vlmkit.integrations.lmms_eval.model import VlmkitLmms  # noqa: E402


def bare():
    model = VlmkitLmms.__new__(VlmkitLmms)  # the request helpers need no loaded run
    model.task_dict = {"t": {"test": [{"video": "/v/a.mp4"}, {"images": ["a.png", "b.png"]}]}}
    return model


def test_generation_kwargs_map_onto_vlmkit_settings():
    settings, until = VlmkitLmms._generation({"until": "\n\n", "max_new_tokens": 8, "temperature": 0,
                                              "do_sample": True, "image_aspect_ratio": "pad"})
    assert settings == {"max_new_tokens": 8, "do_sample": False} and until == ["\n\n"]
    settings, until = VlmkitLmms._generation({"temperature": 0.7, "do_sample": True, "top_p": 0.9})
    assert settings == {"temperature": 0.7, "do_sample": True, "top_p": 0.9} and until == []


def test_one_video_per_document():
    model = bare()
    assert model._video(lambda doc: [doc["video"]], 0, "t", "test") == "/v/a.mp4"
    with pytest.raises(DataError, match="one video per document"):
        model._video(lambda doc: doc["images"], 1, "t", "test")


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="score"):
        VlmkitLmms(run="unused", score="max")
    with pytest.raises(ConfigError, match="batch_size"):
        VlmkitLmms(run="unused", batch_size="auto")
