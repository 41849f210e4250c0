"""vlmkit's templates against the models' own chat templates: each official ``chat_template`` (stored with its
source in official_chat_templates.py) is rendered by transformers' ``apply_chat_template`` on a local tokenizer
carrying the model's BOS/EOS, and compared with vlmkit's rendering of the same conversation. Differences that are
deliberate are spelled out below, not hidden by normalising both sides.

Templates without an official chat template (vicuna_v1, video_llama, pllava, opt_video, plain) follow the original
projects' prompt code; their goldens and sources are in test_prompting.py."""
from __future__ import annotations

import pytest

from tests.models.official_chat_templates import LLAMA2_CHAT, PHI3_MINI_INSTRUCT, QWEN2_INSTRUCT
from vlmkit.models.llms.local_tokenizer import build_local_tokenizer
from vlmkit.registry import TEMPLATES

CONV = [{"role": "user", "content": "<video>\nWhat is it?"}, {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Color?"}, {"role": "assistant", "content": "Black."}]
SYSTEM = {"role": "system", "content": "Describe the video briefly."}


def official(template, messages, generation=False) -> str:
    tokenizer = build_local_tokenizer(texts=["What is it ? A cat . Color Black"], chat_template=template.chat_template,
                                      bos_token=template.bos_token or "<s>", eos_token=template.eos_token)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def ours(name, messages, generation=False) -> str:
    return TEMPLATES.build({"name": name}).render(messages, add_generation_prompt=generation).text


@pytest.mark.parametrize("generation", [False, True])
@pytest.mark.parametrize("system", [False, True])
def test_chatml_is_qwen2_instructs_template(system, generation):
    messages = ([SYSTEM] if system else []) + (CONV[:3] if generation else CONV)  # no system: both add the default
    assert ours("chatml", messages, generation) == official(QWEN2_INSTRUCT, messages, generation)


@pytest.mark.parametrize("generation", [False, True])
def test_llama2_is_llama2_chats_template_without_the_first_bos(generation):
    messages = [SYSTEM, *(CONV[:3] if generation else CONV)]
    # vlmkit leaves the first <s> to the tokenizer (LLaMA's adds BOS when encoding); later turns carry it as text
    assert LLAMA2_CHAT.bos_token + ours("llama2", messages, generation) == official(LLAMA2_CHAT, messages, generation)


def test_phi3_is_phi3_minis_template_but_ends_at_the_last_end_marker():
    system = {"role": "system", "content": "You are a helpful AI assistant."}  # vlmkit's default, as VideoGPT+'s
    messages = [system, *CONV]
    # Phi-3's template closes a finished conversation with '\n' + <|endoftext|>; vlmkit (VideoGPT+'s
    # conv_phi3_instruct) stops at the answer's <|end|>, which is what generation stops on.
    assert ours("phi3", messages) + "\n" + PHI3_MINI_INSTRUCT.eos_token == official(PHI3_MINI_INSTRUCT, messages)
    assert ours("phi3", CONV[:3], generation=True) == official(PHI3_MINI_INSTRUCT, [system, *CONV[:3]], True)


def test_hf_chat_template_with_qwen2s_template_renders_what_chatml_does():
    tokenizer = build_local_tokenizer(texts=["What is it ? A cat . Color Black"],
                                      chat_template=QWEN2_INSTRUCT.chat_template)
    via_hf = TEMPLATES.build({"name": "hf_chat_template"}).render(CONV, tokenizer=tokenizer)
    own = TEMPLATES.build({"name": "chatml"}).render(CONV)
    assert via_hf.text == own.text
    # the same answers; hf_chat_template's spans (found by prefix rendering) also take the newline after <|im_end|>
    assert own.answers() == ["A cat.<|im_end|>", "Black.<|im_end|>"]
    assert via_hf.answers() == [answer + "\n" for answer in own.answers()]
