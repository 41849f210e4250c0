"""The ``run.packing:`` settings: their schema (validated at config time, without torch) and the values the packer
reads. The packing itself is ``vlmkit.data.packing``."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlmkit.errors import ConfigError
from vlmkit.schema import Positive, check_signature


@dataclass(frozen=True)
class PackingSettings:
    """Sequence packing of training batches: each micro-batch's conversations are packed into rows of at most
    ``max_length`` tokens (visual tokens included), several conversations per row, each with its own position
    ids and attention confined to itself. A conversation longer than ``max_length`` is an error."""

    max_length: Positive[int]

    @classmethod
    def from_config(cls, packing: Mapping[str, Any], where: str = "run.packing") -> "PackingSettings":
        """The settings of a ``packing:`` mapping, or a ConfigError naming every problem."""
        if not isinstance(packing, Mapping):
            raise ConfigError(where, f"expected a mapping such as {{max_length: 2048}}, got {packing!r}")
        errors = check_signature(cls, packing, where, cls.__name__)
        if errors:
            raise errors[0] if len(errors) == 1 else ConfigError.many(errors)
        return cls(**packing)
