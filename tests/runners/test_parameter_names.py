"""Parameter names as strategies report them: only wrapper parts go, never part of a real name."""
import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

from vlmkit.runners.strategies.base import Strategy, clean_name


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.submodule = nn.Linear(2, 2)          # "submodule." ends in the DDP prefix "module."
        self.mod_orig_mod = nn.Linear(2, 2)       # ends in torch.compile's "_orig_mod"
        self.layer = checkpoint_wrapper(nn.Linear(2, 2))


def test_names_keep_parts_that_merely_end_like_a_wrapper_prefix():
    assert clean_name("llm.submodule.weight") == "llm.submodule.weight"
    assert clean_name("encoder.mod_orig_mod.bias") == "encoder.mod_orig_mod.bias"
    assert clean_name("branches.0.module.weight") == "branches.0.module.weight"  # a module really named 'module'


def test_wrapper_parts_go_wherever_the_wrappers_put_them():
    assert clean_name("module._orig_mod.llm.weight") == "llm.weight"                       # DDP(compile(model))
    assert clean_name("llm._fsdp_wrapped_module.layers.0.weight") == "llm.layers.0.weight"  # FSDP1 auto-wrap
    assert clean_name("llm.layers.0._checkpoint_wrapped_module.mlp.weight") == "llm.layers.0.mlp.weight"


def test_trainable_parameter_names_match_the_unwrapped_model():
    model = Holder()
    names = [name for name, _ in Strategy().trainable_parameters(model)]
    assert names == ["submodule.weight", "submodule.bias", "mod_orig_mod.weight", "mod_orig_mod.bias",
                     "layer.weight", "layer.bias"]
