"""Video captioning (MSVD / MSRVTT captions, synthetic captions): generate a caption, score with pycocoevalcap."""
from __future__ import annotations

from typing import Optional

from vlmkit.registry import TASKS
from vlmkit.schema import ComponentList, Runtime
from vlmkit.tasks.generation import GenerationTask


@TASKS.register("captioning")
class CaptioningTask(GenerationTask):
    """One generated caption per video against the sample's "references" (BLEU, METEOR, ROUGE-L, CIDEr, SPICE)."""

    default_primary = "CIDEr"

    def __init__(self, metrics: ComponentList("metrics") = ("caption_coco",), max_new_tokens: Optional[int] = None,
                 primary: Optional[str] = None, generation: Runtime[Optional[dict]] = None,
                 output_dir: Runtime[Optional[str]] = None):
        super().__init__(metrics, max_new_tokens, primary, generation, output_dir)
