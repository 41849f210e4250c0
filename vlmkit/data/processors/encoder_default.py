"""The processor an encoder's ``ImagePreprocessing`` implies, so data and encoder cannot disagree."""
from __future__ import annotations

from vlmkit.contracts import ImagePreprocessing
from vlmkit.data.processors import random_resized_crop, resize, resize_center_crop
from vlmkit.data.processors.base import FrameProcessor
from vlmkit.registry import PROCESSORS
from vlmkit.schema import Runtime


def from_preprocessing(prep: ImagePreprocessing, train: bool = False) -> FrameProcessor:
    """Eval: resize + center crop when ``prep.crop``, else resize to a square; train: random-resized-crop
    (scale 0.5-1) + horizontal flip.  Size, statistics and interpolation always come from ``prep``."""
    if not isinstance(prep, ImagePreprocessing):
        raise TypeError(f"from_preprocessing needs an ImagePreprocessing, got {type(prep).__name__}")
    if train:
        return random_resized_crop.build(prep.size, prep.mean, prep.std, prep.interpolation)
    builder = resize_center_crop.build if prep.crop else resize.build
    return builder(prep.size, prep.mean, prep.std, prep.interpolation)


@PROCESSORS.register("encoder_default", aliases=["from_encoder"])
def encoder_default(preprocessing: Runtime[ImagePreprocessing], train: bool = False) -> FrameProcessor:
    """The encoder's own preprocessing (passed in by vlmkit from the model's data contract)."""
    return from_preprocessing(preprocessing, train=train)
