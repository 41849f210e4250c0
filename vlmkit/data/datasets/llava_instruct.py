"""LLaVA-style instruction JSON: ``{"id", "video" | "image", "conversations": [{"from", "value"}, ...]}``."""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import PLACEHOLDERS, VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations, require, resolve_media
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime


@DATASETS.register("llava_instruct", aliases=["llava", "instruction_json"])
class LlavaInstructDataset(VideoTextDataset):
    """Several-turn conversations about one video or image (VideoGPT+, Video-XL, VideoTGB ivinstruct).

    ``ann_path``: a JSON list or JSON lines; the ``video`` / ``image`` field is relative to ``media_root``.
    Placeholders (``<video>`` or ``<image>``, either for either kind) must appear once in the user turns; a
    sample without one gets ``<video>\\n`` in front of its first question when ``add_missing_placeholder``.
    At evaluation the last answer becomes the reference (``meta.answer``) and the turns before it the prompt.
    """

    name = "llava_instruct"

    def __init__(self, ann_path: str, media_root: str = "", add_missing_placeholder: bool = False, *,
                 contract: Runtime[DataContract], train: bool = True, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root, self.add_missing_placeholder = ann_path, media_root, add_missing_placeholder
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, list):
            raise DataError(f"{self.ann_path}: expected a list of samples, got {type(data).__name__}")
        return [self._record(i, entry) for i, entry in enumerate(data)]

    def _record(self, index: int, entry: dict) -> Record:
        where = f"{self.ann_path} entry {index}"
        turns = require(entry, "conversations", where)
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{where}: 'conversations' must be a non-empty list of turns")
        media = entry.get("video", entry.get("image"))
        problem = None
        if isinstance(media, list):  # several images per sample: one media item per sample is supported
            if len(media) != 1:
                problem = f"{len(media)} media files in one sample; one video or image per sample is supported"
            media = media[0] if media else None
        conversation = [dict(t) for t in turns]
        if self.add_missing_placeholder and not any(p in str(t.get("value", "")) for t in conversation
                                                    for p in PLACEHOLDERS):
            conversation[0]["value"] = f"{VIDEO_PLACEHOLDER}\n{conversation[0].get('value', '')}"
        last = conversation[-1]
        question = next((str(t.get("value", "")) for t in reversed(conversation[:-1]) if t.get("from") != "gpt"), "")
        meta = {"question": _strip_placeholders(question), "answer": str(last.get("value", "")),
                "task_type": entry.get("task_type", entry.get("type", ""))}
        sample_id = str(entry.get("id", f"{index}"))
        media_path = resolve_media(self.media_root, str(media)) if media else None
        return Record(sample_id, media_path, conversation, meta, start=entry.get("start"), end=entry.get("end"),
                      problem=problem)


def _strip_placeholders(text: str) -> str:
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, "")
    return text.strip()
