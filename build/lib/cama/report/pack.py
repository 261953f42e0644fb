"""The packing report: the histogram of sample lengths per language, and the packing figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cama.io import atomic_path, read_json  # noqa: E402


def plot_sample_lengths(stats: dict, out: str | Path) -> None:
    edges = stats["hist_edges"]
    langs = stats["langs"]
    fig, axes = plt.subplots(1, len(langs) or 1, figsize=(4.2 * max(1, len(langs)), 3.2), squeeze=False)
    for ax, (lang, st) in zip(axes.flat, langs.items(), strict=False):
        ax.bar(edges[:-1], st["hist"], width=[b - a for a, b in zip(edges[:-1], edges[1:], strict=True)],
               align="edge", color="#3182bd")
        ax.set_title(
            f"{lang}: {st['samples']:,} samples, {st['tokens']:,} tokens\n"
            f"padding {st['padding_fraction']:.1%}, mean {st['mean_sample_tokens']:.0f} tokens/sample",
            fontsize=9,
        )
        ax.set_xlabel("tokens per sample")
        ax.tick_params(labelsize=8)
    axes.flat[0].set_ylabel("samples")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def pack_report(stats: str, out_lengths: str) -> None:
    plot_sample_lengths(read_json(stats), out_lengths)
