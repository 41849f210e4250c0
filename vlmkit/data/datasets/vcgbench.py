"""VCGBench (Video-ChatGPT's generative benchmark; reference: benchmark_formats.md 3.1) as ONE dataset, so the
``vcgbench`` metric sees the items of all five dimensions together and can report their average.

Files (each optional, at least one), read as JSON or JSON lines:

- ``generic_path`` / ``temporal_path``: Video-ChatGPT's ``{Q, A, video_name}`` or lmms-eval's rows
  ``{question, answer, video_name}``; ``task_type`` becomes "generic" / "temporal".
- ``consistency_path``: Video-ChatGPT's ``{Q1, Q2, A, video_name}``, or lmms-eval's ``Consistency`` rows
  ``{question_1, question_2, answer, video_name}`` where each row holds one question and the other field is the
  string "None"; those halves are re-paired by ``video_name`` (the k-th question_1 row of a video with its k-th
  question_2 row, as lmms-eval's aggregation pairs them).  ``task_type`` "consistency", meta ``question_2``.

A consistency item is one sample with two prompts: it carries ``input_ids_2`` (the second question under the
same template, system prompt and pre-fill), the collater pads those into ``input_ids_2`` / ``attention_mask_2``
with ``has_question_2`` per row, and the ``open_qa`` task generates both answers into one record
(``prediction``, ``prediction_2``), so an interrupted evaluation resumes by id as for any other sample.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Optional

import torch

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.collate import pad_1d
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, find_media, read_annotations, require
from vlmkit.data.datasets.video_qa import VIDEO_SUFFIXES
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

NONE_MARK = "None"  # lmms-eval's filler for the question a Consistency row does not hold


def _pick(entry: Any, keys: Sequence[str], where: str) -> str:
    """The first of ``keys`` present in ``entry`` (original and lmms-eval spellings)."""
    if isinstance(entry, dict):
        for key in keys:
            if key in entry:
                return str(entry[key])
    have = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
    raise DataError(f"{where}: needs one of the fields {list(keys)} (has {have})")


def _blank(value: Any) -> bool:
    return value is None or str(value).strip() in ("", NONE_MARK)


def consistency_items(rows: list, where: str) -> list[dict[str, str]]:
    """``[{video_name, question, question_2, answer}]`` from either consistency layout, in file order."""
    items: list[dict[str, str]] = []
    open_halves: dict[tuple[str, str], list[tuple[int, dict]]] = {}  # (video, "1"|"2") -> unpaired rows
    for i, row in enumerate(rows):
        at = f"{where} entry {i}"
        video = str(require(row, "video_name", at))
        if "Q1" in row or "Q2" in row:  # Video-ChatGPT: one entry per item
            items.append({"video_name": video, "question": str(require(row, "Q1", at)),
                          "question_2": str(require(row, "Q2", at)), "answer": _pick(row, ("A", "answer"), at)})
            continue
        if "question_1" not in row and "question_2" not in row:
            raise DataError(f"{at}: a consistency entry needs Q1/Q2 (Video-ChatGPT) or question_1/question_2 "
                            f"(lmms-eval), has {sorted(row)}")
        q1, q2 = row.get("question_1"), row.get("question_2")
        answer = _pick(row, ("answer", "A"), at)
        if not _blank(q1) and not _blank(q2):  # both questions in one row
            items.append({"video_name": video, "question": str(q1), "question_2": str(q2), "answer": answer})
            continue
        if _blank(q1) and _blank(q2):
            raise DataError(f"{at}: question_1 and question_2 are both empty or \"None\"")
        half = "1" if not _blank(q1) else "2"
        other = open_halves.get((video, "2" if half == "1" else "1"))
        if not other:
            slot = len(items)
            items.append({})  # keeps the pair at the position of its first half
            open_halves.setdefault((video, half), []).append((slot, {**row, "_at": at, "_answer": answer}))
            continue
        slot, first = other.pop(0)
        if first["_answer"] != answer:
            raise DataError(f"{at}: pairs with {first['_at']} (video_name {video!r}) but their answers differ "
                            f"({first['_answer']!r} vs {answer!r}); the two halves of an item share one answer")
        one, two = (first, row) if half == "2" else (row, first)
        items[slot] = {"video_name": video, "question": str(one["question_1"]),
                       "question_2": str(two["question_2"]), "answer": answer}
    unpaired = [f"{half[1]['_at']} ({video!r}, question_{part})"
                for (video, part), halves in open_halves.items() for half in halves]
    if unpaired:
        raise DataError(f"{where}: consistency rows without their other question (same video_name): "
                        f"{', '.join(unpaired[:5])}{' ...' if len(unpaired) > 5 else ''}")
    return items


@DATASETS.register("vcgbench", aliases=["videochatgpt_bench"])
class VCGBenchDataset(VideoTextDataset):
    """Generic, temporal and consistency questions of VCGBench; meta ``question``, ``answer``, ``video_name``,
    ``task_type`` (and ``question_2`` for consistency items), as the ``vcgbench`` metric reads them.

    Videos are ``media_root/<video_template>`` with the first existing suffix of ``video_suffixes``.  The
    prompt is ``[system_prompt] <video>\\n{pre_prompt}{question}{post_prompt}``; ``answer_prefix`` pre-fills
    the answer (both questions of a consistency item get the same prompt pieces).
    """

    name = "vcgbench"

    def __init__(self, media_root: str, generic_path: Optional[str] = None, temporal_path: Optional[str] = None,
                 consistency_path: Optional[str] = None, video_template: str = "{video}",
                 video_suffixes: list[str] = VIDEO_SUFFIXES, system_prompt: Optional[str] = None,
                 pre_prompt: str = "", post_prompt: str = "", answer_prefix: str = "", *,
                 contract: Runtime[DataContract], train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.paths = {"generic": generic_path, "temporal": temporal_path, "consistency": consistency_path}
        if not any(self.paths.values()):
            raise ConfigError("generic_path", "vcgbench needs at least one of generic_path, temporal_path, "
                                              "consistency_path")
        if "{video}" not in video_template:
            raise ConfigError("video_template", f"must contain {{video}}, got {video_template!r}")
        self.media_root, self.video_template, self.video_suffixes = media_root, video_template, list(video_suffixes)
        self.system_prompt, self.pre_prompt, self.post_prompt = system_prompt, pre_prompt, post_prompt
        self.answer_prefix = answer_prefix
        self.second: dict[str, Record] = {}  # consistency item id -> the record of its second question
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    # ------------------------------------------------------------------ records
    def _conversation(self, question: str, answer: str) -> list[dict]:
        turns = [{"from": "system", "value": self.system_prompt}] if self.system_prompt else []
        return turns + [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{self.pre_prompt}{question}{self.post_prompt}"},
                        {"from": "gpt", "value": answer}]

    def _record(self, sample_id: str, kind: str, item: dict[str, str]) -> Record:
        media = find_media(self.media_root, self.video_template.format(video=item["video_name"]), self.video_suffixes)
        meta = {"question": item["question"], "answer": item["answer"], "video_name": item["video_name"],
                "task_type": kind}
        if "question_2" in item:
            meta["question_2"] = item["question_2"]
            self.second[sample_id] = Record(sample_id, media, self._conversation(item["question_2"], item["answer"]),
                                            answer_prefix=self.answer_prefix)
        return Record(sample_id, media, self._conversation(item["question"], item["answer"]), meta,
                      answer_prefix=self.answer_prefix)

    def records(self) -> list[Record]:
        records = []
        for kind, path in self.paths.items():
            if not path:
                continue
            rows = read_annotations(path)
            if not isinstance(rows, list) or not rows:
                raise DataError(f"{path}: expected a non-empty list of {kind} questions")
            if kind == "consistency":
                items = consistency_items(rows, path)
            else:
                items = [{"video_name": str(require(row, "video_name", f"{path} entry {i}")),
                          "question": _pick(row, ("Q", "question"), f"{path} entry {i}"),
                          "answer": _pick(row, ("A", "answer"), f"{path} entry {i}")} for i, row in enumerate(rows)]
            records += [self._record(f"{kind}/{i:05d}", kind, item) for i, item in enumerate(items)]
        return records

    # ------------------------------------------------------------------ samples
    def build_sample(self, record: Record, seed: int) -> dict:
        sample = super().build_sample(record, seed)
        second = self.second.get(record.id)
        if second is not None and not self.train:
            sample["input_ids_2"] = torch.tensor(self.builder.encode(second).input_ids, dtype=torch.long)
            if self.builder.instruction:  # a Q-Former reading the instruction reads the second question then
                sample["instruction_ids_2"] = self.builder.instruction_ids(second)
        return sample

    def collater(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        batch = super().collater(samples)
        kept = [s for s in samples if s is not None]
        if batch is None or not any("input_ids_2" in s for s in kept):
            return batch
        pad = self.contract.pad_token_id
        # rows without a second question get one masked pad token; has_question_2 tells the task to skip them
        rows = [s["input_ids_2"] if "input_ids_2" in s else torch.tensor([pad]) for s in kept]
        masks = [torch.ones_like(r) if "input_ids_2" in s else torch.zeros_like(r) for s, r in zip(kept, rows)]
        batch["input_ids_2"] = pad_1d(rows, pad, "left")
        batch["attention_mask_2"] = pad_1d(masks, 0, "left")
        batch["has_question_2"] = torch.tensor(["input_ids_2" in s for s in kept])
        if self.builder.instruction:
            rows = [s.get("instruction_ids_2", s["instruction_ids"]) for s in kept]
            batch["instruction_ids_2"] = pad_1d(rows, self.builder.instruction["tokenizer"].pad_token_id or 0, "right")
            batch["instruction_mask_2"] = pad_1d([torch.ones_like(r) for r in rows], 0, "right")
        return batch
