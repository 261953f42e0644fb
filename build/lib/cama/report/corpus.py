"""The corpus report: the filter funnel, rejection reasons with examples, dedup cluster sizes.

Reads only the stats JSON and Parquet files that the stages declared as outputs.
"""

from __future__ import annotations

import html
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from cama.io import atomic_path, read_json  # noqa: E402

log = logging.getLogger("cama.report")

FUNNEL_STEPS = ("read", "normalised", "filtered", "deduplicated")


def funnel_counts(
    sources: Sequence[str], normalise_stats: Sequence[dict], filter_stats: Sequence[dict], dedup_stats: dict
) -> dict[str, dict[str, int]]:
    """Documents left after each step, per source."""
    counts = {}
    for source, norm, filt in zip(sources, normalise_stats, filter_stats, strict=True):
        counts[source] = {
            "read": norm["records_in"],
            "normalised": norm["docs_out"],
            "filtered": filt["kept"],
            "deduplicated": dedup_stats["per_source"][source]["kept"],
        }
    return counts


def plot_funnel(counts: dict[str, dict[str, int]], out: str | Path) -> None:
    n = len(counts)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    colors = ["#9ecae1", "#6baed6", "#3182bd", "#08519c"]
    for ax, (source, steps) in zip(axes.flat, counts.items(), strict=False):
        values = [steps[s] for s in FUNNEL_STEPS]
        bars = ax.barh(FUNNEL_STEPS[::-1], values[::-1], color=colors[::-1])
        ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=2, fontsize=8)
        ax.set_title(source, fontsize=10)
        ax.set_xlim(0, max(values + [1]) * 1.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Documents left after each step")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def rejection_examples(paths: Sequence[str | Path], per_rule: int) -> dict[str, dict[str, dict]]:
    """{source: {rule: {"count": n, "examples": [rows]}}}, reading only the needed columns."""
    table: dict[str, dict[str, dict]] = {}
    for path in paths:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(columns=["id", "source", "rule", "value", "detail", "text"]):
            for row in batch.to_pylist():
                entry = table.setdefault(row["source"], {}).setdefault(row["rule"], {"count": 0, "examples": []})
                entry["count"] += 1
                if len(entry["examples"]) < per_rule:
                    row["text"] = row["text"][:300]
                    entry["examples"].append(row)
    return table


def quarantine_counts(paths: Sequence[str | Path]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        for row in pq.read_table(path, columns=["source", "reason"]).to_pylist():
            by_reason = counts.setdefault(row["source"], {})
            by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    return counts


def render_rejections(rejected: dict, quarantined: dict) -> str:
    esc = html.escape
    parts = [
        "<html><head><meta charset='utf-8'><style>"
        "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top} .t{max-width:60em;color:#333}"
        "</style></head><body><h2>Rejected documents, by source and rule</h2>"
    ]
    for source in sorted(set(rejected) | set(quarantined)):
        parts.append(f"<h3>{esc(source)}</h3><table><tr><th>rule</th><th>documents</th><th>examples</th></tr>")
        for rule, entry in sorted(rejected.get(source, {}).items(), key=lambda kv: -kv[1]["count"]):
            examples = "".join(
                f"<div><b>{esc(ex['id'])}</b> {esc(ex['detail'] or '')}<div class='t'>{esc(ex['text'])}</div></div>"
                for ex in entry["examples"]
            )
            parts.append(f"<tr><td>{esc(rule)}</td><td>{entry['count']:,}</td><td>{examples}</td></tr>")
        for reason, n in sorted(quarantined.get(source, {}).items()):
            parts.append(f"<tr><td>quarantine: {esc(reason)}</td><td>{n:,}</td><td></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def cluster_sizes(clusters: str | Path) -> dict[int, int]:
    """{cluster size: number of clusters}, from dedup/clusters.parquet (one row per member)."""
    ids = pq.read_table(clusters, columns=["cluster_id"]).column("cluster_id").to_numpy()
    members = Counter(ids.tolist())
    return dict(sorted(Counter(members.values()).items()))


def plot_clusters(sizes: dict[int, int], dedup_stats: dict, out: str | Path) -> None:
    per_source = dedup_stats["per_source"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if sizes:
        xs = sorted(sizes)
        ax1.bar([str(x) for x in xs], [sizes[x] for x in xs], color="#3182bd")
        ax1.set_yscale("log")
    ax1.set_xlabel("cluster size (documents)")
    ax1.set_ylabel("clusters")
    ax1.set_title(f"{sum(sizes.values()):,} duplicate clusters")
    names = list(per_source)
    exact = [per_source[s]["exact"] for s in names]
    near = [per_source[s]["near"] for s in names]
    ax2.barh(names, exact, color="#fdae6b", label="exact")
    ax2.barh(names, near, left=exact, color="#e6550d", label="near (MinHash)")
    ax2.set_xlabel("documents removed")
    ax2.legend(fontsize=8)
    ax2.tick_params(labelsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def corpus_report(
    sources: Sequence[str],
    normalise_stats: Sequence[str],
    filter_stats: Sequence[str],
    rejected: Sequence[str],
    quarantine: Sequence[str],
    dedup_stats: str,
    clusters: str,
    out_funnel: str,
    out_rejections: str,
    out_clusters: str,
    examples_per_rule: int = 3,
) -> None:
    dedup = read_json(dedup_stats)
    counts = funnel_counts(sources, [read_json(p) for p in normalise_stats], [read_json(p) for p in filter_stats], dedup)
    plot_funnel(counts, out_funnel)
    page = render_rejections(rejection_examples(rejected, examples_per_rule), quarantine_counts(quarantine))
    with atomic_path(out_rejections) as tmp:
        tmp.write_text(page, encoding="utf-8")
    plot_clusters(cluster_sizes(clusters), dedup, out_clusters)
    log.info("report written: %s, %s, %s", out_funnel, out_rejections, out_clusters)
