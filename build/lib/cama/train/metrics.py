"""Throughput accounting and the loss curve.

MFU, as in ANCHORS: tokens/s × (6·N_nonembedding + 6·L·d·s) / peak, where the second term
is causal attention (12·L·d·s halved) and the input embedding table costs no matmul.
Recomputation under gradient checkpointing is not counted: it is not model work.
"""

from __future__ import annotations

import os
from pathlib import Path

from cama.io import atomic_path

# Dense bf16/fp16 peaks, TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "V100": 125.0}


def peak_tflops(device_name: str | None, override: float | None = None) -> float | None:
    """The device's dense peak, or None when unknown (CPU)."""
    if override:
        return override
    if not device_name:
        return None
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    return None


def flops_per_token(non_embedding_params: int, layers: int, hidden: int, seq: int) -> float:
    """Training FLOPs per token: 6N for the matmuls plus causal attention."""
    return 6.0 * non_embedding_params + 6.0 * layers * hidden * seq


def mfu(tokens_per_s: float, flops_tok: float, peak: float | None, devices: int = 1) -> float | None:
    """Fraction of ``devices`` × ``peak`` TFLOP/s that the model's work used."""
    if not peak:
        return None
    return tokens_per_s * flops_tok / (peak * 1e12 * devices)


def plot_loss(log_history: list[dict], out_png: str | os.PathLike, title: str = "training loss") -> None:
    """Training loss, validation loss where there is one, and the learning rate on a second
    axis, against step. Written atomically (a temporary name, then a rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in log_history if "loss" in r and "step" in r]
    evals = [r for r in log_history if "eval_loss" in r and "step" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="C0", label="train loss")
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", color="C2", label="validation loss")
        ax.legend(loc="upper right")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="C0")
    lrs = [r for r in rows if "learning_rate" in r]
    if lrs:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in lrs], [r["learning_rate"] for r in lrs], color="C1", alpha=0.6)
        ax2.set_ylabel("learning rate", color="C1")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format=Path(out_png).suffix.lstrip(".") or "png")
    plt.close(fig)
