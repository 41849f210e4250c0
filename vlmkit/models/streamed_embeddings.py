"""Input embeddings made on demand, span by span, for an LLM that reads its input window by window.

A compressing LLM (Video-XL's) keeps only a summary of each window of visual tokens, so its memory need not
grow with the video; the whole visual-token tensor and the whole input-embedding sequence built before it
would. ``StreamedEmbeddings`` stands in for the (B, L, D) ``inputs_embeds``: the LLM reads each row's positions
in order; text positions are embedded as they are read and visual positions are filled from an iterator that
encodes the frames chunk by chunk when a window needs them. At any time only the visual tokens of one chunk
(plus what a window still needs from the previous one) and one window's embeddings exist.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Optional

import torch

from vlmkit.errors import DataError


class RowEmbeddings:
    """One row's embeddings, read with ``span(start, end)`` in increasing, non-overlapping order.

    ``offset``: where the row's positions start (its left padding), so that a reader counts from its first
    valid token. Positions skipped between two spans must not be visual: their tokens would be lost.
    """

    def __init__(self, input_ids: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor], visual_token_id: int,
                 chunks: Iterator[torch.Tensor], offset: int = 0):
        self._ids, self._embed, self._visual_id = input_ids, embed, visual_token_id
        self._chunks, self._offset, self._cursor = chunks, offset, offset
        self._pending: list[torch.Tensor] = []  # encoded visual tokens not placed yet, in order
        self._buffered = 0
        self.peak_buffered = 0  # the most visual tokens held at once: what streaming bounds

    def span(self, start: int, end: int) -> torch.Tensor:
        """Embeddings (end - start, D) of the row's positions [start, end) (counted from ``offset``)."""
        start, end = start + self._offset, end + self._offset
        if start < self._cursor or end < start or end > self._ids.shape[0]:
            raise RuntimeError(f"streamed embeddings are read once, in order: asked for [{start}, {end}) after "
                               f"position {self._cursor} of a row of {self._ids.shape[0]}")
        if bool((self._ids[self._cursor:start] == self._visual_id).any()):
            raise RuntimeError(f"positions [{self._cursor}, {start}) were skipped but hold visual tokens")
        ids = self._ids[start:end]
        embeds = self._embed(ids[None])[0]
        mask = ids == self._visual_id
        count = int(mask.sum())
        if count:  # the same masked scatter as the whole-sequence path, so both give identical embeddings
            embeds = embeds.masked_scatter(mask[:, None].expand_as(embeds), self._take(count).to(embeds.dtype))
        self._cursor = end
        return embeds

    def _take(self, count: int) -> torch.Tensor:
        while self._buffered < count:
            chunk: Optional[torch.Tensor] = next(self._chunks, None)
            if chunk is None:
                raise DataError(f"the row holds more visual placeholders than its video gave tokens (short by "
                                f"{count - self._buffered})")
            self._pending.append(chunk)
            self._buffered += chunk.shape[0]
            self.peak_buffered = max(self.peak_buffered, self._buffered)
        taken, need = [], count
        while need:
            head = self._pending[0]
            if head.shape[0] <= need:
                taken.append(self._pending.pop(0))
                need -= head.shape[0]
            else:
                taken.append(head[:need])
                self._pending[0], need = head[need:], 0
        self._buffered -= count
        return taken[0] if len(taken) == 1 else torch.cat(taken)


class StreamedEmbeddings:
    """Lazy (B, L, D) input embeddings: ``input_ids`` with their visual placeholders filled, row by row, from
    ``visual_rows(row)``, an iterator of (n, D) visual-token chunks of that row's video in sequence order.

    ``embed`` maps ids (1, n) to embeddings (1, n, D). Each row is read once (``row``); ``materialize`` builds
    the whole tensor, for an LLM that turns out not to read windows (e.g. compression switched off).
    """

    def __init__(self, input_ids: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor], visual_token_id: int,
                 visual_rows: Callable[[int], Iterator[torch.Tensor]], tokens_per_row: int):
        per_row = (input_ids == visual_token_id).sum(dim=1)
        if bool((per_row != tokens_per_row).any()):
            raise DataError(f"visual tokens per row in input_ids {per_row.tolist()} do not match the "
                            f"{tokens_per_row} visual tokens each video gives")
        probe = embed(input_ids[:1, :0])  # (1, 0, D): the width and dtype, no work
        self.input_ids, self.embed, self.visual_token_id = input_ids, embed, visual_token_id
        self.visual_rows = visual_rows
        self.shape = torch.Size((*input_ids.shape, probe.shape[-1]))
        self.dtype, self.device = probe.dtype, input_ids.device
        self._read: set[int] = set()

    def row(self, index: int, offset: int = 0) -> RowEmbeddings:
        if index in self._read:
            raise RuntimeError(f"row {index} of the streamed embeddings was already read: its video is encoded "
                               f"as it is read, once")
        self._read.add(index)
        return RowEmbeddings(self.input_ids[index], self.embed, self.visual_token_id, iter(self.visual_rows(index)),
                             offset)

    def materialize(self) -> torch.Tensor:
        length = self.shape[1]
        return torch.stack([self.row(i).span(0, length) for i in range(self.shape[0])])
