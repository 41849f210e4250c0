"""Open-ended video QA (MSVD / MSRVTT / ActivityNet / TGIF, VCGBench): generate an answer, score it."""
from __future__ import annotations

from typing import Optional

from vlmkit.registry import TASKS
from vlmkit.schema import ComponentList, Runtime
from vlmkit.tasks.generation import GenerationTask


@TASKS.register("open_qa")
class OpenQATask(GenerationTask):
    """Free-form answers scored by judge-free metrics (exact_match, contains) or a judge (judged_qa, vcgbench).

    Records carry the sample's meta ("question", "answer" ...) plus "prediction", as the metrics expect.
    """

    def __init__(self, metrics: ComponentList("metrics") = ("exact_match", "contains"),
                 max_new_tokens: Optional[int] = None, primary: Optional[str] = None,
                 generation: Runtime[Optional[dict]] = None, output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, max_new_tokens, primary, generation, output_dir)
