"""Small value objects that the model side hands to the data side (``data/`` never imports ``models/``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocessing:
    """What a vision encoder expects of its input pixels; processors are derived from it."""

    size: int                      # square input side in pixels
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bicubic"  # torchvision InterpolationMode name, lower case
    crop: bool = True               # resize the short side then center-crop, else resize to size x size


@dataclass
class DataContract:
    """Everything a dataset needs from the model to build its inputs.

    ``visual_tokens`` is the number of placeholder tokens one sample's media expand to, so no dataset
    config repeats a query count; ``preprocessing`` is the (first) encoder's pixel contract.
    """

    tokenizer: Any
    template: Any
    placeholder: str
    visual_tokens: int
    preprocessing: ImagePreprocessing
    num_frames: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
