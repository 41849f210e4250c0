"""What the composite, the runner and the tasks expect of components: one Protocol per role.

A component may be any class that has the members of its role; none has to inherit from a vlmkit base. Members
that have a sensible "off" value (a stage reads no text, needs no batch entries) are filled in by
``with_stage_defaults`` when the composite builds the component, so user code reads them as plain attributes;
members that cannot be guessed (a stage's output width and token grid) are required, and a component lacking
one fails at build time with an error that names the member and says what it means (``missing_members``).

This module is part of the core: it imports nothing heavy (torch only for type checkers).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from vlmkit.contracts import DataContract, ImagePreprocessing


# ---------------------------------------------------------------------------------------------- visual side
@runtime_checkable
class VisualStage(Protocol):
    """A step of a visual branch (encoder output -> adapters, poolers, projector): ``(B, T, N, D) -> (B, T', N',
    out_dim)``. ``vlmkit.models.stage.VisualStage`` is a base class with these members (and freezing)."""

    out_dim: int
    reads_text: bool
    batch_keys: tuple[str, ...]

    def out_tokens(self, in_tokens: int, in_frames: int) -> tuple[int, int]: ...

    def __call__(self, x: torch.Tensor, **extra: Any) -> torch.Tensor: ...


@runtime_checkable
class TextReadingStage(VisualStage, Protocol):
    """A stage with ``reads_text = True`` (InstructBLIP's Q-Former): forward also gets ``text_ids`` and
    ``text_mask``, the instruction tokenized by the data side with ``tokenizer``."""

    tokenizer: Any
    max_text_length: int
    vocab_size: Optional[int]


@runtime_checkable
class VisualEncoder(VisualStage, Protocol):
    """The first step of a branch: ``(B, T, C, H, W)`` pixels (or, with ``reads_pixels = False``, the batch
    entries named in ``batch_keys``) -> ``(B, T', tokens_per_frame, out_dim)``."""

    tokens_per_frame: int
    reads_pixels: bool

    @property
    def preprocessing(self) -> ImagePreprocessing: ...


# What each member means, for errors about a component that lacks one.
MEMBER_MEANINGS: dict[str, str] = {
    "out_dim": "the width D of the tokens it returns (an int); the next stage is built for it",
    "out_tokens": "a method out_tokens(in_tokens, in_frames) -> (frames, tokens per frame) it returns for an input "
                  "of in_frames frames of in_tokens tokens each; the composite counts visual tokens with it before "
                  "anything runs (a stage that keeps the token grid returns (in_frames, in_tokens))",
    "tokens_per_frame": "the tokens it gives per frame (an int)",
    "preprocessing": "the pixel contract of its input (a vlmkit.contracts.ImagePreprocessing: size, mean, std)",
    "tokenizer": "the tokenizer of the instruction text it reads (reads_text = True)",
    "max_text_length": "how many instruction tokens it reads (reads_text = True)",
    "generate": "generate(input_ids, attention_mask, pixel_values, **batch entries) -> answers (a list of str)",
    "batch_keys": "the batch entries (besides ids, masks and pixels) it reads, a tuple of names (may be empty)",
}

STAGE_BASE = "vlmkit.models.stage.VisualStage"
LLM_BASE = "vlmkit.models.llms.hf_lm.HFLanguageModel"

# Members with an "off" value: a component that lacks them gets these.
STAGE_DEFAULTS: dict[str, Any] = {"reads_text": False, "batch_keys": ()}
ENCODER_DEFAULTS: dict[str, Any] = {**STAGE_DEFAULTS, "reads_pixels": True}
TEXT_READER_DEFAULTS: dict[str, Any] = {"vocab_size": None}


def missing_members(obj: Any, members: Sequence[str]) -> list[str]:
    """The ``members`` that ``obj`` does not have (properties that raise count as missing)."""
    missing = []
    for name in members:
        try:
            getattr(obj, name)
        except AttributeError:
            missing.append(name)
    return missing


def require_members(obj: Any, members: Sequence[str], where: str, role: str, base: str = "") -> None:
    """Raise a ValueError naming every member of ``members`` that ``obj`` lacks and what it means; ``base``: a
    vlmkit class that has them, suggested as an alternative."""
    missing = missing_members(obj, members)
    if missing:
        kind = type(obj)
        lines = "; ".join(f"'{name}': {MEMBER_MEANINGS.get(name, 'see vlmkit.protocols')}" for name in missing)
        raise ValueError(f"{where}: {kind.__module__}.{kind.__qualname__} is used as {role} but has no "
                         f"{', '.join(repr(m) for m in missing)} ({lines}). Define "
                         f"{'it' if len(missing) == 1 else 'them'}" + (f", or subclass {base}" if base else ""))


def with_stage_defaults(stage: Any, where: str, *, encoder: bool = False) -> Any:
    """``stage`` with every defaultable member present (set on the instance when it lacks one) after checking
    the members that cannot be defaulted; the composite reads them as plain attributes afterwards."""
    required = ["out_dim", "out_tokens", *(["tokens_per_frame"] if encoder else [])]
    require_members(stage, required, where, "a visual encoder" if encoder else "a visual stage", STAGE_BASE)
    if not callable(stage.out_tokens):
        raise ValueError(f"{where}: out_tokens must be a method ({MEMBER_MEANINGS['out_tokens']}), got "
                         f"{stage.out_tokens!r}")
    for name, value in (ENCODER_DEFAULTS if encoder else STAGE_DEFAULTS).items():
        if not missing_members(stage, [name]):
            continue
        setattr(stage, name, value)
    if encoder and stage.reads_pixels:
        require_members(stage, ["preprocessing"], where, "a visual encoder that reads pixels", STAGE_BASE)
    if stage.reads_text:
        require_members(stage, ["tokenizer", "max_text_length"], where, "a visual stage that reads text",
                        STAGE_BASE)
        if missing_members(stage, ["vocab_size"]):
            stage.vocab_size = TEXT_READER_DEFAULTS["vocab_size"]
    if not isinstance(stage.batch_keys, tuple):  # a list from a config, say; a property may already give a tuple
        stage.batch_keys = tuple(stage.batch_keys)
    return stage


# ---------------------------------------------------------------------------------------------- LLM side
@runtime_checkable
class LanguageModel(Protocol):
    """An LLM wrapper (``vlmkit.models.llms``): reads ``inputs_embeds``; ``is_encoder_decoder`` decides how labels
    are counted; ``streams_visual`` / ``reads_visual_mask`` are Video-XL's window-reading capabilities (False for
    every plain LM)."""

    tokenizer: Any
    hidden_size: int
    is_encoder_decoder: bool
    streams_visual: bool
    reads_visual_mask: bool

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor: ...

    def add_special_tokens(self, tokens: list[str]) -> list[int]: ...

    def generate(self, inputs_embeds: Any, attention_mask: Optional[torch.Tensor] = None,
                 **kwargs: Any) -> torch.Tensor: ...

    def __call__(self, *, inputs_embeds: Any, attention_mask: Optional[torch.Tensor] = None,
                 labels: Optional[torch.Tensor] = None, **kwargs: Any) -> Any: ...


LLM_MEMBERS = ("tokenizer", "hidden_size", "is_encoder_decoder", "streams_visual", "reads_visual_mask", "embed",
               "add_special_tokens", "generate")


@runtime_checkable
class GeneratingModel(Protocol):
    """What generation tasks call: answers for a batch, given the batch entries the model reads besides ids, masks
    and pixels (``batch_keys``: precomputed features, GEBC's reference points)."""

    batch_keys: tuple[str, ...]

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: Any = None,
                 **kwargs: Any) -> list[str]: ...


@runtime_checkable
class HasLanguageModel(Protocol):
    """A model built around an LLM wrapper (``VideoLLM.llm``); the runner also trains plain LMs, which have none."""

    llm: LanguageModel


@runtime_checkable
class StatesDataContract(Protocol):
    """A model that tells the data side how to build its inputs (tokenizer, template, visual tokens per video);
    datasets are built against it. The runner's plain LMs have none."""

    def data_contract(self) -> DataContract: ...


@runtime_checkable
class VideoModel(GeneratingModel, HasLanguageModel, StatesDataContract, Protocol):
    """What the data side and evaluation read of a composite model (``VideoLLM``) beyond ``model(**batch)``."""

    visual_tokens: int


GENERATING_MEMBERS = ("generate", "batch_keys")


def is_encoder_decoder(model: Any) -> bool:
    """Whether a model's LM is a seq2seq decoder (its labels are all targets); a model without an LLM wrapper (the
    runner's plain LMs) counts as causal."""
    return isinstance(model, HasLanguageModel) and bool(model.llm.is_encoder_decoder)


# ---------------------------------------------------------------------------------------------- data side
# A dataset is a torch Dataset (map-style or iterable); these are the optional hooks the runner and mixtures call
# when a dataset has them.
@runtime_checkable
class EpochAware(Protocol):
    """A dataset whose order or draws depend on the epoch (shuffled shards, mixtures, resampling)."""

    epoch: int

    def set_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    """A dataset that can save and restore its position (streamed shards, mixtures)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class TracksConsumed(Protocol):
    """A streamed dataset read through DataLoader workers: the main process tells it which samples (their
    ``meta``) the run consumed, so its position survives the workers' read-ahead."""

    def consumed(self, metas: Sequence[Mapping[str, Any]]) -> None: ...


@runtime_checkable
class Collates(Protocol):
    """A dataset with its own batch collation (padding token ids, stacking frames per branch)."""

    def collater(self, samples: Sequence[Any]) -> Any: ...


@runtime_checkable
class ReportsBadSamples(Protocol):
    """A dataset that skips or resamples bad samples (``on_bad_sample``), lists them and writes them to the run's
    folder."""

    def bad_samples(self) -> list[dict[str, Any]]: ...

    def set_output_dir(self, path: str) -> None: ...

    def write_bad_samples(self) -> Any: ...

    def reset_bad_samples(self) -> None: ...


@runtime_checkable
class HasTextLengths(Protocol):
    """A dataset that knows each sample's token length without decoding video (``run.group_by_length``)."""

    def text_lengths(self) -> Sequence[int]: ...


@runtime_checkable
class Mixture(Protocol):
    """Named datasets drawn together (``MixedDataset``, ``MixedStream``); checks look at each source."""

    names: list[str]
    sources: list[Any]


@runtime_checkable
class RecordDataset(Protocol):
    """A map-style dataset of annotation records (``items``) that ``builder`` turns into samples."""

    items: Sequence[Any]
    builder: Any


@runtime_checkable
class RecordStream(Resumable, Protocol):
    """A streamed dataset (shards) whose samples ``builder`` makes; it can save its position."""

    builder: Any


# ---------------------------------------------------------------------------------------------- metrics
@runtime_checkable
class ScoresSamples(Protocol):
    """A metric that also gives a verdict per prediction record (``{"correct": ...}``), not only a split's score."""

    def score_sample(self, pred: dict[str, Any]) -> dict[str, Any]: ...


# ---------------------------------------------------------------------------------------------- tasks
@runtime_checkable
class Task(Protocol):
    """What a batch means (``vlmkit.tasks.base.Task`` is the base class): a training loss, evaluation records and
    metrics, and the headline number of a results table (None: no single headline)."""

    def train_step(self, model: Any, batch: Mapping[str, Any]) -> dict[str, Any]: ...

    def supervised_tokens(self, model: Any, batch: Mapping[str, Any]) -> int: ...

    def valid_step(self, model: Any, batch: Mapping[str, Any]) -> list[dict[str, Any]]: ...

    def evaluate(self, records: list[dict[str, Any]]) -> dict[str, float]: ...

    def headline(self, metrics: Mapping[str, float]) -> Optional[tuple[str, float]]: ...


__all__ = ["VisualStage", "TextReadingStage", "VisualEncoder", "LanguageModel", "GeneratingModel",
           "HasLanguageModel", "StatesDataContract", "VideoModel", "EpochAware", "Resumable", "TracksConsumed", "Collates",
           "ReportsBadSamples", "Mixture", "RecordDataset", "RecordStream", "HasTextLengths", "ScoresSamples", "Task",
           "MEMBER_MEANINGS", "missing_members", "require_members", "with_stage_defaults", "is_encoder_decoder",
           "LLM_MEMBERS", "GENERATING_MEMBERS"]
