"""`vlmkit estimate`: parameters, tokens and per-GPU training memory of a config, from a model built on the meta
device. The formulas (formulas.py) are documented in docs/estimate.md; every figure is an estimate."""
