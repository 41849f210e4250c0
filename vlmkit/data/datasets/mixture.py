"""The registered ``mixture`` dataset: several dataset configs drawn with ``sample_ratio`` (see
``vlmkit.data.mixing``)."""
from __future__ import annotations

from typing import Optional

from torch.utils.data import IterableDataset

from vlmkit.contracts import DataContract
from vlmkit.data.mixing import MixedDataset, MixedStream
from vlmkit.registry import DATASETS
from vlmkit.schema import ComponentMap, Runtime, signature_of


@DATASETS.register("mixture", aliases=["mixed"])
def mixture(sources: ComponentMap("datasets"), sample_ratio: Optional[dict[str, float]] = None,
            length: Optional[int] = None, seed: int = 0, *, contract: Runtime[DataContract]):
    """Several datasets drawn with ``sample_ratio`` (name -> weight; default: by size).  Each source is a full
    dataset config (``preset:`` works); ``length`` is the mixture's epoch (default: the sources' total)."""
    built = {}
    for name, cfg in sources.items():
        params = signature_of(DATASETS.get(DATASETS.name_of(cfg, f"sources.{name}"))).parameters
        built[name] = DATASETS.build(cfg, f"sources.{name}", **({"contract": contract} if "contract" in params else {}))
    if any(isinstance(d, IterableDataset) for d in built.values()):
        return MixedStream(built, sample_ratio, length, seed)
    return MixedDataset(built, sample_ratio, length, seed)
