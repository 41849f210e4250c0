"""Multiple-choice video QA in MVBench form: ``[{"id", "video", "question", "candidates", "answer",
"task_type", optional "start", "end"}]`` (the synthetic generator's test_mc.json, MLVU-like files)."""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import VIDEO_PLACEHOLDER, DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, read_annotations, require, resolve_media
from vlmkit.errors import DataError
from vlmkit.mc_format import answer_letter, format_question, gt_option_string
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

# The VideoChat2 MVBench notebook's prompt pieces (reference: benchmark_formats.md 1.3, seed_systems.md 2.4).
MVBENCH_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail "
                  "and movement of objects, and the action and pose of persons. Based on your observations, select "
                  "the best option that accurately addresses the question.\n")
MVBENCH_SUFFIX = "\nOnly give the best option."
MVBENCH_ANSWER_PREFIX = "Best option:("


def mc_record(entry: dict, where: str, media_root: str, system_prompt: Optional[str], question_suffix: str,
              answer_prefix: str, task_type: str = "", sample_id: Optional[str] = None,
              question_last: bool = False) -> Record:
    """One multiple-choice sample: prompt ``Question: q\\nOptions:\\n(A) ...`` (the options first with
    ``question_last``) + suffix, answer ``(X) text``."""
    question = str(require(entry, "question", where))
    candidates = [str(c) for c in require(entry, "candidates", where)]
    if len(candidates) < 2:
        raise DataError(f"{where}: a multiple-choice question needs at least 2 candidates, got {candidates}")
    answer = require(entry, "answer", where)
    letter = answer_letter(answer, candidates)
    truth = gt_option_string(letter, candidates)
    conversation = [{"from": "system", "value": system_prompt}] if system_prompt else []
    prompt = format_question(question, candidates, question_last=question_last) + question_suffix
    conversation += [{"from": "human", "value": f"{VIDEO_PLACEHOLDER}\n{prompt}"},
                     {"from": "gpt", "value": truth}]
    video = require(entry, "video", where)
    meta = {"question": question, "options": candidates, "answer": truth, "answer_letter": letter,
            "answer_text": candidates[ord(letter) - ord("A")],
            "task_type": entry.get("task_type", entry.get("question_type", task_type)) or task_type}
    return Record(sample_id or str(entry.get("id", where)), resolve_media(media_root, str(video)), conversation,
                  meta, start=entry.get("start"), end=entry.get("end"), answer_prefix=answer_prefix)


@DATASETS.register("multiple_choice", aliases=["mc_json", "mcqa"])
class MultipleChoiceDataset(VideoTextDataset):
    """A list of MVBench-form entries, prompted the MVBench way (system prompt, options ``(A) ...``,
    "Only give the best option.", answer pre-filled with ``Best option:(``).  ``answer`` may be the option
    text, a letter, ``(B) text`` or an index.  Training targets are ``(X) option text``.  ``question_last``
    lists the options before the question, for a model trained on that layout (the CPU demo's)."""

    name = "multiple_choice"

    def __init__(self, ann_path: str, media_root: str = "", system_prompt: Optional[str] = MVBENCH_SYSTEM,
                 question_suffix: str = MVBENCH_SUFFIX, answer_prefix: str = MVBENCH_ANSWER_PREFIX,
                 question_last: bool = False, *,
                 contract: Runtime[DataContract], train: bool = False, on_bad_sample: Policy = "raise",
                 backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0, max_samples: Optional[int] = None,
                 bad_sample_dir: Optional[str] = None):
        self.ann_path, self.media_root = ann_path, media_root
        self.system_prompt, self.question_suffix, self.answer_prefix = system_prompt, question_suffix, answer_prefix
        self.question_last = question_last
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        data = read_annotations(self.ann_path)
        if not isinstance(data, list):
            raise DataError(f"{self.ann_path}: expected a list of questions, got {type(data).__name__}")
        return [mc_record(entry, f"{self.ann_path} entry {i}", self.media_root, self.system_prompt,
                          self.question_suffix, self.answer_prefix, sample_id=str(entry.get("id", i)),
                          question_last=self.question_last)
                for i, entry in enumerate(data)]
