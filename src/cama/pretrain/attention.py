"""How attention runs: SDPA's causal fast path under torch.compile, and which SDPA kernel.

**The causal fast path.** transformers hands SDPA no mask and ``is_causal=True`` when a batch
has no padding, so the kernel skips the blocks above the diagonal. While torch.compile traces
the model (torch < 2.14) it cannot tell, so it materialises the full (length × length) causal
mask instead: the kernel then computes every block and masks half of them, and the key/value
heads are repeated in memory (no grouped-query kernel takes a mask). On one H100 that made
attention 90 of the 297 ms of a step. ``CAUSAL_SDPA`` is transformers' own SDPA attention with
a mask function that returns no mask whenever the mask would be plain causal (no padding, no
cache, no custom mask), traced or not; any other mask is built as before.

PyTorch's ``scaled_dot_product_attention`` picks the first kernel, in a fixed priority order,
that accepts the inputs: cuDNN, FlashAttention-2, memory-efficient or math. At the pretraining
shape (causal, head size 64, grouped-query, bf16, length 2048) the order matters on Hopper:
``benchmarks/attention_kernels.py`` measures each kernel there, and ``AUTO`` is the one it
found fastest (the figures are in the README). ``sdpa_priority`` puts the chosen kernel
first and keeps the others behind it, so inputs the first cannot take (a padding mask, say)
still run.
"""

from __future__ import annotations

import contextlib
from typing import Literal

SdpaBackend = Literal["auto", "flash", "cudnn", "efficient", "math"]
NAMES = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}
AUTO = "cudnn"
"""What ``auto`` means (see the module docstring for why)."""


def resolve(name: str) -> str:
    return AUTO if name == "auto" else name


def sdpa_priority(name: str) -> list:
    """SDPBackends with ``name`` first and the rest in PyTorch's own order behind it."""
    from torch.nn.attention import SDPBackend

    first = resolve(name)
    order = [first] + [n for n in ("cudnn", "flash", "efficient", "math") if n != first]
    return [getattr(SDPBackend, NAMES[n]) for n in order]


def sdpa_context(name: str, cuda: bool):
    """A context in which SDPA tries ``name`` first; nothing changes on CPU (one kernel family)."""
    if not cuda:
        return contextlib.nullcontext()
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel(sdpa_priority(name), set_priority=True)


CAUSAL_SDPA = "sdpa_causal"
"""The attention implementation name registered by ``register_causal_sdpa``."""


def causal_sdpa_mask(**kw):
    """transformers' ``sdpa_mask``, but None (SDPA's ``is_causal``) whenever the mask is plain causal."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    q_length = kw["q_length"] if "q_length" in kw else kw["cache_position"].shape[0]  # 5.24 / older 5.x
    offsets = (kw.get("q_offset", 0), kw.get("kv_offset", 0))
    plain_causal = (
        kw.get("allow_is_causal_skip", True)
        and kw.get("attention_mask") is None
        and kw.get("mask_function", causal_mask_function) is causal_mask_function
        and kw.get("local_size") is None
        and all(isinstance(o, int) and o == 0 for o in offsets)
        and q_length == kw["kv_length"]
    )
    return None if plain_causal else sdpa_mask(**kw)


def register_causal_sdpa() -> str:
    """Register ``CAUSAL_SDPA`` with transformers (idempotent); return its name."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(CAUSAL_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(CAUSAL_SDPA, causal_sdpa_mask)
    return CAUSAL_SDPA
