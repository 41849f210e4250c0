"""Video captions: ``[{"id", "video", "captions": [...]}]`` (the synthetic generator's test_captions.json,
MSR-VTT/YouCook2-like caption lists)."""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations, require, resolve_media
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime


@DATASETS.register("video_captions", aliases=["captions_json"])
class VideoCaptionDataset(VideoTextDataset):
    """Evaluation: one sample per video with every caption in ``meta.references``.  Training: one sample per
    caption (``prompt`` -> caption)."""

    name = "video_captions"

    def __init__(self, ann_path: str, media_root: str = "", prompt: str = "Describe this video in detail.",
                 *, contract: Runtime[DataContract], train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root, self.prompt = ann_path, media_root, prompt
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, list):
            raise DataError(f"{self.ann_path}: expected a list of videos, got {type(data).__name__}")
        records = []
        for i, entry in enumerate(data):
            where = f"{self.ann_path} entry {i}"
            captions = require(entry, "captions", where)
            captions = [captions] if isinstance(captions, str) else [str(c) for c in captions]
            if not captions:
                raise DataError(f"{where}: 'captions' is empty")
            media = resolve_media(self.media_root, str(require(entry, "video", where)))
            sample_id = str(entry.get("id", i))
            targets = list(enumerate(captions)) if self.train else [(0, captions[0])]
            for k, caption in targets:
                conversation = [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{self.prompt}"},
                                {"from": "gpt", "value": caption}]
                meta = {"question": self.prompt, "references": captions, "answer": caption,
                        "task_type": entry.get("task_type", "caption")}
                records.append(Record(f"{sample_id}/{k}" if self.train else sample_id, media, conversation, meta))
        return records
