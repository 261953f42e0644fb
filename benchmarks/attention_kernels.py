"""GPU benchmark: causal attention, forward + backward, for each SDPA kernel at the pretraining shape.

The shape is the TinyLlama-1.1B one at length 2048 (32 query heads, 4 key/value heads, head
size 64, bf16, micro-batch 8). The baseline is ``default``: SDPA with PyTorch's own priority
order, which is what transformers' sdpa attention gets unless told otherwise. Each kernel runs
with grouped-query attention done inside SDPA (``enable_gqa``, what transformers passes when
there is no mask) and with the key/value heads repeated beforehand (what it does with a mask),
plus FlexAttention (compiled) with a causal block mask. TFLOP/s counts the work as the MFU
formula does: 3 × the causal forward (2·s²·d per sequence and layer).

    python benchmarks/attention_kernels.py [--batch 8] [--seq 2048] [--json out.json]

Prints a table and the ratio of the fastest to ``default``. ``cama.train.attention.AUTO``
is set from this measurement.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, warmup: int = 5, iters: int = 20) -> float:
    """Milliseconds per call, by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def inputs(b: int, s: int, h: int, kv: int, d: int, layout: str):
    """(batch, heads, length, head size) tensors; ``bshd``: transposed views of (b, s, h, d)
    storage, as a model's projections make them."""

    def make(heads):
        shape = (b, s, heads, d) if layout == "bshd" else (b, heads, s, d)
        t = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        return (t.transpose(1, 2) if layout == "bshd" else t).detach().requires_grad_()

    return make(h), make(kv), make(kv)


def sdpa_step(q, k, v, backend, gqa: bool):
    from torch.nn.attention import sdpa_kernel

    groups = q.shape[1] // k.shape[1]
    grad = torch.randn_like(q)

    def step():
        kk, vv = (k, v) if gqa else (k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1))
        if backend is None:
            out = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)
        else:
            with sdpa_kernel(backend):
                out = F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=gqa)
        torch.autograd.grad(out, (q, k, v), grad)  # no accumulation into .grad

    return step


def flex_step(q, k, v):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    s = q.shape[2]
    mask = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, s, s, device="cuda")
    flex = torch.compile(flex_attention, dynamic=False)
    grad = torch.randn_like(q)

    def step():
        torch.autograd.grad(flex(q, k, v, block_mask=mask, enable_gqa=True), (q, k, v), grad)

    return step


def main() -> None:
    from torch.nn.attention import SDPBackend

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--layout", choices=("bshd", "bhsd"), default="bshd", help="memory layout of q, k, v")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    q, k, v = inputs(a.batch, a.seq, a.heads, a.kv_heads, a.head_dim, a.layout)
    flops = 3 * 2 * a.batch * a.heads * a.seq * a.seq * a.head_dim  # 3 × causal forward
    kernels = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION}  # fmt: skip
    rows = []
    for name, backend in kernels.items():
        for gqa in (True, False):
            try:
                ms = timed(sdpa_step(q, k, v, backend, gqa))
                rows.append({"kernel": name, "gqa": "in kernel" if gqa else "repeated", "ms": ms})
            except RuntimeError as e:  # a kernel that refuses these inputs
                rows.append({"kernel": name, "gqa": "in kernel" if gqa else "repeated", "error": str(e)[:100]})
            torch.cuda.empty_cache()
    try:
        rows.append({"kernel": "flex (compiled)", "gqa": "in kernel", "ms": timed(flex_step(q, k, v))})
    except Exception as e:  # noqa: BLE001 - report, don't stop the table
        rows.append({"kernel": "flex (compiled)", "gqa": "in kernel", "error": f"{type(e).__name__}: {str(e)[:100]}"})
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, b{a.batch} s{a.seq} h{a.heads} "
          f"kv{a.kv_heads} d{a.head_dim}, {a.layout}, causal, bf16, forward + backward")  # fmt: skip
    print("| kernel | GQA | ms | TFLOP/s |\n|---|---|---|---|")
    for r in rows:
        if "ms" in r:
            r["tflops"] = flops / r["ms"] / 1e9
            print(f"| {r['kernel']} | {r['gqa']} | {r['ms']:.2f} | {r['tflops']:.0f} |")
        else:
            print(f"| {r['kernel']} | {r['gqa']} | failed: {r['error']} | |")
    ok = [r for r in rows if "ms" in r]
    base = next(r for r in ok if r["kernel"] == "default" and r["gqa"] == "in kernel")
    best = min(ok, key=lambda r: r["ms"])
    print(f"fastest: {best['kernel']} ({best['gqa']}), {base['ms'] / best['ms']:.2f}x default")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows, "best": best}, f)


if __name__ == "__main__":
    main()
