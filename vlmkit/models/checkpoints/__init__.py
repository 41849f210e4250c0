"""Loading published checkpoints (BLIP-2, Video-LLaMA, MiniGPT-4, LLMVA-GEBC, Video-XL) into vlmkit modules.

Key names are translated by explicit key maps (``layouts``), loading is strict against what the target
modules expect and reports missing / unexpected / mis-shaped keys readably (``keymap``), and files are read
safely: safetensors first, else ``torch.load(weights_only=True)`` (``io``).
"""
