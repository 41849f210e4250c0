"""``VideoSampling``: the one statement of frames, fps and resolution for a run.

It holds a sampler config and the frame resolution, serialises to a plain dict (saved in checkpoints) and
rebuilds the same thing for evaluation: the eval sampler is the training sampler's deterministic counterpart
(``segment_random`` -> ``segment_middle`` over the same segments), and the resolution is checked against the
encoder's ``ImagePreprocessing``, so training, evaluation and the encoder cannot drift apart.

It lives in the core because both sides read it: the model states it, the data side samples and processes frames
by it. Samplers and processors are found through their registries, so this module imports neither ``models`` nor
``data``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from vlmkit.contracts import ImagePreprocessing
from vlmkit.errors import ConfigError
from vlmkit.registry import PROCESSORS, SAMPLERS
from vlmkit.schema import Component, check_value, plain_params, signature_of, to_plain


class VideoSampling:
    """``sampler``: a samplers config (``{name: fps, max_frames: 16}``); ``image_size``: frame side in pixels,
    or null to take the encoder's; ``train_augment``: training frames get a random resized crop and a horizontal
    flip (false: processed like evaluation frames, for labels that name left/right or positions)."""

    def __init__(self, sampler: Component("samplers"), image_size: Optional[int] = None, train_augment: bool = True):
        sampler = to_plain(sampler)
        if isinstance(sampler, str):
            sampler = {"name": sampler}
        if not isinstance(sampler, Mapping):
            raise ConfigError("sampling.sampler", f"expected a sampler config mapping, got {sampler!r}")
        self.sampler_config: dict[str, Any] = {"name": SAMPLERS.canonical(SAMPLERS.name_of(sampler)),
                                               **plain_params(sampler)}
        self._train = SAMPLERS.build(self.sampler_config, "sampling.sampler")
        self._eval = eval_counterpart(self._train)
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                       or image_size < 1):
            raise ConfigError("sampling.image_size", f"expected a positive integer or null, got {image_size!r}")
        self.image_size = image_size
        self.train_augment = bool(train_augment)

    def sampler(self, train: bool):
        """The training sampler, or its deterministic evaluation counterpart."""
        return self._train if train else self._eval

    @property
    def max_frames(self) -> int:
        return self._train.max_frames

    def resolve(self, prep: ImagePreprocessing) -> "VideoSampling":
        """This sampling with ``image_size`` taken from, and checked against, the encoder's preprocessing."""
        if self.image_size is not None and self.image_size != prep.size:
            raise ConfigError("sampling.image_size",
                              f"{self.image_size} disagrees with the encoder's input size {prep.size}; remove "
                              f"image_size (it defaults to the encoder's) or change the encoder")
        return VideoSampling(self.sampler_config, prep.size, self.train_augment)

    def processor(self, prep: ImagePreprocessing, train: bool):
        """The frame processor for this run, derived from the encoder's preprocessing (``encoder_default``)."""
        self.resolve(prep)
        return PROCESSORS.build({"name": "encoder_default", "train": train and self.train_augment},
                                "sampling.processor", preprocessing=prep)

    def to_dict(self) -> dict[str, Any]:
        # train_augment only when switched off: checkpoints saved before it existed still compare equal.
        return {"sampler": dict(self.sampler_config), "image_size": self.image_size,
                **({} if self.train_augment else {"train_augment": False})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "sampling") -> "VideoSampling":
        data = to_plain(data)
        params = signature_of(cls).parameters
        unknown = sorted(set(data) - set(params))
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}", f"unknown key(s) {unknown} for video sampling; accepted: "
                                                      f"{', '.join(params)}")
        if "sampler" not in data:
            raise ConfigError(f"{path}.sampler", "missing required key 'sampler'")
        problems = [e for key, value in data.items()
                    for e in check_value(value, params[key].annotation, f"{path}.{key}")]
        if problems:
            raise problems[0] if len(problems) == 1 else ConfigError.many(problems)
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VideoSampling) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"VideoSampling(sampler={self.sampler_config}, image_size={self.image_size}, "
                f"train_augment={self.train_augment})")


def eval_counterpart(sampler):
    """Deterministic samplers evaluate as they train; random ones name their counterpart."""
    counterpart = getattr(sampler, "eval_counterpart", None)
    return counterpart() if counterpart else sampler
