"""Next-token choice for a batch whose rows each have their own settings.

The order and the arithmetic follow HF ``generate``: repetition penalty on the raw logits (over
the prompt and the output so far), then temperature, top-k and top-p, then a draw; greedy rows
take the argmax after the penalty. So greedy decoding, with or without a penalty, picks what
``generate`` picks.

The draw is the Gumbel-max trick with noise that is a hash of (request seed, step, token id),
not a shared random generator: a request's sampled output depends on its seed and its own
logits only, never on which other requests share the batch or in what order they came.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 (Chris Wellons' integer hash) on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


class Sampler:
    """Per-row settings as tensors, and the step that turns logits into tokens."""

    def __init__(self, vocab_size: int, device: torch.device):
        self.vocab = vocab_size
        self.device = device
        self._token_hash = _hash32(torch.arange(vocab_size, device=device, dtype=torch.int64))

    @staticmethod
    def penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
        """HF's RepetitionPenaltyLogitsProcessor: seen tokens' logits divided (if > 0) or
        multiplied (if < 0) by the row's penalty. ``seen`` is a (rows, vocab) bool mask."""
        p = penalty[:, None]
        penalised = torch.where(logits < 0, logits * p, logits / p)
        return torch.where(seen, penalised, logits)

    def warp(self, logits: torch.Tensor, temperature, top_k, top_p) -> torch.Tensor:
        """Temperature, then top-k, then top-p, as HF's warpers (filtered logits become -inf)."""
        logits = logits / temperature[:, None]
        if bool((top_k > 0).any()):
            k = torch.where(top_k > 0, top_k.clamp(max=self.vocab), torch.full_like(top_k, self.vocab))
            kth = torch.sort(logits, dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if bool((top_p < 1).any()):
            # as TopPLogitsWarper: drop the low tail whose cumulative probability is <= 1 - top_p,
            # always keeping the most likely token
            sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
            cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            remove = cum <= (1 - top_p)[:, None]
            remove[:, -1] = False
            logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
        return logits

    def draw(self, logits: torch.Tensor, seeds: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """One token per row from softmax(logits): argmax(logits + Gumbel noise)."""
        key = _hash32((seeds & _M32) ^ _hash32(steps & _M32))  # (rows,)
        bits = _hash32(self._token_hash[None, :] ^ key[:, None])  # (rows, vocab)
        u = ((bits >> 8).to(torch.float32) + 0.5) / 2**24  # uniform in (0, 1)
        gumbel = -torch.log(-torch.log(u))
        return torch.argmax(logits.float() + gumbel, dim=-1)
