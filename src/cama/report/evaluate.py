"""Evaluation plots: bits per byte per language, for each model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cama.io import atomic_path  # noqa: E402


def grouped_bars(labels: list[str], series: dict[str, list[float]], *, ylabel: str, title: str, out: str | Path,
                 fmt: str = "{:.2f}", ylim: tuple[float, float] | None = None, width_per_group: float = 0) -> None:
    """One group of bars per label, one bar per series (a model), values printed on the bars."""
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6, width_per_group * len(labels) + 2), 3.6))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + i * width, values, width, label=name)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(x + width * (len(series) - 1) / 2, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_bpb(result: dict, out: str | Path) -> None:
    """Grouped bars: one group per language, one bar per model (lower is better)."""
    langs = list(next(iter(result["models"].values())))
    series = {name: [per[lang]["bpb"] or 0.0 for lang in langs] for name, per in result["models"].items()}
    grouped_bars(langs, series, ylabel="bits per byte (lower is better)", title="Held-out bits per byte", out=out)


def plot_ie(result: dict, out: str | Path) -> None:
    """Grouped bars of F1: one group per (set, tuple kind) and one for all tuples, a bar per model."""
    groups = [(name, kind) for name, meta in result["sets"].items() for kind in meta["gold"]]
    labels = [f"{name}\n{kind}" for name, kind in groups] + ["all tuples"]
    series = {}
    for m, res in result["models"].items():
        values = [100 * res["by_set"][name]["scores"][kind]["f1"] for name, kind in groups]
        err = 100 * res["overall"]["format_error_rate"]
        series[f"{m} (format errors {err:.0f}%)"] = [*values, 100 * res["overall"]["all_tuples"]["f1"]]
    grouped_bars(labels, series, ylabel="micro F1 (%)", title="IE: exact-match micro F1 per evaluation set",
                 out=out, fmt="{:.0f}", ylim=(0, 105), width_per_group=0.9)


def ie_table_html(result: dict, out: str | Path) -> None:
    """The IE scores as an HTML page: F1 (P/R) per set and model, gold counts, format errors,
    finish reasons, and a few unparseable answers per model."""
    import html

    models = list(result["models"])
    esc = html.escape
    rows = []
    for name, meta in result["sets"].items():
        for kind, gold in meta["gold"].items():
            cells = []
            for m in models:
                s = result["models"][m]["by_set"][name]["scores"][kind]
                cells.append(f"<td>{100 * s['f1']:.1f}<br><small>P {100 * s['p']:.1f} / R {100 * s['r']:.1f}"
                             f"<br>{s['tp']}/{s['pred']} pred</small></td>")  # fmt: skip
            rows.append(f"<tr><td>{esc(name)}</td><td>{meta['task']}</td><td>{meta['lang']}</td><td>{kind}</td>"
                        f"<td>{gold}</td><td>{meta['records']}</td>{''.join(cells)}</tr>")  # fmt: skip
    summary = []
    for label, key in (("all tuples, micro F1", "all_tuples"),):
        summary.append(f"<tr><th colspan=6>{label}</th>" + "".join(
            f"<td><b>{100 * result['models'][m]['overall'][key]['f1']:.1f}</b></td>" for m in models) + "</tr>")  # fmt: skip
    summary.append("<tr><th colspan=6>format errors (records)</th>" + "".join(
        f"<td>{result['models'][m]['overall']['format_errors']}/{result['models'][m]['overall']['records']} "
        f"({100 * result['models'][m]['overall']['format_error_rate']:.1f}%)</td>" for m in models) + "</tr>")  # fmt: skip
    summary.append("<tr><th colspan=6>finish: EOS / cut at length</th>" + "".join(
        f"<td>{result['models'][m]['overall']['finish'].get('eos', 0)} / "
        f"{result['models'][m]['overall']['finish'].get('length', 0)}</td>" for m in models) + "</tr>")  # fmt: skip
    for lang in sorted({meta["lang"] for meta in result["sets"].values()}):
        summary.append(f"<tr><th colspan=6>{lang}: all tuples, micro F1</th>" + "".join(
            f"<td>{100 * result['models'][m]['by_lang'][lang]['all_tuples']['f1']:.1f}</td>" for m in models) + "</tr>")  # fmt: skip
    examples = []
    for m in models:
        for name, res in result["models"][m]["by_set"].items():
            for ex in res["format_error_examples"][:2]:
                examples.append(f"<tr><td>{esc(m)}</td><td>{esc(name)}</td><td>{esc(ex['format'])}</td>"
                                f"<td>{esc(ex['error'])}</td><td><pre>{esc(ex['generation'])}</pre></td></tr>")  # fmt: skip
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>IE evaluation</title>
<style>table{{border-collapse:collapse;font:13px sans-serif}}td,th{{border:1px solid #ccc;padding:3px 6px;
vertical-align:top}}pre{{white-space:pre-wrap;max-width:40em;margin:0}}</style></head><body>
<h2>IE: exact-match micro F1 (%)</h2>
<p>{esc(result['scheme'])}. Generation: {esc(str(result.get('generation') or 'greedy'))}.</p>
<table><tr><th>set</th><th>task</th><th>lang</th><th>tuples</th><th>gold</th><th>records</th>
{''.join(f'<th>{esc(m)}</th>' for m in models)}</tr>
{''.join(rows)}{''.join(summary)}</table>
<h3>Unparseable answers (first two per model and set)</h3>
<table><tr><th>model</th><th>set</th><th>format</th><th>error</th><th>generation</th></tr>{''.join(examples)}</table>
</body></html>"""
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
