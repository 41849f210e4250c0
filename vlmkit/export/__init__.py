"""``vlmkit export``: a trained run out of vlmkit, LoRA merged at the evaluator's alpha (``lora_merge``), as a
self-contained folder ``vlmkit.load`` reads (``self_contained``, layout in ``layout``), the LLM alone as a
transformers folder (``hf_llm``) or a transformers LLaVA-family folder (``hf_llava``); ``command`` is the CLI."""
