"""Stand-alone tools built on vlmkit (not registered components): delta weights, ..."""
from vlmkit.tools.apply_delta import MergeReport, apply_delta, make_delta

__all__ = ["MergeReport", "apply_delta", "make_delta"]
