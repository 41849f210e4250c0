"""vlmkit: a config-registry framework for training and evaluating video large language models.

Importing vlmkit is cheap: components register lazily, the first time a registry is asked for a name.
"""
__version__ = "0.1.0"
