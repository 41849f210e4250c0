"""A model whose visual tokens leave no room for text within max_length is refused when built; for pool-level
models (VideoGPT+) the error names the pool levels that fit."""
import pytest

from tests.models.recipe_helpers import build_preset

PHI3 = ("videogpt_plus/phi3_mini", "model.llm.preset=llms/tiny_phi3")  # full-size vision side, tiny LLM
LEVEL_1 = ("model.branches.0.stages.1.pool_level=1", "model.branches.1.stages.1.pool_level=1")


def test_pool_level_1_does_not_fit_4096_tokens_and_the_error_names_the_levels_that_do(tmp_path):
    with pytest.raises(ValueError, match=r"max_length: 4096 tokens leave no room for text.* 13312 visual tokens "
                                         r".*pool levels that fit are \[2, 4, 8, 16\]"):
        build_preset(tmp_path, *PHI3, *LEVEL_1, meta=True)
    model = build_preset(tmp_path, *PHI3, *LEVEL_1, "model.max_length=16384", meta=True)
    assert model.visual_tokens == 13312
    assert [s.pool_level for b in model.branches for s in b.stages[1:]] == [1, 1]  # the search restores them


def test_models_without_pool_levels_get_the_plain_error(tmp_path):
    model = build_preset(tmp_path, "video_llama/tiny")
    with pytest.raises(ValueError, match=rf"{model.visual_tokens} visual tokens.*fewer visual tokens$"):
        build_preset(tmp_path, "video_llama/tiny", f"model.max_length={model.visual_tokens}")
