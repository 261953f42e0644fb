"""Evaluation plots: bits per byte per language, for each model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cama.io import atomic_path  # noqa: E402


def plot_bpb(result: dict, out: str | Path) -> None:
    """Grouped bars: one group per language, one bar per model (lower is better)."""
    models = list(result["models"])
    langs = list(next(iter(result["models"].values())))
    x = np.arange(len(langs))
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, name in enumerate(models):
        values = [result["models"][name][lang]["bpb"] or 0.0 for lang in langs]
        bars = ax.bar(x + i * width, values, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, padding=2)
    ax.set_xticks(x + width * (len(models) - 1) / 2, langs)
    ax.set_ylabel("bits per byte (lower is better)")
    ax.set_title("Held-out bits per byte")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
