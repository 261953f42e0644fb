"""Packing sentences into samples: pure functions over token counts.

Everything here works on lengths only. A document is its token array with BOS in front
and EOS at the end, cut into consecutive sentences; a sample is then a contiguous slice
``[start, end)`` of that array, so these functions return spans and the caller slices.

**Greedy** (the seed's forward pass): fill each sample with consecutive whole sentences
while the total stays ≤ ``max_length``; never across documents. A sentence longer than
``max_length`` is first cut into chunks of ``max_length`` tokens (the last one shorter),
and the chunks pack like sentences. A sample of ≤ ``min_tokens`` tokens is dropped.
The seed also ran a backward pass that prepended earlier sentences to each sample, so
consecutive samples overlapped; we leave it out, because it trains on the same sentences
twice and every sentence should appear exactly once.

**Best-fit-decreasing** (Ding et al., "Fewer Truncations Improve Language Modeling",
ICML 2024): a document that fits is one piece; a longer one is cut at sentence
boundaries by the greedy rule. The pieces are then placed, longest first, each into the
open sample with the least room that still holds it. Samples then hold several
documents, each starting with BOS, and there are fewer of them, with less padding.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Span = tuple[int, int]


@dataclass
class Packed:
    """The result of packing one document."""

    spans: list[Span] = field(default_factory=list)  # kept samples, [start, end) token offsets
    sentences: list[int] = field(default_factory=list)  # sentences (or chunks) per kept sample
    dropped: list[Span] = field(default_factory=list)  # samples of ≤ min_tokens tokens
    chunked: int = 0  # sentences longer than max_length, cut into chunks


def with_specials(lengths: Sequence[int], bos: bool = True, eos: bool = True) -> list[int]:
    """Sentence lengths once BOS joins the first sentence and EOS the last."""
    out = [int(n) for n in lengths]
    if not out:
        return out
    out[0] += bos
    out[-1] += eos
    return out


def check_max_length(max_length: int, specials: int = 2) -> None:
    """A sample must at least hold BOS and EOS around one token."""
    from cama.errors import ConfigError

    if max_length < specials + 1:
        raise ConfigError(
            f"pack.max_length: {max_length} leaves no room for a token between BOS and EOS "
            f"(needs ≥ {specials + 1})"
        )


def greedy_pack(lengths: Sequence[int], max_length: int, min_tokens: int = 0) -> Packed:
    """Pack consecutive sentences of one document into samples of ≤ ``max_length`` tokens.

    ``lengths`` are the token counts of the sentences, BOS/EOS included (``with_specials``).
    Zero-length sentences are allowed and ride along with their neighbours.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be ≥ 1, got {max_length}")
    out = Packed()
    start = pos = 0  # current sample [start, pos); pos = offset of the next sentence
    count = 0  # pieces in the current sample

    def close() -> None:
        nonlocal start, count
        if pos > start:
            if pos - start > min_tokens:
                out.spans.append((start, pos))
                out.sentences.append(count)
            else:
                out.dropped.append((start, pos))
        start, count = pos, 0

    for n in lengths:
        n = int(n)
        if n > max_length:
            # cut into chunks of max_length; the first chunk starts a sample of its own
            out.chunked += 1
            close()
            full, rest = divmod(n, max_length)
            for _ in range(full):
                pos += max_length
                count = 1
                close()
            if rest:
                pos += rest
                count = 1  # the tail packs like a sentence with what follows
            continue
        if pos + n - start > max_length:
            close()
        pos += n
        count += 1
    close()
    return out


def doc_pieces(lengths: Sequence[int], max_length: int) -> list[Span]:
    """Best-fit's pieces of one document: the whole of it if it fits, else greedy spans."""
    total = int(sum(lengths))
    if total <= max_length:
        return [(0, total)] if total else []
    return greedy_pack(lengths, max_length, min_tokens=0).spans


def best_fit_decreasing(sizes: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins (lists of item indices) from best-fit-decreasing; every size must be ≤ capacity.

    Items are taken longest first (ties: lower index first); each goes into the open bin
    with the least room left that still holds it (ties: the older bin), or a new bin.
    Deterministic, O(n log n) plus list insertions.
    """
    order = sorted(range(len(sizes)), key=lambda i: (-int(sizes[i]), i))
    bins: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (room left, bin id), kept sorted
    for i in order:
        size = int(sizes[i])
        if size > capacity:
            raise ValueError(f"item {i} of size {size} exceeds capacity {capacity}")
        j = bisect.bisect_left(room, (size, -1))
        if j < len(room):
            left, b = room.pop(j)
        else:
            left, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if left - size > 0:
            bisect.insort(room, (left - size, b))
    return bins


def padding_fraction(sample_lengths: Sequence[int] | np.ndarray, max_length: int) -> float:
    """Share of a batch padded to max_length that would be padding."""
    lengths = np.asarray(sample_lengths, dtype=np.int64)
    if lengths.size == 0:
        return 0.0
    return float(1.0 - lengths.sum() / (lengths.size * max_length))
