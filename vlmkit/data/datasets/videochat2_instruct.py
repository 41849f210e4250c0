"""VideoChat2-IT style: ``{"video" | "image", "QA": [{"i": instruction, "q": question, "a": answer}, ...],
optional "start", "end"}`` (PLLaVA's and VideoChat2's instruction data)."""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations, require, resolve_media
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime


@DATASETS.register("videochat2_instruct", aliases=["videochat2_it", "videochat2"])
class VideoChat2InstructDataset(VideoTextDataset):
    """Each QA item is one user/assistant turn; the media placeholder goes before the first question.

    The per-sample instruction ``i`` (upstream: written after the system prompt, before the first USER turn)
    is put in front of the first question (``instruction_as: user``) or replaces the template's system prompt
    (``system``).  Bounds ``start``/``end`` (seconds) restrict frame sampling.
    """

    name = "videochat2_instruct"

    def __init__(self, ann_path: str, media_root: str = "", instruction_as: Literal["user", "system"] = "user",
                 *, contract: Runtime[DataContract], train: bool = True, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root, self.instruction_as = ann_path, media_root, instruction_as
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, list):
            raise DataError(f"{self.ann_path}: expected a list of samples, got {type(data).__name__}")
        return [self._record(i, entry) for i, entry in enumerate(data)]

    def _record(self, index: int, entry: dict) -> Record:
        where = f"{self.ann_path} entry {index}"
        qa = require(entry, "QA", where)
        if not isinstance(qa, list) or not qa:
            raise DataError(f"{where}: 'QA' must be a non-empty list of {{i, q, a}} items")
        placeholder = IMAGE_PLACEHOLDER if "image" in entry and "video" not in entry else VIDEO_PLACEHOLDER
        conversation: list[dict] = []
        instruction = str(qa[0].get("i", "") or "").strip()
        if instruction and self.instruction_as == "system":
            conversation.append({"from": "system", "value": instruction})
        for k, item in enumerate(qa):
            question = str(item.get("q", "") or "").strip()
            if k == 0:
                lead = instruction if instruction and self.instruction_as == "user" else ""
                question = "\n".join(part for part in (placeholder, lead, question) if part)
            conversation += [{"from": "human", "value": question},
                             {"from": "gpt", "value": str(require(item, "a", f"{where} QA[{k}]"))}]
        media = entry.get("video", entry.get("image"))
        meta = {"question": str(qa[-1].get("q", "")), "answer": str(qa[-1].get("a", "")),
                "task_type": entry.get("task_type", "")}
        return Record(str(entry.get("id", index)), resolve_media(self.media_root, str(media)) if media else None,
                      conversation, meta, start=entry.get("start"), end=entry.get("end"))
