"""Scoring components: multiple choice, judged open-ended QA, captioning (pycocoevalcap), GEBC, needle grids.

Every metric registered in ``METRICS`` is a class whose constructor is its config schema, with
``compute(predictions) -> dict[str, float]`` and, where a per-sample judgement exists, ``score_sample(pred)``.
Prediction records are dicts with at least ``id`` and ``prediction`` plus the fields a metric names.
Judges (``openai_judge``, ``transformers_judge``) are registered in ``METRICS`` too, for now.
"""
