"""The instruction-set report: a table per task × lang × source and a plot of the mix."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cama.io import atomic_path, read_json  # noqa: E402

REJECTIONS = ("decontaminated", "duplicate_exact", "duplicate_near", "mixture_dropped")


def instruct_table(stats: dict) -> str:
    """An HTML page: the training mix, what each source lost and why, translation, decontamination."""
    esc = html.escape
    out = [
        "<html><head><meta charset='utf-8'><title>Instruction set</title>",
        "<style>td,th{padding:2px 8px;text-align:right}td:nth-child(-n+3){text-align:left}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}</style></head><body>",
    ]
    out.append(
        f"<h2>Training mix: {stats['train']['records']:,} records, {stats['train']['tokens']:,} tokens; "
        f"validation {stats['val']['records']:,}</h2>"
    )
    out.append(
        "<table><tr><th>task</th><th>lang</th><th>source</th><th>records</th><th>tokens</th>"
        "<th>share of records</th><th>share of tokens</th></tr>"
    )
    for r in stats["table"]:
        out.append(
            f"<tr><td>{esc(r['task'])}</td><td>{esc(r['lang'])}</td><td>{esc(r['source'])}</td>"
            f"<td>{r['records']:,}</td><td>{r['tokens']:,}</td><td>{r['share']:.1%}</td>"
            f"<td>{r['token_share']:.1%}</td></tr>"
        )
    out.append("</table>")
    if stats["missing_cells"]:
        out.append(f"<p>No training records for: {esc(', '.join(stats['missing_cells']))}.</p>")
    out.append(
        "<h2>Per source: records in, left out and why</h2><table><tr><th>source</th><th>in</th>"
        + "".join(f"<th>{k}</th>" for k in REJECTIONS)
        + "<th>val</th><th>train</th><th>repeats</th></tr>"
    )
    for src, s in stats["sources"].items():
        out.append(
            f"<tr><td>{esc(src)}</td><td>{s['records_in']:,}</td>"
            + "".join(f"<td>{s[k]:,}</td>" for k in REJECTIONS)
            + f"<td>{s['val']:,}</td><td>{s['train']:,}</td><td>{s['train_repeats']:,}</td></tr>"
        )
    out.append("</table>")
    deco = stats["decontamination"]
    out.append(
        f"<h2>Decontamination</h2><p>Index: {deco['index']['texts']:,} evaluation texts "
        f"({esc(', '.join(f'{k} {v:,}' for k, v in deco['index'].items() if k.endswith('grams')))}). "
        "Records dropped by the data they overlap:</p><ul>"
    )
    out += [f"<li>{esc(k)}: {v:,}</li>" for k, v in deco["records_by_origin"].items()] or [
        "<li>none</li>"
    ]
    out.append("</ul><h2>Translation</h2>")
    if not stats["translation"]:
        out.append(
            "<p>No source is configured for translation: every set stays in its own language.</p>"
        )
    for src, t in stats["translation"].items():
        out.append(f"<h3>{esc(src)} → {esc(str(t.get('to')))} ({esc(str(t.get('mode')))})</h3>")
        if t.get("provider") == "none":
            out.append(
                f"<p>Provider none: nothing was sent, and the {t['records_in']:,} records stay in their "
                "own language (set instruct.translate to an endpoint to translate them).</p>"
            )
        else:
            out.append(f"<pre>{esc(_summary(t))}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _summary(t: dict) -> str:
    keys = (
        "records_in",
        "translated",
        "untranslated",
        "rejected",
        "requests",
        "cache_hits",
        "tokens_in",
        "tokens_out",
        "cost",
        "latency_seconds",
    )
    return "\n".join(f"{k}: {t[k]}" for k in keys if k in t)


def plot_instruct_mix(stats: dict, out: str | Path) -> None:
    """Training records and tokens per task, stacked by language."""
    tasks = ["general", "cot", "code", "ner", "re", "ee"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, what in zip(axes, ("records", "tokens"), strict=True):
        bottom = [0] * len(tasks)
        for lang, color in (("en", "#3182bd"), ("zh", "#e6550d")):
            vals = [stats["cells"][f"{t}.{lang}"][what] for t in tasks]
            ax.bar(tasks, vals, bottom=bottom, label=lang, color=color)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_title(f"training {what} per task", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def instruct_report(stats: str, out_table: str, out_plot: str) -> None:
    data = read_json(stats)
    with atomic_path(out_table) as tmp:
        Path(tmp).write_text(instruct_table(data), encoding="utf-8")
    plot_instruct_mix(data, out_plot)
