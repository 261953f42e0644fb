"""Which SDPA kernel runs attention on the GPU.

PyTorch's ``scaled_dot_product_attention`` picks the first kernel, in a fixed priority order,
that accepts the inputs: cuDNN, FlashAttention-2, memory-efficient or math. At the pretraining
shape (causal, head size 64, grouped-query, bf16, length 2048) the kernels differ a lot;
``benchmarks/attention_kernels.py`` measured them on one H100 (torch 2.11, forward + backward,
as the MFU formula counts work): cuDNN 275 TFLOP/s, FlashAttention-2 188, FlexAttention 189,
memory-efficient 82 (it takes no grouped-query inputs, so the heads are repeated first).
``AUTO`` is the fastest, cuDNN, which is also PyTorch's own first choice there; the setting
exists for GPUs and versions where that differs. ``sdpa_priority`` puts the chosen kernel
first and keeps the others behind it, so inputs the first cannot take still run.
"""

from __future__ import annotations

import contextlib

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
