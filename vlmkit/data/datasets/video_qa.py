"""Open-ended video QA in the layouts seen in the wild (reference: benchmark_formats.md 2.1).

- ``activitynet``: ``test_q.json`` ``[{video_name, question_id, question}]`` + ``test_a.json``
  ``[{answer, type, question_id}]`` (also Video-LLaVA's repackaged MSVD/MSRVTT/TGIF); files ``v_<name>.*``.
- ``msvd`` / ``msrvtt``: ``[{question, answer, video_id, id}]`` (Xu et al. 2017).
- ``tgif``: ``[{question, answer, gif_name}]``.
- ``simple``: ``[{id, video, question, answer, task_type}]`` (the synthetic generator's test_open_qa.json).
- ``auto``: picks one of the above from the first entry's keys.
"""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import (Policy, Record, VideoTextDataset, find_media, read_annotations, require,
                                       resolve_media)
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

QAFormat = Literal["auto", "activitynet", "msvd", "msrvtt", "tgif", "simple"]
VIDEO_SUFFIXES = [".mp4", ".webm", ".mkv", ".avi", ".gif", ".mov"]
# format -> (video key, question-id key, default file-name template)
_LAYOUTS = {"activitynet": ("video_name", "question_id", "v_{video}"), "msvd": ("video_id", "id", "{video}"),
            "msrvtt": ("video_id", "id", "video{video}"), "tgif": ("gif_name", None, "{video}"),
            "simple": ("video", "id", "{video}")}


def detect_format(entry: dict, where: str) -> str:
    keys = set(entry) if isinstance(entry, dict) else set()
    if "video_name" in keys:
        return "activitynet"
    if "gif_name" in keys:
        return "tgif"
    if "video_id" in keys:
        return "msrvtt" if "category_id" in keys else "msvd"
    if "video" in keys:
        return "simple"
    raise DataError(f"{where}: cannot tell the QA format from the keys {sorted(keys)}; set format to one of "
                    f"activitynet, msvd, msrvtt, tgif, simple")


@DATASETS.register("video_qa", aliases=["open_qa", "msvd_qa", "msrvtt_qa", "activitynet_qa", "tgif_qa"])
class VideoQADataset(VideoTextDataset):
    """Question -> short answer about a video; meta carries ``question``, ``answer``, ``task_type``.

    ``answers_path``: the separate answer file of the activitynet layout (aligned by ``question_id``, else by
    position).  ``video_template``: file stem built from the video key (``v_{video}``, ``video{video}``...);
    the first existing ``media_root/<stem><suffix>`` over ``video_suffixes`` is used.  ``pre_prompt`` /
    ``post_prompt`` wrap the question (lmms-eval: post " Answer the question using a single word or phrase.").
    ``answer_prefix`` pre-fills the assistant turn at evaluation: its tokens follow the generation prompt, so
    the model continues from them, and they are never labels (PLLaVA's eval_videoqabench: "\nAnswer: In the
    video,").  The prediction recorded is the generated continuation alone, without the prefix: PLLaVA's
    ``infer_videoqabench`` cuts its output after the answer prompt and, as its runs call it (no
    ``return_prompt``), hands that continuation to the judge.  The prefix is in the record as ``answer_prefix``.
    """

    name = "video_qa"

    def __init__(self, ann_path: str, media_root: str = "", answers_path: Optional[str] = None,
                 format: QAFormat = "auto", video_template: Optional[str] = None,
                 video_suffixes: list[str] = VIDEO_SUFFIXES, pre_prompt: str = "", post_prompt: str = "",
                 answer_prefix: str = "", *,
                 contract: Runtime[DataContract], train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root, self.answers_path, self.format = ann_path, media_root, answers_path, format
        self.video_template, self.video_suffixes = video_template, list(video_suffixes)
        self.pre_prompt, self.post_prompt, self.answer_prefix = pre_prompt, post_prompt, answer_prefix
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        questions = read_annotations(self.ann_path)
        if isinstance(questions, dict):  # {id: entry} layouts
            questions = [{"id": k, **v} for k, v in questions.items()]
        if not isinstance(questions, list) or not questions:
            raise DataError(f"{self.ann_path}: expected a non-empty list of questions")
        fmt = detect_format(questions[0], f"{self.ann_path} entry 0") if self.format == "auto" else self.format
        answers = self._answers(questions) if self.answers_path else None
        video_key, id_key, template = _LAYOUTS[fmt]
        template = self.video_template or template
        records = []
        for i, entry in enumerate(questions):
            where = f"{self.ann_path} entry {i}"
            video = str(require(entry, video_key, where))
            answer_entry = answers[i] if answers is not None else entry
            answer = str(require(answer_entry, "answer", f"{self.answers_path or self.ann_path} entry {i}"))
            question = str(require(entry, "question", where))
            qid = str(entry.get(id_key, i)) if id_key else f"{video}_{i}"
            media = (resolve_media(self.media_root, video) if fmt == "simple"
                     else find_media(self.media_root, template.format(video=video), self.video_suffixes))
            prompt = f"{VIDEO_PLACEHOLDER}\n{self.pre_prompt}{question}{self.post_prompt}"
            meta = {"question": question, "answer": answer, "video_name": video,
                    "task_type": str(answer_entry.get("type", entry.get("task_type", entry.get("category_id", ""))))}
            records.append(Record(qid, media, [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
                                  meta, answer_prefix=self.answer_prefix))
        return records

    def _answers(self, questions: list[dict]) -> list[dict]:
        answers = read_annotations(self.answers_path)
        if not isinstance(answers, list) or len(answers) != len(questions):
            raise DataError(f"{self.answers_path}: expected a list of {len(questions)} answers aligned with "
                            f"{self.ann_path}, got {len(answers) if isinstance(answers, list) else type(answers)}")
        by_id = {a.get("question_id"): a for a in answers if isinstance(a, dict)}
        if all(q.get("question_id") in by_id for q in questions):
            return [by_id[q.get("question_id")] for q in questions]
        return answers
