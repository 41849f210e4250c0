"""The frozen-feature cache on disk and on the data side: safetensors shards of per-video features with a manifest
(``store``), what a dataset's frames depend on (``variant``), and the stand-in for a dataset's media loader that
serves the cached features (``cached_media``, ``serve``). The model side is ``vlmkit.models.cached_prefix``; the
runners join both in ``vlmkit.runners.feature_cache``; ``vlmkit cache-features`` builds a cache."""
