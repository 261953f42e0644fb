"""A PyTorch Dataset over ``shards/blend.json``, for the training stage.

Sample ``i`` of the blend is found in two deterministic steps:

1. **Which source.** Each source ``s`` with weight ``w_s`` is given the ideal positions
   ``(j + 0.5) / w_s`` for its j-th draw; merging them in order interleaves the sources
   smoothly, so every prefix of the blend holds each source in proportion to its weight
   (the counts are within one of ``w_s · n``, like Megatron's BlendedDataset).
2. **Which sample of that source.** The j-th draw from a source reads
   ``perm_e[j % n_s]`` where ``perm_e`` is a permutation of the source's samples seeded by
   ``(seed, source, e = j // n_s)``. A source drawn more often than it has samples
   (upsampled) goes through them in a fresh order each pass.

``skip`` drops the first N samples of this fixed order, so a resumed run continues where
the previous one stopped without repeating data (the seed's users had to rebuild the
dataset minus what they had trained on).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from cama.io import read_json
from cama.pack.indexed import IndexedReader

try:  # torch is only needed to hand tensors to a trainer
    import torch
    from torch.utils.data import Dataset
except ImportError:  # pragma: no cover
    torch = None
    Dataset = object


def interleave(weights: list[float], n: int) -> np.ndarray:
    """Source index of each of the first ``n`` draws, smooth and proportional to ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    positions, owners = [], []
    for s, ws in enumerate(w):
        if ws <= 0:
            continue
        j = np.arange(int(np.ceil(n * ws / w.sum())) + 1, dtype=np.float64)
        positions.append((j + 0.5) / (ws / w.sum()))
        owners.append(np.full(j.size, s, dtype=np.int32))
    if not positions:
        return np.empty(0, dtype=np.int32)
    pos, own = np.concatenate(positions), np.concatenate(owners)
    order = np.lexsort((own, pos))  # by position, ties by source order
    return own[order][:n]


def _seed_for(seed: int, source: str, epoch: int) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{source}\x00{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class BlendDataset(Dataset):
    """``ds[i]`` -> ``{"input_ids": LongTensor}``; ``len(ds)`` = ``num_samples - skip``.

    ``num_samples`` defaults to the total number of samples in the blend (one pass of
    the mixture); larger values upsample by weight.
    """

    def __init__(
        self,
        blend: str | os.PathLike,
        seed: int = 0,
        num_samples: int | None = None,
        skip: int = 0,
        as_numpy: bool = False,
    ):
        self.path = Path(blend)
        spec = read_json(self.path)
        base = self.path.resolve().parent
        self.seed, self.as_numpy = seed, as_numpy or torch is None
        # group the shard readers of each source; a source's samples are its shards in order
        self.sources: list[str] = []
        self.readers: list[list[IndexedReader]] = []
        self.offsets: list[np.ndarray] = []
        weights = []
        for name, info in spec["sources"].items():
            shards = [IndexedReader(base / d["prefix"]) for d in spec["datasets"] if d["source"] == name and d["samples"]]
            if not shards or info["weight"] <= 0:
                continue
            self.sources.append(name)
            self.readers.append(shards)
            self.offsets.append(np.cumsum([0] + [len(r) for r in shards]))
            weights.append(info["weight"])
        self.sizes = [int(o[-1]) for o in self.offsets]
        total = num_samples if num_samples is not None else sum(self.sizes)
        if skip < 0 or skip > total:
            raise ValueError(f"skip={skip} is outside 0..{total}")
        self.skip, self.total = skip, total
        self.owner = interleave(weights, total)
        # j-th draw of its source, for every position: a running count per source
        self.draw = np.empty(total, dtype=np.int64)
        for s in range(len(self.sources)):
            mask = self.owner == s
            self.draw[mask] = np.arange(int(mask.sum()))
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return self.total - self.skip

    def _perm(self, s: int, epoch: int) -> np.ndarray:
        key = (s, epoch)
        if key not in self._perms:
            rng = np.random.default_rng(_seed_for(self.seed, self.sources[s], epoch))
            self._perms[key] = rng.permutation(self.sizes[s])
        return self._perms[key]

    def locate(self, i: int) -> tuple[str, int]:
        """(source, sample index within that source) of item ``i`` (after the skip)."""
        g = i + self.skip
        s, j = int(self.owner[g]), int(self.draw[g])
        epoch, k = divmod(j, self.sizes[s])
        return self.sources[s], int(self._perm(s, epoch)[k])

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        g = i + self.skip
        s = int(self.owner[g])
        _, k = self.locate(i)
        shard = int(np.searchsorted(self.offsets[s], k, side="right")) - 1
        tokens = np.array(self.readers[s][shard][k - int(self.offsets[s][shard])], dtype=np.int64)
        return {"input_ids": tokens if self.as_numpy else torch.from_numpy(tokens)}

