"""What every dataset shares: media loading against the model's data contract, the bad-sample policy, and
the map-style base class (records -> encoded text + frames, one tensor per visual branch).

A dataset subclass only turns its annotation format into ``Record`` objects; everything else lives here, so
all datasets decode, sample, process, encode and fail the same way.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from vlmkit.contracts import (IGNORE_INDEX, INSTRUCTION_IDS, PLACEHOLDERS, UINT8_PIXELS, VIDEO_PLACEHOLDER,
                              DataContract)
from vlmkit.data.backend_choice import DEFAULT_BACKEND, PROBE_FILES, BackendChoice, check_backend
from vlmkit.data.backend_choice import choose as choose_backend
from vlmkit.data.video import VideoReader
from vlmkit.errors import DataError

_log = logging.getLogger(__name__)

Policy = Literal["raise", "skip", "resample"]
POLICIES = ("raise", "skip", "resample")
BAD_SAMPLES_JSONL = "bad_samples.jsonl"
BAD_SAMPLES_JSON = "bad_samples.json"
RESAMPLE_ATTEMPTS = 10
BAD_SHARE_MIN_READS = 50  # max_bad_fraction judges a process's share only after this many reads (or the dataset)
LISTED_IN_ERRORS = 20
FRAME_FOLDER_FPS = 3.0  # MVBench's TVQA frames (tvqa/frames_fps3_hq)


@dataclass
class Record:
    """One sample before decoding: its media file, a conversation, and what evaluation needs to score it.

    ``conversation`` ends with the answer (training target); at evaluation the final answer is dropped and the
    prompt is opened for generation, followed by ``answer_prefix`` (a pre-filled start of the answer).
    """

    id: str
    media: Optional[str]
    conversation: list[dict]
    meta: dict[str, Any] = field(default_factory=dict)
    start: Optional[float] = None
    end: Optional[float] = None
    answer_prefix: str = ""
    problem: Optional[str] = None  # a fault found while reading the annotation, raised under the policy


# ---------------------------------------------------------------------------------------------- media
def fit_frame_count(frames: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Exactly ``num_frames`` frames: repeat (or thin) the decoded ones evenly, never pad with blanks."""
    count = frames.shape[0]
    if count == num_frames:
        return frames
    picks = np.linspace(0, count - 1, num_frames, dtype=int)
    return frames[torch.from_numpy(picks)]


class RepeatedIndices:
    """A deterministic sampler's indices kept per (frame count, fps): clips of one length and rate get the same
    indices, so they are computed once per dataset (and worker) instead of once per sample.  A call with ``rng``
    goes to the sampler."""

    MAX_KEPT = 4096

    def __init__(self, sampler):
        self.sampler, self._kept = sampler, {}

    def __call__(self, num_frames: int, fps: Optional[float] = None, rng=None) -> list[int]:
        if rng is not None:
            return self.sampler(num_frames, fps, rng=rng)
        key = (num_frames, fps)
        picks = self._kept.get(key)
        if picks is None:
            if len(self._kept) >= self.MAX_KEPT:
                self._kept.clear()
            picks = self._kept[key] = tuple(self.sampler(num_frames, fps))
        return list(picks)


class MediaLoader:
    """Decode once with ``VideoReader``, sample with the contract's sampler, process once per visual branch.

    Images are 1-frame videos, so they come out as ``num_frames`` copies of the image.
    """

    def __init__(self, contract: DataContract, train: bool, backend: str = "auto", fallback: bool = True,
                 num_threads: int = 1):
        self.num_frames = contract.num_frames
        self.train = train
        self.sampler = contract.sampling.sampler(train)
        # evaluation samplers are deterministic: their indices depend on (frames, fps) only, computed once each
        self._pick = self.sampler if train else RepeatedIndices(self.sampler)
        self.processors = [contract.sampling.processor(prep, train) for prep in contract.preprocessing]
        if (contract.extra or {}).get(UINT8_PIXELS):  # the model normalises on its device: pass uint8 (4x smaller)
            self.processors = [p.unnormalised() for p in self.processors]
        self.backend = check_backend(backend)
        # an explicit backend is the choice; auto decides in choose_backend (or on the first decoded file)
        self.choice: Optional[BackendChoice] = (None if backend == "auto"
                                                else BackendChoice(backend, "set in the config"))
        self.fallbacks: list[dict] = []  # files the chosen backend could not decode, and who did instead
        self.reader = VideoReader(backend=DEFAULT_BACKEND if backend == "auto" else backend, fallback=fallback,
                                  num_threads=num_threads, layout="TCHW", timestamps=False)

    def choose_backend(self, paths: Sequence[str], dataset: str = "dataset") -> BackendChoice:
        """With ``backend: auto``, the backend of lower predicted cost on the first files of ``paths`` (see
        vlmkit.data.backend_choice); kept for every later read (and inherited by DataLoader workers)."""
        if self.choice is None:
            self.choice = choose_backend(paths, self.sampler, dataset)
            self.reader.backend = self.choice.backend
        return self.choice

    def _note_fallback(self, path: str, clip) -> None:
        """A file the chosen backend could not decode: counted, and logged with the reason."""
        self.fallbacks.append({"file": path, "decoded_by": clip.backend, "reason": clip.fallback_reason})
        _log.warning("%s: decoded by %s instead of %s (%s); %d such file(s) in this process", path, clip.backend,
                     self.reader.backend, clip.fallback_reason, len(self.fallbacks))

    def decode(self, path: str, start: Optional[float] = None, end: Optional[float] = None,
               seed: Optional[int] = None) -> torch.Tensor:
        """uint8 (num_frames, C, H, W); raises DataError naming the file for anything unusable."""
        if os.path.isdir(path):
            frames = self._frame_folder(path, start, end, seed)
        else:
            if self.choice is None:
                self.choose_backend([path])
            clip = self.reader.sample(path, self._pick, rng=seed, start=start, end=end)
            if clip.fallback_reason:
                self._note_fallback(path, clip)
            frames = clip.frames
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[2] == 0 or frames.shape[3] == 0:
            raise DataError(f"{path}: decoding produced no usable frames (shape {tuple(frames.shape)})")
        if not bool(frames.any()):
            raise DataError(f"{path}: every decoded frame is black (all pixels 0); the file is probably damaged")
        return fit_frame_count(frames, self.num_frames)

    def _frame_folder(self, path: str, start: Optional[float], end: Optional[float],
                      seed: Optional[int]) -> torch.Tensor:
        """A folder of numbered image files as a video at ``FRAME_FOLDER_FPS`` (MVBench's TVQA frames)."""
        from PIL import Image, UnidentifiedImageError

        from vlmkit.data.video import frame_range

        names = sorted(n for n in os.listdir(path) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        if not names:
            raise DataError(f"{path}: a folder with no .jpg/.png frames")
        try:
            first, last = frame_range(len(names), FRAME_FOLDER_FPS, start, end)
        except ValueError as err:
            raise DataError(f"{path}: {err}") from err
        picks = [first + i for i in self.sampler(last - first + 1, FRAME_FOLDER_FPS, rng=seed)]
        try:
            images = [np.asarray(Image.open(os.path.join(path, names[i])).convert("RGB")) for i in picks]
            stacked = np.stack(images)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read its frames: {err}") from err
        return torch.from_numpy(stacked).permute(0, 3, 1, 2)

    def process(self, frames: torch.Tensor, seed: Optional[int] = None) -> list[torch.Tensor]:
        """One tensor (T, C, size, size) per visual branch: normalised float32, or uint8 when the model's data
        contract says it normalises them itself (``UINT8_PIXELS``)."""
        return [processor(frames, seed=seed) for processor in self.processors]

    def load(self, path: str, start: Optional[float] = None, end: Optional[float] = None,
             seed: Optional[int] = None) -> list[torch.Tensor]:
        return self.process(self.decode(path, start, end, seed), seed)


def resolve_media(root: str, name: str) -> str:
    """``name`` under ``root`` unless it is absolute or a URI."""
    if not root or os.path.isabs(name) or "://" in name:
        return name
    return os.path.join(root, name)


def find_media(root: str, stem: str, suffixes: Sequence[str]) -> str:
    """The first existing ``root/stem + suffix`` (annotation files often name a video without its extension)."""
    candidates = [resolve_media(root, stem)] if Path(stem).suffix else []
    candidates += [resolve_media(root, stem + suffix) for suffix in suffixes]
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return candidates[0] if candidates else resolve_media(root, stem)


def read_annotations(path: str) -> Any:
    """A JSON file, or JSON lines (``.jsonl``), with errors that name the file."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: annotation file not found")
    text = Path(path).read_text(encoding="utf-8")
    try:
        if path.endswith(".jsonl"):
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def require(entry: dict, key: str, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise DataError(f"{where}: missing field '{key}' (has {keys})")
    return entry[key]


# ---------------------------------------------------------------------------------------------- bad samples
class TooManyBadSamples(DataError):
    """The share of bad samples went over ``max_bad_fraction``: the data is mostly broken, stop the run."""


def unique_samples(entries: Sequence[dict]) -> list[dict]:
    """One entry per bad sample (dataset, id), the first seen, with ``events``: how often it failed (a resampled
    or re-read sample fails again each time)."""
    unique: dict[tuple, dict] = {}
    for entry in entries:
        key = (entry.get("dataset"), entry.get("id"))
        if key in unique:
            unique[key]["events"] += 1
        else:
            unique[key] = {**entry, "events": 1}
    return list(unique.values())


def too_many_bad(dataset: str, bad: int, total: int, limit: float, entries: Sequence[dict]) -> TooManyBadSamples:
    listed = "\n".join(f"  {e.get('file') or e.get('id')}: {e.get('reason')}" for e in entries[:LISTED_IN_ERRORS])
    more = f"\n  ... and {len(entries) - LISTED_IN_ERRORS} more" if len(entries) > LISTED_IN_ERRORS else ""
    return TooManyBadSamples(f"{dataset}: {bad} of {total} samples read were bad ({bad / total:.1%}), over "
                             f"max_bad_fraction {limit}; fix the data or raise the limit. Bad samples:\n"
                             f"{listed}{more}")


class BadSampleLog:
    """Counts, logs and lists every sample that could not be used, with the file and the reason.

    With ``output_dir`` each entry is also appended as one JSON line to ``bad_samples.jsonl`` there (one
    ``write`` per line on an O_APPEND file, so DataLoader workers can share it); ``entries()`` then reads the
    file, which holds the workers' entries too, and ``write_summary`` writes ``bad_samples.json``.  The file
    belongs to one run: ``reset()`` empties it for a fresh start (a resume keeps it).  Entries are events; the
    summary counts unique samples and files separately.

    ``max_fraction`` (set by the runner's ``max_bad_fraction``): once this process has read ``min_reads``
    samples, a share of failed reads above it raises ``TooManyBadSamples`` with the list.
    """

    def __init__(self, dataset: str, output_dir: Optional[str] = None):
        self.dataset = dataset
        self.output_dir = output_dir
        self._entries: list[dict] = []
        self.max_fraction: Optional[float] = None
        self.min_reads = BAD_SHARE_MIN_READS
        self.reads = self.failed = 0  # sample reads of this process (resamples included), and failed ones

    def reset(self) -> None:
        """Forget earlier runs' entries: a fresh run reports only its own bad samples."""
        self._entries, self.reads, self.failed = [], 0, 0
        if self.output_dir:
            for name in (BAD_SAMPLES_JSONL, BAD_SAMPLES_JSON):
                Path(self.output_dir, name).unlink(missing_ok=True)

    def limit(self, fraction: Optional[float], min_reads: int = BAD_SHARE_MIN_READS) -> None:
        if fraction is not None and not 0 <= fraction <= 1:
            raise ValueError(f"max_bad_fraction must be within [0, 1], got {fraction}")
        self.max_fraction, self.min_reads = fraction, max(1, min_reads)

    def note_read(self) -> None:
        self.reads += 1

    def check_share(self, total: Optional[int] = None) -> None:
        """Raise when the bad share is over ``max_fraction``: of this process's reads, or with ``total``, the
        unique bad samples of every process (the shared file) out of ``total`` samples."""
        if self.max_fraction is None:
            return
        if total is not None:
            bad = unique_samples(self.entries())
            if total and len(bad) / total > self.max_fraction:
                raise too_many_bad(self.dataset, len(bad), total, self.max_fraction, bad)
        elif self.reads >= self.min_reads and self.failed / self.reads > self.max_fraction:
            raise too_many_bad(self.dataset, self.failed, self.reads, self.max_fraction,
                               unique_samples(self._entries))

    def record(self, index: int, sample_id: str, file: Optional[str], reason: str, action: str) -> None:
        entry = {"dataset": self.dataset, "index": int(index), "id": sample_id, "file": file, "reason": reason,
                 "action": action, "pid": os.getpid()}
        self._entries.append(entry)
        _log.warning("%s: bad sample %s (%s): %s -> %s", self.dataset, sample_id, file, reason, action)
        if self.output_dir:
            os.makedirs(self.output_dir, exist_ok=True)
            line = (json.dumps(entry) + "\n").encode()
            fd = os.open(os.path.join(self.output_dir, BAD_SAMPLES_JSONL), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        self.failed += 1
        self.check_share()

    def entries(self) -> list[dict]:
        if self.output_dir and os.path.isfile(os.path.join(self.output_dir, BAD_SAMPLES_JSONL)):
            lines = Path(self.output_dir, BAD_SAMPLES_JSONL).read_text().splitlines()
            found = [json.loads(line) for line in lines if line.strip()]
            return [e for e in found if e.get("dataset") == self.dataset]
        return list(self._entries)

    def __len__(self) -> int:
        return len(self.entries())

    def summary(self) -> dict:
        """``count``: unique bad samples; ``files``: unique files among them; ``events``: every failed read."""
        entries = self.entries()
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry["action"]] = counts.get(entry["action"], 0) + 1
        samples = unique_samples(entries)
        files = {e.get("file") or e.get("id") for e in samples}
        return {"dataset": self.dataset, "count": len(samples), "files": len(files), "events": len(entries),
                "by_action": counts, "samples": samples}

    def write_summary(self, output_dir: Optional[str] = None) -> Optional[Path]:
        folder = output_dir or self.output_dir
        if not folder:
            return None
        os.makedirs(folder, exist_ok=True)
        path = Path(folder) / BAD_SAMPLES_JSON
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing[self.dataset] = self.summary()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(existing, indent=1))
        os.replace(tmp, path)
        return path


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"on_bad_sample must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy


def sample_seed(seed: int, epoch: int, index: int, attempt: int = 0) -> int:
    """A per-sample seed that depends only on (seed, epoch, index, attempt): the same in any worker and after
    a resume, different across epochs."""
    return int(np.random.SeedSequence([seed, epoch, index, attempt]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------- samples
class SampleBuilder:
    """Record -> sample dict of the batch contract (token ids, labels, one frame tensor per branch, meta)."""

    def __init__(self, contract: DataContract, train: bool, backend: str = "auto"):
        self.contract, self.train = contract, train
        self.media = MediaLoader(contract, train, backend=backend)
        self.instruction = (contract.extra or {}).get("instruction")  # {tokenizer, max_length} or None

    def instruction_ids(self, record: Record) -> torch.Tensor:
        """The last user turn, placeholders removed, in the text-reading stage's tokenizer: the same text in
        training and generation, and never the answer."""
        text = last_user_text(record.conversation, self.contract.placeholders)
        tokenizer = self.instruction["tokenizer"]
        ids = tokenizer(text, truncation=True, max_length=self.instruction["max_length"])["input_ids"]
        return torch.tensor(ids, dtype=torch.long)

    def encode(self, record: Record) -> Any:
        if self.train:
            return self.contract.encode(record.conversation, num_media=1)
        prompt = record.conversation
        if prompt and _role(prompt[-1]) == "assistant":
            prompt = prompt[:-1]
        encoded = self.contract.encode(prompt, num_media=1, add_generation_prompt=True)
        if record.answer_prefix:  # pre-fill the answer (MVBench's "Best option:("): the model continues it
            tokenizer = self.contract.tokenizer
            encoded.input_ids = list(encoded.input_ids) + list(
                tokenizer(record.answer_prefix, add_special_tokens=False)["input_ids"])
            encoded.labels = list(encoded.labels) + [IGNORE_INDEX] * (len(encoded.input_ids) - len(encoded.labels))
        return encoded

    def build(self, record: Record, seed: int, path: Optional[str] = None) -> dict:
        """``path`` overrides ``record.media`` (a temporary file holding a shard member)."""
        if record.problem:
            raise DataError(record.problem)
        if not record.media:
            raise DataError("the sample names no video or image file")
        encoded = self.encode(record)  # text first: it is cheap and catches placeholder mismatches
        pixel_values = self.media.load(path or record.media, record.start, record.end,
                                       seed=seed if self.train else None)
        meta = {"id": record.id, "media": record.media, **record.meta}
        if record.answer_prefix:
            meta["answer_prefix"] = record.answer_prefix
        sample = {"input_ids": torch.tensor(encoded.input_ids, dtype=torch.long),
                  "labels": torch.tensor(encoded.labels, dtype=torch.long),
                  "pixel_values": pixel_values, "id": record.id, "meta": meta}
        if self.instruction:
            sample[INSTRUCTION_IDS] = self.instruction_ids(record)
        return sample

    def collate(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        from vlmkit.data.collate import collate_samples

        pad = self.instruction["tokenizer"].pad_token_id if self.instruction else None
        return collate_samples(samples, self.contract.pad_token_id, side="right" if self.train else "left",
                               instruction_pad_id=pad or 0)


# ---------------------------------------------------------------------------------------------- base dataset
class VideoTextDataset(Dataset):
    """Map-style base: ``records()`` from the subclass, then per item: encode text, decode media, process.

    ``train`` selects the random sampler and training processor and full-conversation labels; otherwise the
    deterministic sampler, eval processor and a generation prompt (the batch is left-padded).
    ``on_bad_sample``: ``raise`` a DataError naming the file and reason; ``skip`` the sample (``__getitem__``
    returns None and the collater drops it); ``resample`` another index, drawn from (seed, epoch, index).
    Every skip or resample is recorded in ``bad_samples()`` and, with ``bad_sample_dir``, on disk.
    ``backend``: ``auto`` picks decord or PyAV from a cost model of the first files (vlmkit.data.backend_choice,
    logged, kept in ``media.choice``); ``decord`` / ``pyav`` force one.  A file the backend cannot decode is
    read by the other, counted in ``decode_fallbacks()`` and logged.
    """

    def __init__(self, contract: DataContract, train: bool = True, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        if contract is None:
            raise DataError(f"{type(self).__name__} needs the model's data contract (built by vlmkit from the "
                            f"model section); got None")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or null, got {max_samples}")
        self.contract = contract
        self.train = train
        self.on_bad_sample = check_policy(on_bad_sample)
        self.seed = seed
        self.epoch = 0
        self.builder = SampleBuilder(contract, train, backend)
        self.media = self.builder.media
        self.bad_log = BadSampleLog(self.name, bad_sample_dir)
        records = self.records()
        self.items: list[Record] = records[:max_samples] if max_samples else records
        if backend == "auto":  # decided once here, before DataLoader workers copy the dataset
            self.media.choose_backend([r.media for r in self.items[:4 * PROBE_FILES] if r.media], self.name)

    name = "dataset"

    def records(self) -> list[Record]:
        raise NotImplementedError(f"{type(self).__name__} must implement records()")

    # ------------------------------------------------------------------ runner hooks
    def set_epoch(self, epoch: int) -> None:
        """Training draws (frames, crops, resamples) change per epoch and stay reproducible."""
        self.epoch = int(epoch)

    def set_output_dir(self, path: str) -> None:
        """Write the bad-sample list under the run's output directory."""
        self.bad_log.output_dir = str(path)

    def bad_samples(self) -> list[dict]:
        return self.bad_log.entries()

    def serve_media(self, media: Any) -> None:
        """Samples take their visual inputs from ``media`` (``load(path, start, end, seed)`` -> one tensor per pixel
        branch) instead of this dataset's own loader, which stays ``self.media``: the frozen-feature cache
        (``vlmkit.data.feature_cache``)."""
        self.builder.media = media

    def decode_fallbacks(self) -> list[dict]:
        """Files of this process decoded by the other backend than the chosen one (file, decoded_by, reason)."""
        return list(self.media.fallbacks)

    def write_bad_samples(self, output_dir: Optional[str] = None) -> Optional[Path]:
        return self.bad_log.write_summary(output_dir)

    def reset_bad_samples(self) -> None:
        self.bad_log.reset()

    def set_max_bad_fraction(self, fraction: Optional[float]) -> None:
        self.bad_log.limit(fraction, min(BAD_SHARE_MIN_READS, len(self)))

    def check_bad_share(self) -> None:
        """Unique bad samples of every process out of the dataset's size, against ``max_bad_fraction``."""
        self.bad_log.check_share(total=len(self))

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Optional[dict]:
        if not 0 <= index < len(self.items):
            raise IndexError(f"{self.name}: index {index} outside 0..{len(self.items) - 1}")
        current = index
        for attempt in range(RESAMPLE_ATTEMPTS + 1):
            record = self.items[current]
            self.bad_log.note_read()
            # evaluation draws nothing at random: skip the seed's cost (SeedSequence, ~30 us a sample)
            seed = sample_seed(self.seed, self.epoch, current, attempt) if self.train else 0
            try:
                return self.build_sample(record, seed)
            except DataError as err:
                reason = str(err)
                if self.on_bad_sample == "raise":
                    raise DataError(f"{self.name}: sample {record.id!r} (index {current}, file {record.media}): "
                                    f"{reason}") from err
                if self.on_bad_sample == "skip":
                    self.bad_log.record(current, record.id, record.media, reason, "skipped")
                    return None
                self.bad_log.record(current, record.id, record.media, reason, "resampled")
                rng = np.random.default_rng(sample_seed(self.seed, self.epoch, index, attempt + 1))
                current = int(rng.integers(len(self.items)))
        raise DataError(f"{self.name}: {RESAMPLE_ATTEMPTS + 1} samples in a row were bad, starting at index {index}; "
                        f"see bad_samples() for the files and reasons")

    def build_sample(self, record: Record, seed: int) -> dict:
        return self.builder.build(record, seed)

    def text_lengths(self) -> list[int]:
        """Words of each sample's conversation (LLaVA's length proxy, for ``run.group_by_length``); no media
        is read. Visual tokens are the same for every sample of a model, so they do not change the order."""
        return [sum(len(_turn_text(turn).split()) for turn in record.conversation) for record in self.items]

    def collater(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        return self.builder.collate(samples)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, train={self.train}, on_bad_sample={self.on_bad_sample})"


def _turn_text(turn: Any) -> str:
    if isinstance(turn, dict):
        return str(turn.get("content", turn.get("value", "")))
    return str(getattr(turn, "content", turn))


def _role(turn: Any) -> str:
    role = turn.get("role", turn.get("from")) if isinstance(turn, dict) else None
    return {"gpt": "assistant", "assistant": "assistant"}.get(str(role).lower(), "user")


def last_user_text(conversation: Sequence[Any], placeholders: Sequence[str] = PLACEHOLDERS) -> str:
    """Text of the conversation's last user turn (system and assistant turns skipped), placeholders removed."""
    for turn in reversed(conversation):
        role = turn.get("role", turn.get("from")) if isinstance(turn, dict) else None
        if str(role).lower() in ("human", "user"):
            text = _turn_text(turn)
            for placeholder in placeholders:
                text = text.replace(placeholder, "")
            return text.strip()
    raise DataError("the conversation has no user turn to take the instruction from")


def media_turn(text: str, placeholder: str = VIDEO_PLACEHOLDER) -> str:
    """A user message with the media placeholder in front, unless it already holds one."""
    if any(p in text for p in PLACEHOLDERS):
        return text
    return f"{placeholder}\n{text}"
