"""A local transformers causal LM as judge (greedy decoding), loaded on first use."""
from __future__ import annotations

import threading
from typing import Optional

from vlmkit.dtypes import WeightDType, torch_dtype
from vlmkit.metrics.judge_base import ChatJudge
from vlmkit.registry import METRICS


@METRICS.register("transformers_judge")
class TransformersJudge(ChatJudge):
    """Judge with a local causal LM directory (or hub id already in the local cache); no network."""

    kind = "transformers_judge"

    def __init__(self, model_path: str, device: str = "cpu",
                 dtype: WeightDType = "float32", max_tokens: int = 64,
                 cache_dir: Optional[str] = None, max_retries: int = 0, local_files_only: bool = True):
        """
        model_path: directory with the model and its tokenizer (save_pretrained layout).
        max_tokens: new tokens to generate per reply.
        max_retries: re-asks for replies the metric cannot parse; greedy decoding repeats itself, so 0.
        """
        # Greedy decoding gives the same unparseable reply again, so keep those in the cache as well.
        super().__init__(cache_dir, max_retries, backoff_s=0.0, max_backoff_s=0.0, concurrency=1,
                         temperature=0.0, max_tokens=max_tokens, cache_unparseable=True)
        self.model_name = model_path
        self.endpoint = f"local:{device}"
        self.device = device
        self.dtype = dtype
        self.local_files_only = local_files_only
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_name, local_files_only=self.local_files_only)
        self._model = AutoModelForCausalLM.from_pretrained(
            self.model_name, dtype=torch_dtype(self.dtype), local_files_only=self.local_files_only)
        self._model.to(self.device).eval()

    def _prompt_ids(self, messages: list[dict[str, str]]):
        tokenizer = self._tokenizer
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)["input_ids"]
        text = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\nAssistant:"
        return tokenizer(text, return_tensors="pt")["input_ids"]

    def _complete(self, messages: list[dict[str, str]]) -> str:
        import torch

        with self._lock:
            if self._model is None:
                self._load()
            input_ids = self._prompt_ids(messages).to(self.device)
            with torch.no_grad():
                output = self._model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                              max_new_tokens=self.max_tokens, do_sample=False,
                                              pad_token_id=self._tokenizer.pad_token_id
                                              if self._tokenizer.pad_token_id is not None
                                              else self._tokenizer.eos_token_id)
            return self._tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True)
