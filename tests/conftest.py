import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests import helpers as tests.<area>.<module>
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def isolated():
    """Registrations made by a test are undone afterwards."""
    from vlmkit.registry import isolated_registries

    with isolated_registries():
        yield
