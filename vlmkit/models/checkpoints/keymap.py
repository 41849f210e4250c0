"""Explicit key maps from a checkpoint's names to a module's parameter names, and strict loading.

A ``KeyMap`` is a list of rules (a regex over the checkpoint key, a replacement naming the module's key, and
the sub-module the rule fills) plus patterns of keys that are known and deliberately not loaded (the BERT text
parts a query-only Q-Former does not have, an LLM stored next to an adapter...). Loading is strict:

- every checkpoint key is either mapped or explicitly dropped (otherwise: unexpected);
- every mapped key exists in the module with the same shape (otherwise: unexpected / shape mismatch);
- every parameter of each sub-module that the checkpoint touches, and of the map's required sub-modules,
  is provided (otherwise: missing). A partly loaded Q-Former never passes silently.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from vlmkit.errors import VlmkitError


class CheckpointMismatch(VlmkitError, ValueError):
    """A checkpoint does not fit the module it is loaded into; the message lists every difference."""


@dataclass(frozen=True)
class Rule:
    pattern: str      # regex, matched against the whole checkpoint key
    replacement: str  # the module key (``re`` replacement syntax, e.g. r"\1")
    scope: str        # module path the rule fills; all of its parameters must then be provided


@dataclass
class KeyMap:
    name: str
    rules: list[Rule]
    drop: list[str] = field(default_factory=list)      # regexes of checkpoint keys deliberately not loaded
    required: list[str] = field(default_factory=list)  # module paths the checkpoint must fill completely
    hint: str = ""  # appended to a failed load's report: the likely fix (e.g. the layout that fits)

    def prepare(self, state_dict: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        """Tensors a layout stores split or fused differently, rewritten before mapping (none by default)."""
        return state_dict

    def target_of(self, key: str) -> tuple[Optional[str], Optional[str], bool]:
        """(module key, scope, dropped) for one checkpoint key; (None, None, False) when nothing matches."""
        for rule in self.rules:
            match = re.fullmatch(rule.pattern, key)
            if match:
                return match.expand(rule.replacement), rule.scope, False
        if any(re.fullmatch(pattern, key) for pattern in self.drop):
            return None, None, True
        return None, None, False


@dataclass
class LoadReport:
    layout: str
    source: str
    loaded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 20) -> str:
        lines = [f"checkpoint {self.source} (layout '{self.layout}'): {len(self.loaded)} tensors loaded, "
                 f"{len(self.dropped)} deliberately not loaded"]
        for title, items in (("missing (the module expects them, the checkpoint lacks them)", self.missing),
                             ("unexpected (in the checkpoint, but no rule maps them or the module lacks "
                              "the target)", self.unexpected),
                             ("shape mismatch", self.mismatched)):
            if items:
                lines.append(f"{len(items)} {title}:")
                lines += [f"  {item}" for item in items[:limit]]
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")
        if self.hint and not self.ok:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


def _under(key: str, scope: str) -> bool:
    return not scope or key == scope or key.startswith(scope + ".")


def load_mapped(module: nn.Module, state_dict: Mapping[str, torch.Tensor], keymap: KeyMap, *,
                strict: bool = True, source: str = "<state dict>") -> LoadReport:
    """Copy ``state_dict`` into ``module`` through ``keymap``; strict raises ``CheckpointMismatch`` listing
    every missing, unexpected and mis-shaped key before anything is written."""
    own = module.state_dict(keep_vars=True)
    report = LoadReport(keymap.name, source, hint=keymap.hint)
    to_load: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    scopes = set(keymap.required)
    reported: set[int] = set()  # targets already listed as mis-shaped are not listed as missing again
    for key, tensor in state_dict.items():
        target, scope, dropped = keymap.target_of(key)
        if dropped:
            report.dropped.append(key)
        elif target is None:
            report.unexpected.append(f"{key} (no rule of layout '{keymap.name}' maps it)")
        elif target not in own:
            report.unexpected.append(f"{key} -> {target} (the module has no such parameter)")
        elif tuple(own[target].shape) != tuple(tensor.shape):
            report.mismatched.append(f"{key} -> {target}: checkpoint {tuple(tensor.shape)}, module "
                                     f"{tuple(own[target].shape)}")
            reported.add(id(own[target]))
            scopes.add(scope)
        elif target in to_load:
            report.unexpected.append(f"{key} -> {target} (already filled from {origin[target]})")
        else:
            to_load[target], origin[target] = tensor, key
            scopes.add(scope)
    filled = {id(own[t]) for t in to_load} | reported  # a module shared under two names is filled through either
    report.missing = [k for k, v in own.items() if id(v) not in filled and any(_under(k, s) for s in scopes)]
    report.loaded = sorted(origin[t] for t in to_load)
    if strict and not report.ok:
        raise CheckpointMismatch(report.summary())
    with torch.no_grad():
        for target, tensor in to_load.items():
            own[target].copy_(tensor.to(device=own[target].device, dtype=own[target].dtype))
    return report


def locate(module: nn.Module, cls: type, nth: int = 0) -> str:
    """Path of the ``nth`` sub-module of type ``cls`` (e.g. 'branches.0.stages.1'), in definition order."""
    found = [name for name, sub in module.named_modules() if type(sub) is cls]
    if len(found) <= nth:
        raise CheckpointMismatch(f"{type(module).__name__} has {len(found)} {cls.__name__} module(s), "
                                 f"asked for number {nth}")
    return found[nth]


def rules_under(source: str, target: str, scope: str, pairs: Iterable[tuple[str, str]]) -> list[Rule]:
    """Rules for (pattern, replacement) pairs relative to a source prefix and a target prefix."""
    return [Rule(re.escape(source) + pattern, f"{target}{replacement}", scope) for pattern, replacement in pairs]


def join(*parts: Optional[str]) -> str:
    return ".".join(p for p in parts if p)


def scoped(paths: Sequence[Optional[str]]) -> list[str]:
    return [p for p in paths if p]
