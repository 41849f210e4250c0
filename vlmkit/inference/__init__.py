"""Use a trained model: ``vlmkit.load`` (Python), ``vlmkit infer`` (one question or a JSON-lines file),
``vlmkit chat`` (a terminal chat) and ``vlmkit webchat`` (a Gradio page, ``vlmkit.inference.webchat``). Every door
builds the model as ``evaluate.py`` does (``vlmkit.assemble.build_trained_model``) and its inputs as the evaluation
datasets do."""
from vlmkit.inference.model import InferenceModel, load

__all__ = ["InferenceModel", "load"]
