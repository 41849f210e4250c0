"""The README's "Adding a component" example, run as written from a user's own file, and the errors a user's
component gets when it lacks a member that cannot be defaulted."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from tests.models.recipe_helpers import batch_for
from vlmkit.assemble import assemble, build_model
from vlmkit.config import load_config

README = Path(__file__).resolve().parents[2] / "README.md"
TINY_BRANCH = """
  branches:
    - encoder:
        name: clip_vit
        config: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
                 image_size: 32, patch_size: 8}
        freeze: false
      stages:
        - {name: mlp_gelu, depth: 2}
        - STAGE
"""

TRAIN = """datasets:
  train: {name: toy_colour_videos, size: 4}
run:
  name: trainer
  max_steps: 2
  batch_size: 2
  num_workers: 0
  log_every: 1
  loggers: [jsonl]
  scheduler: {name: constant, init_lr: 0.001}
"""


def readme_component() -> tuple[str, str]:
    """(relative path, source) of the README's component example: the python block that starts with its path."""
    section = README.read_text().split("## Adding a component", 1)[1]
    block = re.search(r"```python\n(# (\S+\.py)\n.*?)```", section, re.S)
    assert block, "README's 'Adding a component' section has no python block starting with '# <path>.py'"
    return block.group(2), block.group(1)


@pytest.fixture
def user_project(tmp_path, monkeypatch, isolated):
    """A folder on sys.path for the user's files; the modules imported from it are forgotten afterwards."""
    root = tmp_path / "user"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    # forget what the test's configs imported, so that a later import registers again (the registrations are undone)
    for name in [n for n in sys.modules if n.split(".")[0] in ("my_project", "broken_project")
                 or (n == "tests.toy_video_plugin" and n not in before)]:
        del sys.modules[name]


def experiment(tmp_path, module: str, stage: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(f"imports: [{module}]\nmodel:\n  preset: tiny/pooling\n" + TINY_BRANCH.replace("STAGE", stage))
    return path


def test_readme_component_example_runs_as_written_from_a_users_file(tmp_path, user_project):
    """The README block, copied into the user's own folder, is imported by a config and trained by vlmkit's
    Trainer (two steps on generated videos), as train.py would."""
    relative, source = readme_component()
    assert relative == "my_project/my_pooler.py"
    (user_project / relative).parent.mkdir(parents=True)
    (user_project / relative).write_text(source)
    path = experiment(tmp_path, "my_project.my_pooler", "{name: max_over_time}")
    path.write_text(path.read_text().replace("imports: [", "imports: [tests.toy_video_plugin, ") + TRAIN)
    cfg = load_config(path, [f"run.output_dir={tmp_path / 'run'}"], purpose="train")
    torch.manual_seed(0)
    run = assemble(cfg, section="run")
    stage = run.model.branches[0].stages[1]
    assert type(stage).__module__ == "my_project.my_pooler" and stage.reads_text is False
    assert run.model.visual_tokens == 16  # 4 frames x 16 patches, pooled over time to 1 x 16
    run.runner.train()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if "\"loss\"" in line]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


PLAIN_WITHOUT_OUT_TOKENS = '''
import torch
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime

@POOLERS.register("max_over_time_no_shape")
class MaxOverTimeNoShape(torch.nn.Module):
    def __init__(self, in_dim: Runtime[int]):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x):
        return x.amax(dim=1, keepdim=True)
'''

LYING_STAGE = '''
from vlmkit.models.stage import VisualStage
from vlmkit.registry import POOLERS
from vlmkit.schema import Runtime

@POOLERS.register("time_max_keeping_shape")
class TimeMaxKeepingShape(VisualStage):
    """Pools over time but keeps VisualStage's default out_tokens (the grid unchanged): a wrong count."""

    def __init__(self, in_dim: Runtime[int]):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x):
        return x.amax(dim=1, keepdim=True)
'''


def test_a_stage_without_out_tokens_fails_at_build_naming_it_and_what_it_means(tmp_path, user_project):
    (user_project / "broken_project").mkdir()
    (user_project / "broken_project" / "pooler.py").write_text(PLAIN_WITHOUT_OUT_TOKENS)
    cfg = load_config(experiment(tmp_path, "broken_project.pooler", "{name: max_over_time_no_shape}"), [])
    with pytest.raises(ValueError) as raised:
        build_model(cfg)
    message = str(raised.value)
    assert "model.branches[0].stages[1]" in message and "MaxOverTimeNoShape" in message
    assert "has no 'out_tokens'" in message and "(frames, tokens per frame)" in message
    assert "reads_text" not in message  # defaulted, not asked for


def test_a_stage_whose_out_tokens_disagrees_with_its_output_is_named(tmp_path, user_project):
    (user_project / "broken_project").mkdir()
    (user_project / "broken_project" / "lying.py").write_text(LYING_STAGE)
    cfg = load_config(experiment(tmp_path, "broken_project.lying", "{name: time_max_keeping_shape}"), [])
    model = build_model(cfg)
    batch = batch_for(model, ["What is it?"], ["a ball"])
    with pytest.raises(ValueError, match=r"model.branches\[0\].stages\[1\] \(TimeMaxKeepingShape\) returned "
                                         r"\(T, N\)=\(1, 16\) but its out_tokens announced \(4, 16\)"):
        model(**batch)


PLAIN_LLM = '''
import torch
from vlmkit.registry import LLMS

@LLMS.register("plain_lm")
class PlainLM(torch.nn.Module):
    """Wraps an LM but states none of what the composite reads besides its width and tokenizer."""

    def __init__(self):
        super().__init__()
        self.tokenizer, self.hidden_size = object(), 32

    def embed(self, input_ids):
        raise NotImplementedError
'''


def test_an_llm_wrapper_without_the_language_model_members_is_refused_naming_them(user_project):
    from vlmkit.registry import MODELS

    (user_project / "broken_project").mkdir()
    (user_project / "broken_project" / "plain_lm.py").write_text(PLAIN_LLM)
    __import__("broken_project.plain_lm")
    cfg = {"name": "video_llm", "llm": {"name": "plain_lm"}, "template": {"name": "vicuna_v1"},
           "sampling": {"sampler": {"name": "linspace", "num_frames": 4}},
           "branches": [{"encoder": {"name": "clip_vit", "config": {"hidden_size": 32, "image_size": 32}}}]}
    with pytest.raises(ValueError) as raised:
        MODELS.build(cfg, path="model")
    message = str(raised.value)
    assert message.startswith("model.llm: broken_project.plain_lm.PlainLM is used as the LLM")
    for member in ("is_encoder_decoder", "streams_visual", "reads_visual_mask", "add_special_tokens", "generate"):
        assert f"'{member}'" in message
    assert "'embed'" not in message and "HFLanguageModel" in message
