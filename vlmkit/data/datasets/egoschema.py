"""EgoSchema, the subset with public answers: 500 five-choice questions over 3-minute Ego4D clips.

Release files (github.com/egoschema/EgoSchema; not in benchmark_formats.md, the upstream layout is followed):
``questions.json`` = ``[{q_uid, google_drive_id, question, "option 0", ..., "option 4"}]`` (all 5,031),
``subset_answers.json`` = ``{q_uid: index 0-4}`` (the 500 of the subset), videos ``<media_root>/<q_uid>.mp4``.
Only the questions with an answer are read; the full set is scored by the organisers' server.

Prompt as lmms-eval's ``egoschema_subset``: the question, then ``A. option`` lines, then "\\nAnswer with the
option's letter from the given choices directly."  Official score: accuracy, the predicted option index equal to
the answer (``mc_accuracy`` overall micro).  lmms-eval reads the letter with MMMU's parser, which picks a random
letter for an answer naming none; vlmkit counts such answers wrong (``num_no_answer``): use rule ``lmms_mcq``.
"""
from __future__ import annotations

from typing import Literal, Optional

from vlmkit.contracts import DataContract
from vlmkit.data.datasets.base import Policy, Record, VideoTextDataset, find_media, read_annotations, require
from vlmkit.data.datasets.lettered_mc import POST_PROMPT, answer_index, dot_prompt, mc_sample
from vlmkit.errors import DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Runtime

NUM_OPTIONS = 5


@DATASETS.register("egoschema")
class EgoSchemaDataset(VideoTextDataset):
    """``ann_path``: questions.json; ``answers_path``: subset_answers.json; ``media_root``: the videos."""

    name = "egoschema"

    def __init__(self, ann_path: str, answers_path: str, media_root: str = "", pre_prompt: str = "",
                 post_prompt: str = POST_PROMPT, *, contract: Runtime[DataContract], train: bool = False,
                 on_bad_sample: Policy = "raise", backend: Literal["auto", "decord", "pyav"] = "auto", seed: int = 0,
                 max_samples: Optional[int] = None, bad_sample_dir: Optional[str] = None):
        self.ann_path, self.answers_path, self.media_root = ann_path, answers_path, media_root
        self.pre_prompt, self.post_prompt = pre_prompt, post_prompt
        super().__init__(contract, train, on_bad_sample, backend, seed, max_samples, bad_sample_dir)

    def records(self) -> list[Record]:
        questions, answers = read_annotations(self.ann_path), read_annotations(self.answers_path)
        if not isinstance(questions, list):
            raise DataError(f"{self.ann_path}: expected a list of questions, got {type(questions).__name__}")
        if not isinstance(answers, dict):
            raise DataError(f"{self.answers_path}: expected an object {{q_uid: answer index}}, got "
                            f"{type(answers).__name__}")
        records, seen = [], set()
        for i, entry in enumerate(questions):
            where = f"{self.ann_path} entry {i}"
            uid = str(require(entry, "q_uid", where))
            if uid not in answers:
                continue  # outside the subset: no public answer
            seen.add(uid)
            question = str(require(entry, "question", where)).strip()
            options = [str(require(entry, f"option {k}", where)).strip() for k in range(NUM_OPTIONS)]
            index = answer_index(answers[uid], NUM_OPTIONS, f"{self.answers_path} q_uid {uid}")
            records.append(mc_sample(uid, find_media(self.media_root, uid, (".mp4", ".MP4")), question, options,
                                     index, dot_prompt(question, options, self.pre_prompt, self.post_prompt),
                                     task_type="egoschema"))
        missing = sorted(set(map(str, answers)) - seen)
        if missing:
            raise DataError(f"{self.answers_path}: {len(missing)} answered q_uid(s) are not in {self.ann_path}: "
                            f"{missing[:5]}")
        return records
