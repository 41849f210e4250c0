"""vlmkit: a config-registry framework for training and evaluating video large language models.

Importing vlmkit is cheap: components register lazily, the first time a registry is asked for a name.
"""
__version__ = "0.1.0"


def load(run, device=None, dtype=None, **kwargs):
    """A trained model built as ``evaluate.py`` builds it, with ``generate`` and ``chat``
    (``vlmkit.inference.load``; imported on first call, so ``import vlmkit`` stays cheap)."""
    from vlmkit.inference import load as _load

    return _load(run, device=device, dtype=dtype, **kwargs)
