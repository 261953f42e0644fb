"""The data side of the core: a padding collator, epochs drawn in a fixed order, the index log.

The core reads its training dataset **in order**, exactly ``max_steps × global batch`` items,
so that step k always trains on the same items and a resumed run skips exactly what was
trained. A stage whose dataset is already a seeded order of that length (pretraining's
blend) passes it as it is; a stage that trains for epochs over a fixed set (instruction
tuning) wraps it in ``Epochs``, a fresh seeded permutation per pass.
"""

from __future__ import annotations

import numpy as np


class PackedCollator:
    """Right-pad samples; labels are -100 on padding so it carries no loss.

    An item is ``{"input_ids": ids}`` (every token is a label: pretraining) or also
    ``{"labels": ids}`` with -100 where no loss is wanted (instruction tuning: the prompt).
    With ``pad_to`` every batch has that length (fixed shapes); otherwise the longest item.
    A batch with no padding gets no attention mask, so SDPA can take its causal fast path.
    ``sample_index`` (the data position of each row) travels along for the data-order log.
    """

    def __init__(self, pad_id: int, pad_to: int | None = None):
        self.pad_id, self.pad_to = pad_id, pad_to

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        n = max(n, self.pad_to or 0)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for r, b in enumerate(batch):
            t = torch.as_tensor(b["input_ids"], dtype=torch.long)  # (len,)
            ids[r, : t.numel()] = t
            mask[r, : t.numel()] = 1
            labels[r, : t.numel()] = torch.as_tensor(b["labels"], dtype=torch.long) if "labels" in b else t
        out = {"input_ids": ids, "labels": labels}
        if not bool(mask.all()):  # on the CPU, in the loader: no device sync
            out["attention_mask"] = mask
        if "sample_index" in batch[0]:
            out["sample_index"] = torch.tensor([b["sample_index"] for b in batch], dtype=torch.long)
        return out


class Epochs:
    """``num_samples`` items of ``dataset``, pass after pass, each pass a permutation seeded by
    ``(seed, pass)``: the same order on every rank and every rerun."""

    def __init__(self, dataset, num_samples: int, seed: int):
        if len(dataset) == 0:
            raise ValueError("Epochs: the dataset is empty")
        self.dataset, self.total, self.seed = dataset, num_samples, seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.total

    def index(self, i: int) -> int:
        """The dataset index of item ``i``."""
        epoch, k = divmod(i, len(self.dataset))
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        return int(self._perms[epoch][k])

    def __getitem__(self, i: int):
        if not 0 <= i < self.total:
            raise IndexError(i)
        return self.dataset[self.index(i)]


class WithIndex:
    """A dataset with each item's position attached (``sample_index``, for the data-order log).

    ``offset`` is added to the position (a dataset that already skips its first N items)."""

    def __init__(self, ds, offset: int = 0):
        self.ds, self.offset = ds, offset

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.ds[i])
        item["sample_index"] = i + self.offset
        return item
