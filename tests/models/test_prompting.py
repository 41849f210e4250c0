"""Templates render exact strings; labels supervise only answers; placeholders expand and scatter exactly."""
from __future__ import annotations

import pytest
import torch

from vlmkit.errors import ConfigError, DataError
from vlmkit.models.llms.local_tokenizer import build_local_tokenizer
from vlmkit.models.prompting import (IGNORE_INDEX, VISUAL_TOKEN, collate_encoded, encode_conversation,
                                     encode_seq2seq, expand_conversation, scatter_visual_embeddings)
from vlmkit.registry import TEMPLATES

CONV = [{"from": "human", "value": "<video>\nWhat is it?"}, {"from": "gpt", "value": "A cat."},
        {"from": "human", "value": "Color?"}, {"from": "gpt", "value": "Black."}]
VICUNA_SYS = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
              "detailed, and polite answers to the user's questions.")

# Sources of the goldens. llama2, chatml and phi3 are also rendered from the models' official chat templates by
# transformers (test_official_chat_templates.py). The others have no HF chat template; their strings follow the
# original projects' prompt code:
# - vicuna_v1: LLaVA llava/conversation.py conv_vicuna_v1 (roles USER/ASSISTANT, SeparatorStyle.TWO, sep " ",
#   sep2 "</s>"), rendered by Conversation.get_prompt; the same as FastChat's vicuna_v1.1.
# - video_llama: Video-LLaMA video_llama/datasets/datasets/llava_instruct_dataset.py and video_instruct_dataset.py,
#   _add_speaker_and_signal: "###" + "Human"/"Assistant" + ": " + text + "\n" (BEGIN_SIGNAL "###", END_SIGNAL "\n");
#   its demo (video_llama/conversation/conversation_video.py) stops generation at "###".
# - llama2: meta-llama/Llama-2-7b-chat-hf's chat_template, the first <s> left to the tokenizer.
# - pllava: PLLaVA's training datasets (process_qa with roles "USER:"/"ASSISTANT:", end_signal "</s>" after both
#   turns, no system prompt).
# - plain: LLaVA llava/conversation.py conv_llava_plain (SeparatorStyle.PLAIN, sep "\n") / train.py preprocess_plain.
# - opt_video: LLMVA-GEBC's OPT captioner (video_blip2_opt_gebc): "Video:" + visual tokens + prompt, caption + "</s>".
EXPECTED = {
    "vicuna_v1": VICUNA_SYS + " USER: <video>\nWhat is it? ASSISTANT: A cat.</s>USER: Color? ASSISTANT: Black.</s>",
    "video_llama": "###Human: <video>\nWhat is it?\n###Assistant: A cat.\n###Human: Color?\n###Assistant: Black.\n",
    "llama2": "[INST] <<SYS>>\nSYS\n<</SYS>>\n\n<video>\nWhat is it? [/INST] A cat. </s><s>[INST] Color? [/INST] Black. </s>",
    "chatml": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<video>\nWhat is it?"
              "<|im_end|>\n<|im_start|>assistant\nA cat.<|im_end|>\n<|im_start|>user\nColor?<|im_end|>\n"
              "<|im_start|>assistant\nBlack.<|im_end|>\n",
    "phi3": "<|system|>\nYou are a helpful AI assistant.<|end|>\n<|user|>\n<video>\nWhat is it?<|end|>\n<|assistant|>\n"
            "A cat.<|end|>\n<|user|>\nColor?<|end|>\n<|assistant|>\nBlack.<|end|>",
    "plain": "<video>\nWhat is it?A cat.\nColor?Black.\n",
    "pllava": "USER:<video>\nWhat is it?</s>ASSISTANT:A cat.</s>USER:Color?</s>ASSISTANT:Black.</s>",
    "opt_video": "Video:<video>\nWhat is it?A cat.</s>Video:Color?Black.</s>",
}
GENERATION_TAIL = {"vicuna_v1": "USER: Color? ASSISTANT:", "chatml": "<|im_start|>assistant\n",
                   "phi3": "<|end|>\n<|assistant|>\n", "llama2": "[INST] Color? [/INST]",
                   "video_llama": "###Assistant:", "pllava": "ASSISTANT:"}


@pytest.fixture(scope="module")
def tokenizer():
    return build_local_tokenizer(texts=[*EXPECTED.values(), "SYS the dog runs Answer"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_exact_text_and_answer_spans(name):
    cfg = {"name": name, **({"system": "SYS"} if name == "llama2" else {})}
    rendered = TEMPLATES.build(cfg).render(CONV)
    assert rendered.text == EXPECTED[name]
    assert [a.startswith(("A cat.", "Black.")) for a in rendered.answers()] == [True, True]
    ends = {a.replace("A cat.", "").replace("Black.", "") for a in rendered.answers()}
    assert len(ends) == 1  # both answers carry the same end marker


@pytest.mark.parametrize("name", sorted(GENERATION_TAIL))
def test_generation_prompt_opens_the_answer(name):
    rendered = TEMPLATES.build({"name": name}).render(CONV[:3], add_generation_prompt=True)
    assert rendered.text.endswith(GENERATION_TAIL[name])
    assert len(rendered.answer_spans) == 1


def test_templates_reject_malformed_conversations():
    template = TEMPLATES.build({"name": "vicuna_v1"})
    with pytest.raises(DataError, match="alternate"):
        template.render([CONV[0], CONV[2]])
    with pytest.raises(DataError, match="end with an assistant"):
        template.render(CONV[:3])


def test_system_turn_overrides_default_system():
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}]
    assert TEMPLATES.build({"name": "chatml"}).render(conv).text.startswith("<|im_start|>system\nBe brief.<|im_end|>")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_labels_supervise_exactly_the_answer_tokens(name, tokenizer):
    template = TEMPLATES.build({"name": name})
    encoded = encode_conversation(CONV, template, tokenizer, tokens_per_media=3, num_media=1)
    ids, labels = encoded.input_ids, encoded.labels
    supervised = [tokenizer.convert_ids_to_tokens(t) for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    end_tokens = tokenizer.tokenize(template.fmt.answer_end)  # '\n' is no token of the word tokenizer
    assert supervised == ["A", "cat", ".", *end_tokens, "Black", ".", *end_tokens]
    assert all(lab in (IGNORE_INDEX, tok) for tok, lab in zip(ids, labels))
    visual = tokenizer.convert_tokens_to_ids(VISUAL_TOKEN)
    assert ids.count(visual) == 3 and all(lab == IGNORE_INDEX for t, lab in zip(ids, labels) if t == visual)


def test_hf_chat_template_uses_the_tokenizers_template(tokenizer):
    template = TEMPLATES.build({"name": "hf_chat_template", "system": "SYS"})
    rendered = template.render(CONV, tokenizer=tokenizer)
    assert rendered.text == tokenizer.apply_chat_template(
        [{"role": "system", "content": "SYS"}, *[{"role": "user" if t["from"] == "human" else "assistant",
                                                  "content": t["value"]} for t in CONV]], tokenize=False)
    assert rendered.answers() == ["A cat.<|im_end|>\n", "Black.<|im_end|>\n"]
    encoded = encode_conversation(CONV, template, tokenizer, tokens_per_media=2, num_media=1)
    assert tokenizer.decode([t for t, lab in zip(encoded.input_ids, encoded.labels) if lab != IGNORE_INDEX]) == \
        "A cat . <|im_end|> Black . <|im_end|>"
    with pytest.raises(ConfigError, match="chat_template"):
        template.render(CONV)


def test_placeholders_expand_to_exactly_k_visual_tokens():
    conv = [{"from": "human", "value": "<video> then <image> ?"}, {"from": "gpt", "value": "ok"}]
    expanded = expand_conversation(conv, tokens_per_media=[2, 3], num_media=2)
    assert expanded[0]["content"] == f"{VISUAL_TOKEN * 2} then {VISUAL_TOKEN * 3} ?"
    assert expanded[1] == {"role": "assistant", "content": "ok"}


@pytest.mark.parametrize("num_media", [0, 2])
def test_placeholder_and_media_count_mismatch_raises(num_media):
    with pytest.raises(DataError, match=f"1 media placeholder.*{num_media} media item"):
        expand_conversation(CONV, tokens_per_media=4, num_media=num_media)


def test_placeholder_in_an_answer_raises():
    with pytest.raises(DataError, match="assistant answer"):
        expand_conversation([{"from": "human", "value": "q"}, {"from": "gpt", "value": "<video>"}],
                            tokens_per_media=1, num_media=1)


def test_truncation_never_cuts_question_or_visual_tokens(tokenizer):
    template = TEMPLATES.build({"name": "vicuna_v1", "system": ""})
    conv = [{"from": "human", "value": "<video>\nWhat is it?"}, {"from": "gpt", "value": "the dog runs the dog runs"}]
    full = encode_conversation(conv, template, tokenizer, tokens_per_media=4, num_media=1)
    prompt_length = full.labels.index(next(lab for lab in full.labels if lab != IGNORE_INDEX))
    with pytest.raises(DataError, match="over max_length"):
        encode_conversation(conv, template, tokenizer, tokens_per_media=4, num_media=1, max_length=len(full.input_ids) - 1)
    cut = encode_conversation(conv, template, tokenizer, tokens_per_media=4, num_media=1,
                              max_length=len(full.input_ids) - 2, truncation="answer_tail")
    assert cut.truncated == 2 and cut.input_ids == full.input_ids[:-2]
    with pytest.raises(DataError, match="visual tokens"):
        encode_conversation(conv, template, tokenizer, tokens_per_media=4, num_media=1,
                            max_length=prompt_length, truncation="answer_tail")


def test_seq2seq_encoding_splits_prompt_and_target():
    t5_tokenizer = build_local_tokenizer(texts=[EXPECTED["vicuna_v1"]], add_bos=False, add_eos=True)
    template = TEMPLATES.build({"name": "vicuna_v1", "system": ""})
    encoded = encode_seq2seq(CONV, template, t5_tokenizer, tokens_per_media=2, num_media=1)
    assert encoded.rendered.text.endswith("USER: Color? ASSISTANT:")
    assert t5_tokenizer.convert_ids_to_tokens(encoded.labels) == ["Black", ".", "</s>"]


def test_plain_user_end_separates_a_text_question_from_its_answer():
    template = TEMPLATES.build({"name": "plain", "user_end": "\n", "end": "<|im_end|>"})
    conversation = [{"from": "human", "value": "<video>\nWhat colour is the cross"}, {"from": "gpt", "value": "red"},
                    {"from": "human", "value": "Which shape moves"}, {"from": "gpt", "value": "red cross"}]
    rendered = template.render(conversation)
    assert rendered.text == "<video>\nWhat colour is the cross\nred<|im_end|>Which shape moves\nred cross<|im_end|>"
    assert rendered.answers() == ["red<|im_end|>", "red cross<|im_end|>"]
    assert template.render(conversation[:1], add_generation_prompt=True).text == "<video>\nWhat colour is the cross\n"
    assert template.stop_strings == ("<|im_end|>",)
    # braces in user_end are text, not format fields
    braces = TEMPLATES.build({"name": "plain", "user_end": " {x}\n", "end": "<|im_end|>"})
    assert braces.render(conversation[:2]).text == "<video>\nWhat colour is the cross {x}\nred<|im_end|>"
    # the default stays LLaVA's: nothing between the user turn and the answer
    assert TEMPLATES.build({"name": "plain"}).render(conversation[:2]).text == "<video>\nWhat colour is the crossred\n"


def test_collate_pads_labels_with_ignore_index(tokenizer):
    template = TEMPLATES.build({"name": "plain"})
    short = encode_conversation([CONV[0], CONV[1]], template, tokenizer, tokens_per_media=1, num_media=1)
    longer = encode_conversation([CONV[0], CONV[1]], template, tokenizer, tokens_per_media=3, num_media=1)
    batch = collate_encoded([short, longer], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(longer.input_ids))
    assert batch["attention_mask"][0].tolist() == [1] * len(short.input_ids) + [0, 0]
    assert batch["labels"][0, -2:].tolist() == [IGNORE_INDEX, IGNORE_INDEX]


def test_scatter_places_visual_embeddings_in_order_and_checks_counts():
    ids = torch.tensor([[5, 9, 9, 6], [9, 9, 7, 8]])
    embeds = torch.zeros(2, 4, 3)
    visual = torch.arange(12, dtype=torch.float).view(2, 2, 3).requires_grad_()
    out = scatter_visual_embeddings(embeds, ids, 9, visual)
    assert torch.equal(out[0, 1:3], visual[0].detach()) and torch.equal(out[1, :2], visual[1].detach())
    assert torch.equal(out[0, 0], torch.zeros(3))
    out.sum().backward()
    assert torch.equal(visual.grad, torch.ones_like(visual))
    with pytest.raises(DataError, match="per row"):
        scatter_visual_embeddings(embeds, ids, 9, torch.zeros(2, 3, 3))
    with pytest.raises(DataError, match="4 visual tokens but 5"):
        scatter_visual_embeddings(embeds, ids, 9, torch.zeros(5, 3))
    with pytest.raises(DataError, match="wide"):
        scatter_visual_embeddings(embeds, ids, 9, torch.zeros(2, 2, 4))


def test_labels_with_a_byte_level_bpe_that_merges_the_space_before_answers():
    """GPT-2/Qwen style tokens ('ĠA') start at the space before an answer and must still be supervised."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<pad>", "</s>", VISUAL_TOKEN]
    backend.train_from_iterator([EXPECTED["vicuna_v1"]] * 5, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>")
    encoded = encode_conversation(CONV, TEMPLATES.build({"name": "vicuna_v1"}), tokenizer, tokens_per_media=2,
                                  num_media=1)
    pieces = tokenizer.convert_ids_to_tokens(encoded.input_ids)
    assert "ĠA" in pieces  # the merged-space case really occurs
    supervised = [t for t, lab in zip(encoded.input_ids, encoded.labels) if lab != IGNORE_INDEX]
    assert tokenizer.decode(supervised).replace(" ", "") == "Acat.</s>Black.</s>"
