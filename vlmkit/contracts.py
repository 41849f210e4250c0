"""Small value objects that the model side hands to the data side (``data/`` never imports ``models/``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Labels that no loss reads (prompt, visual and padding positions): torch's cross-entropy ignore_index.
IGNORE_INDEX = -100

# Media placeholders in conversation text; each expands to the model's visual tokens. Datasets write
# VIDEO_PLACEHOLDER (IMAGE_PLACEHOLDER for image samples); everything that finds or strips them reads PLACEHOLDERS.
VIDEO_PLACEHOLDER, IMAGE_PLACEHOLDER = "<video>", "<image>"
PLACEHOLDERS = (VIDEO_PLACEHOLDER, IMAGE_PLACEHOLDER)

# The instruction that text-reading visual stages (InstructBLIP's Q-Former) get: the last user turn without
# media placeholders, tokenized by the data side with the tokenizer in ``DataContract.extra["instruction"]``.
INSTRUCTION_IDS, INSTRUCTION_MASK = "instruction_ids", "instruction_mask"


@dataclass(frozen=True)
class ImagePreprocessing:
    """What a vision encoder expects of its input pixels; processors are derived from it."""

    size: int                      # square input side in pixels
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bicubic"  # torchvision InterpolationMode name, lower case
    crop: bool = True               # resize the short side then center-crop, else resize to size x size


def normalise_frames(frames: Any, prep: ImagePreprocessing) -> Any:
    """uint8 frames (..., C, H, W) -> float32 scaled to [0, 1] and normalised with ``prep``'s mean and std: the
    last step of every frame processor, done by the model on its device when the data hands it uint8 frames."""
    import torch
    from torchvision.transforms.v2 import functional as F

    return F.normalize(F.to_dtype(frames, torch.float32, scale=True), list(prep.mean), list(prep.std))


UINT8_PIXELS = "uint8_pixels"  # DataContract.extra key: the model normalises uint8 frames itself


@dataclass
class DataContract:
    """Everything a dataset needs from the model to build its inputs.

    ``visual_tokens`` is the number of placeholder tokens one sample's video expands to, so no dataset
    config repeats a query count; ``preprocessing`` holds one pixel contract per visual branch (a sample
    carries one frame tensor per branch); ``sampling`` (a ``VideoSampling``) is the single statement of
    frames and resolution; ``encode(conversation, num_media, add_generation_prompt)`` turns a conversation
    into token ids and answer-only labels with the model's tokenizer and chat template.
    """

    tokenizer: Any
    template: Any
    visual_tokens: int
    num_frames: int
    preprocessing: tuple[ImagePreprocessing, ...]
    sampling: Any
    encode: Callable[..., Any]
    pad_token_id: int
    placeholders: tuple[str, ...] = PLACEHOLDERS
    extra: dict[str, Any] = field(default_factory=dict)
