"""One call: read a checkpoint file safely and load it into a model through a named layout."""
from __future__ import annotations

import os
from typing import Optional

from torch import nn

from vlmkit.errors import ConfigError
from vlmkit.models.checkpoints.io import read_sharded
from vlmkit.models.checkpoints.keymap import LoadReport, load_mapped
from vlmkit.models.checkpoints.layouts import LAYOUTS


def load_checkpoint(model: nn.Module, path: str | os.PathLike, layout: str, *, strict: bool = True,
                    **targets: Optional[str]) -> LoadReport:
    """Load ``path`` into ``model``; ``targets`` name the model's sub-modules for the layout, e.g.
    ``load_checkpoint(model, "pretrain-vicuna7b.pth", "video_llama", video_qformer="branches.0.stages.1",
    projector="branches.0.stages.2")``."""
    if layout not in LAYOUTS:
        raise ConfigError("layout", f"unknown checkpoint layout '{layout}'; accepted: {', '.join(sorted(LAYOUTS))}")
    keymap = LAYOUTS[layout](**targets)
    # a released transformers folder (Video-XL) comes in shards listed by an index; a single file reads as is
    return load_mapped(model, keymap.prepare(read_sharded(str(path))), keymap, strict=strict, source=str(path))
