"""Padding-free packing: several examples share one row, each attending only to itself.

A *row* holds whole examples up to ``pack_length`` tokens. Within it:

- ``position_ids`` restart at 0 at every example, so RoPE sees each example as it would alone;
- attention is confined to each example (a block-diagonal causal mask; how it is computed on
  each device is ``cama.lora.model``'s business, from ``cu_seq_lens``);
- ``labels`` are the token ids where the assistant mask is set and -100 elsewhere, and the
  first token of every example is -100, so the shifted loss never asks the last token of one
  example to predict the first of the next.

Rows are planned once, before training, from a seeded shuffle per epoch: best-fit decreasing
inside consecutive windows of the shuffled order (examples stay near their draw position, and
rows come out nearly full: ``fill`` in the stats). The plan is a plain list, so step k always
trains on the same examples and a resumed run skips exactly the rows already trained.

The collator concatenates the rows of a micro-batch into one sequence (batch dimension 1) and
may pad it to a fixed length (``pad_to``), so that compiled blocks see one shape. Padding is
an extra "example" of its own with no labels.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

IGNORE = -100


def best_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Pack items (by index) into bins of ``capacity``, best-fit decreasing; bins in first-item order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    open_: list[tuple[int, int]] = []  # (room left, bin), sorted: the tightest fit is a bisect away
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"an example of {n} tokens does not fit a row of {capacity}")
        k = bisect.bisect_left(open_, (n, -1))
        if k == len(open_):
            bins.append([i])
            bisect.insort(open_, (capacity - n, len(bins) - 1))
        else:
            room, b = open_.pop(k)
            bins[b].append(i)
            bisect.insort(open_, (room - n, b))
    for b in bins:
        b.sort()
    bins.sort(key=lambda b: b[0])
    return bins


def plan_rows(
    lengths: Sequence[int], pack_length: int, *, epochs: int = 1, seed: int = 0, window: int = 512
) -> list[list[int]]:
    """Rows of example indices for ``epochs`` passes, each over a fresh seeded shuffle."""
    lengths = np.asarray(lengths)
    rows: list[list[int]] = []
    for epoch in range(epochs):
        perm = np.random.default_rng([seed, epoch]).permutation(len(lengths))
        for start in range(0, len(perm), window):
            chunk = perm[start : start + window]
            for b in best_fit([int(lengths[i]) for i in chunk], pack_length):
                rows.append([int(chunk[j]) for j in b])
    return rows


def row_arrays(examples: Sequence, indices: Sequence[int]) -> dict[str, np.ndarray]:
    """One row: ids, labels, position ids, and the example lengths."""
    ids = np.concatenate([examples[i].input_ids for i in indices]).astype(np.int64)
    labels = np.concatenate(
        [np.where(examples[i].mask, examples[i].input_ids, IGNORE) for i in indices]
    ).astype(np.int64)
    lens = np.array([len(examples[i]) for i in indices], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    labels[starts] = IGNORE  # the shifted target across an example boundary
    positions = np.arange(len(ids)) - np.repeat(starts, lens)
    return {"input_ids": ids, "labels": labels, "position_ids": positions, "seq_lens": lens}


class PackedRows:
    """A map-style dataset of planned rows (what the Trainer's sampler indexes)."""

    def __init__(self, examples: Sequence, rows: list[list[int]]):
        self.examples, self.rows = examples, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> dict[str, np.ndarray]:
        return row_arrays(self.examples, self.rows[r])


def fill_stats(examples: Sequence, rows: list[list[int]], pack_length: int) -> dict:
    tokens = sum(len(examples[i]) for row in rows for i in row)
    return {
        "rows": len(rows),
        "examples_per_row": round(sum(len(r) for r in rows) / max(len(rows), 1), 2),
        "tokens": tokens,
        "fill": round(tokens / max(len(rows) * pack_length, 1), 4),
    }


class PackedCollator:
    """Rows of a micro-batch -> one flat sequence (batch 1) with ``cu_seq_lens``.

    ``pad_to``: pad the sequence to this many tokens (a fixed shape for compiled blocks); the
    padding is one more example, with no labels. ``cu_seq_lens`` (int32) bounds each example.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        ids = np.concatenate([r["input_ids"] for r in rows])
        labels = np.concatenate([r["labels"] for r in rows])
        pos = np.concatenate([r["position_ids"] for r in rows])
        lens = np.concatenate([r["seq_lens"] for r in rows])
        n = len(ids)
        if self.pad_to is not None:
            if n > self.pad_to:
                raise ValueError(f"a micro-batch of {n} tokens exceeds pad_to {self.pad_to}")
            pad = self.pad_to - n
            if pad:
                ids = np.concatenate([ids, np.full(pad, self.pad_id)])
                labels = np.concatenate([labels, np.full(pad, IGNORE)])
                pos = np.concatenate([pos, np.arange(pad)])
                lens = np.concatenate([lens, [pad]])
        extra = {}
        if "sample_index" in rows[0]:  # the core's data-order log (cama.train.data.WithIndex)
            extra["sample_index"] = torch.tensor([r["sample_index"] for r in rows], dtype=torch.long)
        cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        # the loss's answer positions, found here on the CPU so the training step needs no device sync
        target = np.append(labels[1:], IGNORE)
        positions = np.flatnonzero(target != IGNORE)
        doc = np.repeat(np.arange(len(lens), dtype=np.int32), lens)
        return {
            "input_ids": torch.from_numpy(ids).long()[None],  # (1, T)
            "labels": torch.from_numpy(labels).long()[None],  # (1, T)
            "position_ids": torch.from_numpy(pos).long()[None],  # (1, T)
            "cu_seq_lens": torch.from_numpy(cu),  # (examples + 1,)
            "doc_ids": torch.from_numpy(doc),  # (T,) which example each token belongs to
            "loss_positions": torch.from_numpy(positions),  # (N,) positions that predict an answer token
            "loss_targets": torch.from_numpy(target[positions]),  # (N,) those tokens
            "num_tokens": torch.tensor(n),  # real tokens (before padding): the core counts these
            **extra,
        }
