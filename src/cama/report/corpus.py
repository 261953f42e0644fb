"""The corpus report: the funnel (documents and bytes), sources flagged for losing more than
``filter.warn_loss``, rejection reasons with examples (documents, and lines removed from kept
documents), dedup cluster sizes.

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
) -> dict[str, dict[str, dict[str, int]]]:
    """Documents and bytes left after each step, per source: {source: {"docs": {step: n},
    "bytes": {step: n}}}. Bytes are UTF-8 text; "read" is the text of every record read (what
    normalise kept, rejected or cut out as layout, plus the raw size of quarantined records)."""
    counts = {}
    for source, norm, filt in zip(sources, normalise_stats, filter_stats, strict=True):
        dd = dedup_stats["per_source"][source]
        cut = sum(v["bytes"] for v in norm.get("layout", {}).get("removed", {}).values())
        read_bytes = norm["bytes_out"] + norm.get("bytes_rejected", 0) + cut + norm.get("bytes_quarantined", 0)
        counts[source] = {
            "docs": {
                "read": norm["records_in"],
                "normalised": norm["docs_out"],
                "filtered": filt["kept"],
                "deduplicated": dd["kept"],
            },
            "bytes": {
                "read": read_bytes,
                "normalised": norm["bytes_out"],
                "filtered": filt["bytes_kept"],
                "deduplicated": dd["bytes_kept"],
            },
        }
    return counts


def loss_flags(
    sources: Sequence[str], normalise_stats: Sequence[dict], filter_stats: Sequence[dict]
) -> dict[str, str]:
    """{source: why} for each source that lost more than ``filter.warn_loss`` of its documents
    or bytes in the normalise or the filter step."""
    flags = {}
    for source, norm, filt in zip(sources, normalise_stats, filter_stats, strict=True):
        limit = filt["warn_loss"]
        why = []
        n = norm["records_in"]
        if n and (n - norm["docs_out"]) / n > limit:
            why.append(f"normalise dropped {100 * (n - norm['docs_out']) / n:.0f}% of documents "
                       f"({_top(norm['rejected'] | norm['quarantined'])})")  # fmt: skip
        loss = filt["loss"]
        if loss["docs"] > limit or loss["bytes"] > limit:
            why.append(f"filter dropped {100 * loss['docs']:.0f}% of documents and "
                       f"{100 * loss['bytes']:.0f}% of bytes ({_top(filt['rejected'])})")  # fmt: skip
        if why:
            flags[source] = f"over {100 * limit:.0f}%: " + "; ".join(why)
    return flags


def _top(counts: dict) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{k} {v}" for k, v in items) or "lines removed"


def plot_funnel(counts: dict, out: str | Path, flags: dict[str, str] | None = None) -> None:
    flags = flags or {}
    n = len(counts)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.8 * rows), squeeze=False)
    y = list(range(len(FUNNEL_STEPS)))[::-1]
    for ax, (source, c) in zip(axes.flat, counts.items(), strict=False):
        docs = [c["docs"][s] for s in FUNNEL_STEPS]
        nbytes = [c["bytes"][s] for s in FUNNEL_STEPS]
        d_share = [100 * v / max(1, docs[0]) for v in docs]
        b_share = [100 * v / max(1, nbytes[0]) for v in nbytes]
        ax.barh([v + 0.2 for v in y], d_share, height=0.4, color="#3182bd", label="documents")
        ax.barh([v - 0.2 for v in y], b_share, height=0.4, color="#fd8d3c", label="bytes")
        for yy, dv, bv, ds, bs in zip(y, docs, nbytes, d_share, b_share, strict=True):
            ax.text(ds + 1, yy + 0.2, f"{dv:,}", va="center", fontsize=7)
            ax.text(bs + 1, yy - 0.2, _mb(bv), va="center", fontsize=7)
        ax.set_yticks(y, FUNNEL_STEPS, fontsize=8)
        ax.set_xlim(0, 135)
        ax.set_xlabel("% of what was read", fontsize=7)
        ax.tick_params(labelsize=7)
        flagged = source in flags
        ax.set_title(("⚠ " if flagged else "") + source, fontsize=10, color="#cb181d" if flagged else "black")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Documents and bytes left after each step (⚠: a step lost more than filter.warn_loss)")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def rejection_examples(paths: Sequence[str | Path], per_rule: int) -> dict[str, dict[str, dict]]:
    """{source: {rule: {"count": n, "examples": [rows]}}}, reading only the needed columns."""
    table: dict[str, dict[str, dict]] = {}
    for path in paths:
        pf = pq.ParquetFile(path)
        columns = ["id", "source", "rule", "value", "detail", "text"]
        columns += ["scope"] if "scope" in pf.schema_arrow.names else []
        for batch in pf.iter_batches(columns=columns):
            for row in batch.to_pylist():
                rule = row["rule"] + (" (lines)" if row.get("scope") == "line" else "")
                entry = table.setdefault(row["source"], {}).setdefault(rule, {"count": 0, "examples": []})
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


def render_rejections(rejected: dict, quarantined: dict, flags: dict[str, str] | None = None) -> str:
    esc = html.escape
    parts = [
        "<html><head><meta charset='utf-8'><style>"
        "body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top} .t{max-width:60em;color:#333}"
        ".flag{color:#cb181d}</style></head><body>"
    ]
    if flags:
        parts.append("<h2 class='flag'>Sources that lost more than filter.warn_loss</h2><ul>")
        parts += [f"<li class='flag'><b>{esc(s)}</b>: {esc(why)}</li>" for s, why in sorted(flags.items())]
        parts.append("</ul><p>Check the source's kind (sources.&lt;name&gt;.kind) and the rules below.</p>")
    parts.append("<h2>Rejected documents and removed lines, by source and rule</h2>")
    for source in sorted(set(rejected) | set(quarantined)):
        mark = " class='flag'>⚠ " if source in (flags or {}) else ">"
        parts.append(f"<h3{mark}{esc(source)}</h3><table><tr><th>rule</th><th>documents (lines: a sample)</th>"
                     "<th>examples</th></tr>")  # fmt: skip
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
    norm, filt = [read_json(p) for p in normalise_stats], [read_json(p) for p in filter_stats]
    counts = funnel_counts(sources, norm, filt, dedup)
    flags = loss_flags(sources, norm, filt)
    for source, why in flags.items():
        log.warning("%s: %s", source, why)
    plot_funnel(counts, out_funnel, flags)
    page = render_rejections(rejection_examples(rejected, examples_per_rule), quarantine_counts(quarantine), flags)
    with atomic_path(out_rejections) as tmp:
        tmp.write_text(page, encoding="utf-8")
    plot_clusters(cluster_sizes(clusters), dedup, out_clusters)
    log.info("report written: %s, %s, %s", out_funnel, out_rejections, out_clusters)
