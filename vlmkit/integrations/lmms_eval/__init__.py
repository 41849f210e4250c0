"""vlmkit as an lmms-eval model: ``lmms-eval --model vlmkit --model_args run=RUN --tasks ...``.

lmms-eval 0.7.3 finds external models through the Python entry-point group ``lmms_eval.models`` (its
``ModelRegistryV2.load_entrypoint_manifests``; the older ``LMMS_EVAL_PLUGINS`` variable is deprecated there).
vlmkit's pyproject declares ``vlmkit = "vlmkit.integrations.lmms_eval:manifest"`` in that group, so installing vlmkit
(``pip install -e .[lmms_eval]``) is all the registration there is. The model itself is ``model.VlmkitLmms``.
"""
from __future__ import annotations

MODEL_ID = "vlmkit"
CLASS_PATH = "vlmkit.integrations.lmms_eval.model.VlmkitLmms"


def manifest():
    """lmms-eval's registration record for the plug-in (called by lmms-eval when its model registry loads)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)
