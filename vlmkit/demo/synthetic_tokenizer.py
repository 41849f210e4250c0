"""The word-level tokenizer of the synthetic shape-video demo, built locally from the generator's own texts.

Its vocabulary is every word the default :class:`~vlmkit.demo.synthetic.SyntheticVideoGenerator` can write
(questions, options, answers, captions, prompts) plus the ChatML role words, so no answer word is ever
``<unk>`` and the LM's output layer stays small (about a hundred words). Config value:
``tokenizer: "local:synthetic"``.
"""
from __future__ import annotations

import functools

from vlmkit.models.llms.local_tokenizer import LOCAL_TOKENIZERS, build_local_tokenizer

# Enough videos that every question / caption form appears; the word set is also seeded with the value pools.
_VOCABULARY_VIDEOS = 60
_ROLE_WORDS = "system user assistant"


@functools.lru_cache(maxsize=4)
def synthetic_texts(videos: int = _VOCABULARY_VIDEOS) -> tuple[str, ...]:
    """Every text a default generator writes for ``videos`` training and test videos, plus its value pools."""
    from vlmkit.demo.synthetic import SyntheticVideoGenerator

    generator = SyntheticVideoGenerator()
    params = generator.params
    texts = [_ROLE_WORDS, " ".join(params["colours"]), " ".join(params["shapes"]), " ".join(params["directions"]),
             "one two", generator.caption_prompt, generator.mc_suffix]
    for split in ("train", "test"):
        for index in range(videos):
            video = generator.sample(split, index, seed=0)
            texts += video.captions
            for entry in generator.conversations(video):
                texts += [turn["value"] for turn in entry["conversations"]]
            for records in generator.test_records(video).values():
                texts += [str(r.get(k, "")) for r in records for k in ("question", "answer")]
                texts += [" ".join(r.get("candidates", [])) for r in records]
    return tuple(texts)


@LOCAL_TOKENIZERS.register("local:synthetic")
def synthetic_word_tokenizer():
    """LLaMA-like (adds BOS) word tokenizer over the synthetic vocabulary, with the ChatML chat template
    (EOS = ``<|im_end|>``, id 3).

    A new object every call: the model adds its placeholder token to it (only the word list is cached)."""
    # EOS is ChatML's end of turn, as in Qwen2 chat tokenizers: generation stops at the end of the answer.
    return build_local_tokenizer(texts=synthetic_texts(), eos_token="<|im_end|>", add_bos=True, add_eos=False)
