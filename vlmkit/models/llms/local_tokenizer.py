"""A word-level tokenizer built in memory, for tests and demos that must never download one.

It is a real ``PreTrainedTokenizerFast`` (offsets, padding, special tokens, ``apply_chat_template``), so the
code under test takes the same paths as with a hub tokenizer.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

from vlmkit.contracts import PLACEHOLDERS
from vlmkit.errors import ConfigError, RegistryError
from vlmkit.registry import Registry

# Markers of every shipped template, so any of them renders without unknown tokens.
TEMPLATE_SPECIAL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
    *PLACEHOLDERS, "<|visual|>",
)

# ChatML as Qwen2 ships it, without the default-system branch (tests pass the system turn explicitly).
CHATML_JINJA = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# Vocabulary of the built-in local tokenizer ("local:word"): template words, common English, letters, digits.
BUILTIN_TEXT = """
USER ASSISTANT Human Assistant INST SYS Video Image system user assistant s
A chat between a curious user and an artificial intelligence assistant . The assistant gives helpful , detailed ,
and polite answers to the user ' s questions . You are a helpful language and vision AI assistant .
what who where when why how which is are was were be been do does did can could will would should may might
the a an this that these those there here it its of in on at to from by with for about into over under after
before during while and or but not no yes if then than so as up down out off again once all any both each few
more most other some such only own same too very just now video image frame frames clip scene camera shot
person people man woman men women child boy girl dog cat car ball table room door hand hands face head
red green blue black white yellow brown gray orange purple pink color colors left right top bottom front back
one two three four five six seven eight nine ten first second third last next many number time
walk walks walking run runs running sit sits sitting stand stands standing hold holds holding open opens
close closes put puts take takes pick picks move moves moving turn turns play plays playing talk talks
cook cooks cooking eat eats eating drink drinks look looks looking see sees show shows describe describes
happen happens happened happening event events action actions change changes status subject begin end
question answer option options best choose correct wrong true false because cause reason result
describe caption summary detail details carefully watch observe select
0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z
B C D E F G H I J K L M N O P Q R S T U V W X Y Z ( ) [ ] : ; ! ? . , ' " - / # < >
"""


def word_vocabulary(texts: Iterable[str]) -> list[str]:
    """The words and punctuation runs of ``texts`` as the Whitespace pre-tokenizer splits them, sorted."""
    from tokenizers.pre_tokenizers import Whitespace

    splitter = Whitespace()
    words = {piece for text in texts for piece, _ in splitter.pre_tokenize_str(text)}
    return sorted(words)


# Tokenizers a config names 'local:NAME'. The word tokenizers are registered below; the demo's 'local:synthetic'
# in vlmkit.demo.synthetic_tokenizer, found through this location (a module path, not an import: the models
# layer does not depend on the demo); a plugin module registers its own with @LOCAL_TOKENIZERS.register(...).
LOCAL_TOKENIZERS = Registry("local tokenizers", ["vlmkit.demo.synthetic_tokenizer"])


@LOCAL_TOKENIZERS.register("local:word")
def word_tokenizer():
    """LLaMA-like word tokenizer (adds BOS) over the fixed built-in vocabulary."""
    return build_local_tokenizer(texts=[BUILTIN_TEXT], add_bos=True, add_eos=False)


@LOCAL_TOKENIZERS.register("local:word-eos")
def word_eos_tokenizer():
    """T5-like word tokenizer (appends EOS, no BOS) over the fixed built-in vocabulary."""
    return build_local_tokenizer(texts=[BUILTIN_TEXT], add_bos=False, add_eos=True)


def builtin_tokenizer(spec: str):
    """The tokenizer named by a config value 'local:NAME' (``LOCAL_TOKENIZERS``: 'local:word', 'local:word-eos',
    the demo's 'local:synthetic'); never touches the network. A new object every call."""
    try:
        factory = LOCAL_TOKENIZERS.get(spec)
    except RegistryError as err:
        raise ConfigError("tokenizer", str(err)) from None
    return factory()


def build_local_tokenizer(words: Iterable[str] = (), *, texts: Iterable[str] = (),
                          special_tokens: Iterable[str] = TEMPLATE_SPECIAL_TOKENS,
                          bos_token: str = "<s>", eos_token: str = "</s>", pad_token: str = "<pad>",
                          unk_token: str = "<unk>", add_bos: bool = True, add_eos: bool = False,
                          chat_template: Optional[str] = CHATML_JINJA):
    """A word-level fast tokenizer over ``words`` plus the words of ``texts``.

    Ids: pad, unk, bos, eos first (0..3), then ``special_tokens``, then the sorted words. ``add_bos`` /
    ``add_eos`` make ``tokenizer(text)`` add them, the way LLaMA (BOS) and T5 (EOS) tokenizers do.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    base = [pad_token, unk_token, bos_token, eos_token]
    specials = [t for t in dict.fromkeys([*base, *special_tokens])]
    vocab_words = [w for w in dict.fromkeys([*words, *word_vocabulary(texts)]) if w not in specials]
    vocab = {token: i for i, token in enumerate([*specials, *vocab_words])}

    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(specials)
    single = " ".join([*([f"{bos_token}"] if add_bos else []), "$A", *([f"{eos_token}"] if add_eos else [])])
    used = [(t, vocab[t]) for t in (bos_token, eos_token) if t in single.split()]
    backend.post_processor = processors.TemplateProcessing(single=single, special_tokens=used)

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos_token, eos_token=eos_token,
                                        pad_token=pad_token, unk_token=unk_token,
                                        extra_special_tokens=[t for t in specials if t not in base])
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
