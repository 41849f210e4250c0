"""Shared constants have one home: IGNORE_INDEX and the media placeholders in vlmkit/contracts.py, the dtype names
(both spellings) in vlmkit/dtypes.py. The package's source is parsed; docstrings and comments may mention them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from vlmkit import contracts, dtypes

PACKAGE = Path(__file__).resolve().parents[2] / "vlmkit"
# a placeholder, not a file-name pattern such as '<video>.pkl'
PLACEHOLDER = re.compile("|".join(re.escape(p) + r"(?![./])" for p in contracts.PLACEHOLDERS))
DTYPE_NAMES = {*dtypes.TORCH_NAMES, *dtypes.TORCH_NAMES.values()}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), ast.parse(path.read_text(), str(path))


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_ignore_index_is_defined_once():
    where = [name for name, tree in modules() for node in ast.walk(tree)
             if isinstance(node, (ast.Assign, ast.AnnAssign))
             and any(isinstance(t, ast.Name) and t.id == "IGNORE_INDEX"
                     for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))]
    assert where == ["vlmkit/contracts.py"]
    assert contracts.IGNORE_INDEX == torch.nn.CrossEntropyLoss().ignore_index


def test_media_placeholders_are_written_only_through_the_contracts_constants():
    literal = []
    for name, tree in modules():
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                    and PLACEHOLDER.search(node.value) and name != "vlmkit/contracts.py":
                literal.append(f"{name}:{node.lineno}: {node.value[:40]!r}")
    assert literal == []
    assert contracts.DataContract.__dataclass_fields__["placeholders"].default == contracts.PLACEHOLDERS


def test_dtype_names_are_mapped_in_one_table():
    tables = [f"{name}:{node.lineno}" for name, tree in modules() if name != "vlmkit/dtypes.py"
              for node in ast.walk(tree) if isinstance(node, ast.Dict)
              and sum(isinstance(k, ast.Constant) and k.value in DTYPE_NAMES for k in node.keys) >= 2]
    assert tables == []


@pytest.mark.parametrize("short,long", [("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16")])
def test_both_spellings_name_the_same_type(short, long):
    assert dtypes.torch_dtype(short) is dtypes.torch_dtype(long) is getattr(torch, long)
    assert dtypes.precision_name(long) == dtypes.precision_name(getattr(torch, long)) == short
    with pytest.raises(ValueError, match="accepted: fp32, bf16, fp16 or float32, bfloat16, float16"):
        dtypes.torch_dtype("half")
