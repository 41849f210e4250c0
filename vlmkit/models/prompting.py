"""From a conversation with ``<video>``/``<image>`` placeholders to token ids, labels and LLM input embeddings.

1. ``expand_conversation``: each placeholder becomes exactly K copies of the visual token (K = visual tokens
   per media item, from the model's data contract); placeholders and media must match in number.
2. ``encode_conversation``: render with a template, tokenize, and label only the answer tokens (-100
   elsewhere, always on visual tokens). Over-long samples raise, or lose only the tail of the last answer.
3. ``scatter_visual_embeddings``: write visual embeddings into ``inputs_embeds`` at the visual-token
   positions by a masked scatter; counts must match exactly.
"""
from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

import torch

from vlmkit.contracts import IGNORE_INDEX, PLACEHOLDERS
from vlmkit.errors import ConfigError, DataError
from vlmkit.models.templates.base import ChatTemplate, Rendered, normalize_turns

VISUAL_TOKEN = "<|visual|>"
Truncation = Literal["error", "answer_tail"]


# ---------------------------------------------------------------------------------------------- placeholders
def _placeholder_pattern(placeholders: Sequence[str]) -> re.Pattern:
    return re.compile("|".join(re.escape(p) for p in sorted(placeholders, key=len, reverse=True)))


def count_placeholders(text: str, placeholders: Sequence[str] = PLACEHOLDERS) -> int:
    return len(_placeholder_pattern(placeholders).findall(text))


def _per_media(tokens_per_media: Union[int, Sequence[int]], num_media: int) -> list[int]:
    if isinstance(tokens_per_media, int):
        counts = [tokens_per_media] * num_media
    else:
        counts = list(tokens_per_media)
        if len(counts) != num_media:
            raise DataError(f"{len(counts)} visual-token counts given for {num_media} media items")
    if any(k <= 0 for k in counts):
        raise DataError(f"visual tokens per media item must be positive, got {counts}")
    return counts


def expand_conversation(conversation: Sequence[Any], *, tokens_per_media: Union[int, Sequence[int]],
                        num_media: int, placeholders: Sequence[str] = PLACEHOLDERS,
                        visual_token: str = VISUAL_TOKEN) -> list[dict]:
    """The conversation (chat style) with the i-th placeholder replaced by ``tokens_per_media[i]`` visual tokens.

    Placeholders may appear in user and system turns only; their number must equal ``num_media``.
    """
    system, turns = normalize_turns(conversation)
    pattern = _placeholder_pattern(placeholders)
    found = sum(len(pattern.findall(t)) for t in [system or "", *(t.content for t in turns if t.role == "user")])
    in_answers = [i for i, t in enumerate(turns) if t.role == "assistant" and pattern.search(t.content)]
    if in_answers:
        raise DataError(f"media placeholders {list(placeholders)} appear in assistant answer(s) {in_answers}; "
                        f"they belong in user turns")
    if found != num_media:
        raise DataError(f"the conversation has {found} media placeholder(s) {list(placeholders)} but the sample "
                        f"has {num_media} media item(s); each media item needs exactly one placeholder")
    counts = iter(_per_media(tokens_per_media, num_media))

    def expand(text: str) -> str:
        return pattern.sub(lambda _: visual_token * next(counts), text)

    head = [{"role": "system", "content": expand(system)}] if system is not None else []
    return head + [{"role": t.role, "content": expand(t.content) if t.role == "user" else t.content} for t in turns]


# ---------------------------------------------------------------------------------------------- labels
def supervised_tokens(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Whether each token overlaps an answer span. Overlap (not containment) keeps a token that merges the
    space before an answer with its first word ('▁Yes') supervised; zero-width tokens (BOS) never are."""
    if not spans:
        return [False] * len(offsets)
    return [end > start and any(start < s_end and end > s_start for s_start, s_end in spans)
            for start, end in offsets]


@dataclass
class Encoded:
    """One tokenized sample. ``truncated`` counts answer tokens dropped by the 'answer_tail' policy."""

    input_ids: list[int]
    labels: list[int]
    rendered: Rendered
    truncated: int = 0

    @property
    def num_supervised(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _tokenize_with_offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("tokenizer", f"label masking needs a fast tokenizer (character offsets); "
                                       f"{type(tokenizer).__name__} is not one")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        # the Rust tokenizer directly: what transformers' __call__ returns here, without its per-call wrapping
        # (a quarter of a small sample's text cost); a backend left with truncation or padding goes the long way
        enc = backend.encode(text, add_special_tokens=True)
        return list(enc.ids), list(enc.offsets)
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


_VISUAL_IDS: "weakref.WeakKeyDictionary[Any, dict[str, int]]" = weakref.WeakKeyDictionary()


def visual_token_id(tokenizer: Any, visual_token: str = VISUAL_TOKEN) -> int:
    """The id of the visual token, which must be one token of the tokenizer's vocabulary (looked up once per
    tokenizer and token: it was a second tokenizer call for every sample).  A token added later than the
    first look-up is found too: a miss is never cached."""
    try:
        return _VISUAL_IDS[tokenizer][visual_token]
    except (KeyError, TypeError):
        pass
    ids = tokenizer(visual_token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ConfigError("tokenizer", f"the visual token {visual_token!r} is not a single token of the tokenizer "
                                       f"(got ids {ids}); add it first, e.g. llm.add_special_tokens([{visual_token!r}])")
    try:
        _VISUAL_IDS.setdefault(tokenizer, {})[visual_token] = ids[0]
    except TypeError:  # a tokenizer that takes no weak reference: look it up each time
        pass
    return ids[0]


def _truncate(ids: list[int], labels: list[int], max_length: int, policy: str) -> int:
    """Cut to ``max_length`` in place, only where the policy allows; returns the number of answer tokens cut."""
    excess = len(ids) - max_length
    if excess <= 0:
        return 0
    supervised = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    if policy == "answer_tail" and supervised:
        last = supervised[-1]
        removed = range(max_length, len(ids))
        only_answer_or_trailing = all(labels[i] != IGNORE_INDEX or i > last for i in removed)
        if only_answer_or_trailing and max_length > supervised[0]:
            cut = sum(labels[i] != IGNORE_INDEX for i in removed)
            del ids[max_length:], labels[max_length:]
            return cut
    first_answer = supervised[0] if supervised else len(ids)
    raise DataError(f"sample has {len(ids)} tokens, over max_length={max_length} by {excess}; the prompt (question "
                    f"and visual tokens) takes {first_answer} tokens and cutting would drop "
                    f"{'context or visual tokens' if policy == 'answer_tail' else 'tokens'}. Raise max_length, use fewer "
                    f"frames/visual tokens, or truncation='answer_tail' to cut only the end of the last answer")


def encode_conversation(conversation: Sequence[Any], template: ChatTemplate, tokenizer: Any, *,
                        tokens_per_media: Union[int, Sequence[int]] = 0, num_media: int = 0,
                        placeholders: Sequence[str] = PLACEHOLDERS, visual_token: str = VISUAL_TOKEN,
                        add_generation_prompt: bool = False, max_length: Optional[int] = None,
                        truncation: Truncation = "error") -> Encoded:
    """Token ids and labels of one conversation for a decoder-only LM (labels all -100 for a generation prompt)."""
    expanded = expand_conversation(conversation, tokens_per_media=tokens_per_media, num_media=num_media,
                                   placeholders=placeholders, visual_token=visual_token)
    rendered = template.render(expanded, add_generation_prompt=add_generation_prompt, tokenizer=tokenizer)
    ids, offsets = _tokenize_with_offsets(tokenizer, rendered.text)
    visual_count = sum(_per_media(tokens_per_media, num_media)) if num_media else 0
    if visual_count:
        vid = visual_token_id(tokenizer, visual_token)
        if ids.count(vid) != visual_count:
            raise DataError(f"expected {visual_count} visual tokens after tokenization, found {ids.count(vid)}; "
                            f"the template or tokenizer merged or split {visual_token!r}")
    else:
        vid = None
    labels = [tok if keep and tok != vid else IGNORE_INDEX
              for tok, keep in zip(ids, supervised_tokens(offsets, rendered.answer_spans))]
    if rendered.answer_spans and not any(label != IGNORE_INDEX for label in labels):
        raise DataError("no answer token survived tokenization; the sample would train on nothing")
    cut = _truncate(ids, labels, max_length, truncation) if max_length is not None else 0
    return Encoded(ids, labels, rendered, cut)


def encode_seq2seq(conversation: Sequence[Any], template: ChatTemplate, tokenizer: Any, *,
                   tokens_per_media: Union[int, Sequence[int]] = 0, num_media: int = 0,
                   placeholders: Sequence[str] = PLACEHOLDERS, visual_token: str = VISUAL_TOKEN,
                   max_length: Optional[int] = None) -> Encoded:
    """Encoder ids (everything up to the last answer, generation prompt opened) and decoder labels (that answer)."""
    system, turns = normalize_turns(conversation)
    if turns[-1].role != "assistant":
        raise DataError("a seq2seq training sample must end with an assistant answer (the decoder target)")
    head = [{"role": "system", "content": system}] if system is not None else []
    source = encode_conversation(head + [{"role": t.role, "content": t.content} for t in turns[:-1]], template,
                                 tokenizer, tokens_per_media=tokens_per_media, num_media=num_media,
                                 placeholders=placeholders, visual_token=visual_token, add_generation_prompt=True)
    if max_length is not None and len(source.input_ids) > max_length:
        raise DataError(f"seq2seq source has {len(source.input_ids)} tokens, over max_length={max_length}; the "
                        f"question and visual tokens are never cut: raise max_length or use fewer visual tokens")
    target = list(tokenizer(turns[-1].content, add_special_tokens=True)["input_ids"])
    return Encoded(source.input_ids, target, source.rendered)


# ---------------------------------------------------------------------------------------------- batching
def pad_sequences(sequences: Sequence[Sequence[int]], pad_value: int,
                  side: Literal["right", "left"] = "right") -> torch.Tensor:
    width = max(len(s) for s in sequences)
    rows = [([pad_value] * (width - len(s)) + list(s)) if side == "left" else (list(s) + [pad_value] * (width - len(s)))
            for s in sequences]
    return torch.tensor(rows, dtype=torch.long)


def collate_encoded(samples: Sequence[Encoded], pad_token_id: int,
                    side: Literal["right", "left"] = "right") -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels (padding labelled -100) for a batch."""
    ids = [s.input_ids for s in samples]
    return {"input_ids": pad_sequences(ids, pad_token_id, side),
            "attention_mask": pad_sequences([[1] * len(i) for i in ids], 0, side),
            "labels": pad_sequences([s.labels for s in samples], IGNORE_INDEX, side)}


# ---------------------------------------------------------------------------------------------- embeddings
def scatter_visual_embeddings(inputs_embeds: torch.Tensor, input_ids: torch.Tensor, visual_token_id: int,
                              visual_embeds: torch.Tensor) -> torch.Tensor:
    """``inputs_embeds`` with the visual-token positions filled, in order, from ``visual_embeds``.

    ``visual_embeds`` is (B, K, D) with exactly K visual tokens in every row, or (N, D) with N visual tokens in
    the whole batch (rows may differ). Any count mismatch raises instead of silently misaligning.
    """
    mask = input_ids == visual_token_id
    width = inputs_embeds.shape[-1]
    if visual_embeds.shape[-1] != width:
        raise DataError(f"visual embeddings are {visual_embeds.shape[-1]} wide, the LLM expects {width}")
    if visual_embeds.dim() == 3:
        per_row = mask.sum(dim=1)
        if visual_embeds.shape[0] != input_ids.shape[0] or bool((per_row != visual_embeds.shape[1]).any()):
            raise DataError(f"visual tokens per row in input_ids {per_row.tolist()} do not match visual embeddings "
                            f"of shape {tuple(visual_embeds.shape)} (batch {visual_embeds.shape[0]}, "
                            f"{visual_embeds.shape[1]} per sample)")
    elif visual_embeds.dim() == 2:
        if int(mask.sum()) != visual_embeds.shape[0]:
            raise DataError(f"input_ids hold {int(mask.sum())} visual tokens but {visual_embeds.shape[0]} visual "
                            f"embeddings were given")
    else:
        raise DataError(f"visual embeddings must be (B, K, D) or (N, D), got shape {tuple(visual_embeds.shape)}")
    source = visual_embeds.reshape(-1, width).to(inputs_embeds.dtype)
    return inputs_embeds.masked_scatter(mask.unsqueeze(-1).expand_as(inputs_embeds), source)
