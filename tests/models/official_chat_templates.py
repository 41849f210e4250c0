"""The ``chat_template`` strings the models ship in their tokenizer_config.json (data, not code: each is the
value of that key), with the special tokens the same file sets. vlmkit's templates are compared with what
transformers' ``apply_chat_template`` renders from them (test_official_chat_templates.py).

Sources: the tokenizer_config.json files below. This machine has no network, so each string was taken from copies
found with the code search and checked against a second, independent copy: for Llama-2, mistral.rs' chat-template
test table labelled "meta-llama/Llama-2-13b-chat-hf" (the 7b and 13b chat models ship the same template); for
Phi-3, a model-id -> tokenizer_config table labelled "microsoft/Phi-3-mini-4k-instruct" (with its bos/eos); for
Qwen2, distillation configs that set Qwen2-Instruct's template verbatim.
- https://huggingface.co/meta-llama/Llama-2-7b-chat-hf/blob/main/tokenizer_config.json
- https://huggingface.co/Qwen/Qwen2-7B-Instruct/blob/main/tokenizer_config.json
- https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/blob/main/tokenizer_config.json (the July 2024 update,
  which added the system turn)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OfficialTemplate:
    model: str          # the hub repository whose tokenizer_config.json holds it
    chat_template: str
    bos_token: str
    eos_token: str


LLAMA2_CHAT = OfficialTemplate(
    model="meta-llama/Llama-2-7b-chat-hf",
    chat_template=(
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
        "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if loop.index0 == 0 and system_message != false %}"
        "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
        "{% else %}{% set content = message['content'] %}{% endif %}"
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
        "{% endfor %}"),
    bos_token="<s>", eos_token="</s>")

QWEN2_INSTRUCT = OfficialTemplate(
    model="Qwen/Qwen2-7B-Instruct",
    chat_template=(
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    bos_token="", eos_token="<|im_end|>")  # Qwen2 has no BOS (bos_token: null)

PHI3_MINI_INSTRUCT = OfficialTemplate(
    model="microsoft/Phi-3-mini-4k-instruct",
    chat_template=(
        "{% for message in messages %}{% if message['role'] == 'system' %}"
        "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}"
        "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
        "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"),
    bos_token="<s>", eos_token="<|endoftext|>")
