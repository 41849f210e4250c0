"""Where each parameter's values came from, and the refusal to run on frozen weights nobody loaded.

A frozen tower left at its random initialisation trains and evaluates without an error and learns nothing useful,
so every loader marks the parameters it fills: ``mark_loaded`` for a module built by ``from_pretrained``,
``recording_loads`` around a state-dict loader (it marks exactly the parameters whose values the loader wrote, seen
through torch's in-place version counter, so no loader has to list its keys). ``check_frozen_loaded`` then refuses a
model with an unmarked frozen parameter unless the model config allows random frozen weights (from-scratch work:
the demo, tiny test models).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Optional

from torch import nn

from vlmkit.errors import ConfigError

SOURCE_ATTR = "_vlmkit_weight_source"
RANDOM_TRAINABLE = "random (trainable)"
RANDOM_FROZEN = "random (frozen)"
UNUSED = "unused (never read)"


def mark_loaded(params: Iterable[nn.Parameter], source: str) -> None:
    """Record that these parameters hold values read from ``source`` (e.g. "path (layout)")."""
    for param in params:
        setattr(param, SOURCE_ATTR, source)


def weight_source(param: nn.Parameter) -> Optional[str]:
    return getattr(param, SOURCE_ATTR, None)


@contextmanager
def recording_loads(model: nn.Module, source: str) -> Iterator[None]:
    """Mark every parameter of ``model`` whose values the code inside the block writes in place."""
    before = {id(p): p._version for p in model.parameters()}
    yield
    mark_loaded((p for p in model.parameters() if before.get(id(p)) != p._version), source)


def describe(param: nn.Parameter) -> str:
    return weight_source(param) or (RANDOM_TRAINABLE if param.requires_grad else RANDOM_FROZEN)


def source_report(model: nn.Module, components: Iterable[str] = ()) -> dict[str, dict[str, int]]:
    """{component path: {weight source: parameter count}}; ``components`` are module paths (e.g. "llm",
    "branches.0.encoder"); a parameter outside every one is reported under its top-level module."""
    paths = sorted(components, key=len, reverse=True)
    report: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        owner = next((c for c in paths if name.startswith(c + ".")), name.split(".")[0])
        counts = report.setdefault(owner, {})
        counts[describe(param)] = counts.get(describe(param), 0) + param.numel()
    return report


def format_report(report: dict[str, dict[str, int]]) -> list[str]:
    return [f"  {path}: " + "; ".join(f"{source} ({count:,})" for source, count in counts.items())
            for path, counts in report.items()]


def check_frozen_loaded(model: nn.Module, allow_random_frozen: bool, components: Iterable[str] = (),
                        where: str = "model") -> None:
    """Refuse a model whose frozen parameters were never loaded from weights, naming the components."""
    if allow_random_frozen or any(p.is_meta for p in model.parameters()):  # a meta build has shapes, never values
        return
    random_frozen = {path: counts[RANDOM_FROZEN] for path, counts in source_report(model, components).items()
                     if RANDOM_FROZEN in counts}
    if random_frozen:
        shown = "\n".join(f"  {where}.{path}: {count:,} frozen parameters" for path, count in random_frozen.items())
        raise ConfigError(f"{where}.allow_random_frozen",
                          f"these frozen modules were never loaded from weights, so they would stay at their random "
                          f"initialisation:\n{shown}\nLoad them (the component's 'pretrained', or "
                          f"{where}.init_weights with the published layout), make them trainable, or set "
                          f"{where}.allow_random_frozen: true for from-scratch work (tiny test models, the demo)")
