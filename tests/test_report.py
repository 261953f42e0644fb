"""The corpus report's pieces, on small real stats."""

import pyarrow as pa
import pyarrow.parquet as pq

from cama.io import REJECTED_SCHEMA
from cama.report.corpus import (
    cluster_sizes,
    funnel_counts,
    loss_flags,
    plot_funnel,
    rejection_examples,
    render_rejections,
)

NORM = {"records_in": 10, "docs_out": 9, "bytes_out": 900, "bytes_rejected": 80, "bytes_quarantined": 20,
        "rejected": {"lang_mismatch": 1}, "quarantined": {},
        "layout": {"removed": {"layout.wiki_category": {"lines": 2, "bytes": 30}}}}  # fmt: skip
FILT = {"kept": 6, "bytes_kept": 500, "rejected": {"gopher_quality.min_words": 3},
        "loss": {"docs": 0.33, "bytes": 0.44}, "warn_loss": 0.3}  # fmt: skip


def test_funnel_counts_documents_and_bytes_after_each_stage():
    counts = funnel_counts(["a"], [NORM], [FILT], {"per_source": {"a": {"kept": 5, "bytes_kept": 400}}})
    assert counts == {"a": {
        "docs": {"read": 10, "normalised": 9, "filtered": 6, "deduplicated": 5},
        "bytes": {"read": 1030, "normalised": 900, "filtered": 500, "deduplicated": 400},
    }}  # fmt: skip


def test_sources_losing_more_than_warn_loss_are_flagged(tmp_path):
    ok = {**FILT, "loss": {"docs": 0.1, "bytes": 0.05}}
    flags = loss_flags(["a", "b"], [NORM, NORM], [FILT, ok])
    assert list(flags) == ["a"]
    assert "filter dropped 33% of documents and 44% of bytes (gopher_quality.min_words 3)" in flags["a"]
    page = render_rejections({}, {}, flags)
    assert "lost more than filter.warn_loss" in page and "44% of bytes" in page
    counts = funnel_counts(["a", "b"], [NORM, NORM], [FILT, ok],
                           {"per_source": {s: {"kept": 5, "bytes_kept": 400} for s in "ab"}})  # fmt: skip
    plot_funnel(counts, tmp_path / "f.png", flags)
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_cluster_sizes_count_members_per_cluster(tmp_path):
    path = tmp_path / "clusters.parquet"
    pq.write_table(pa.table({"cluster_id": [0, 0, 1, 1, 1, 2, 2]}), path)
    assert cluster_sizes(path) == {2: 2, 3: 1}


def test_rejections_page_counts_rules_and_escapes_examples(tmp_path):
    rows = [
        {"id": f"s/0/{i}", "text": "<b>x</b>" * 100, "lang": "en", "source": "s", "meta": "{}",
         "rule": "gopher_quality.min_words" if i < 3 else "toxicity.max_ratio", "value": 1.0, "detail": "d",
         "scope": "doc"}
        for i in range(5)
    ] + [{"id": "s/0/9", "text": "Menu Home", "lang": "en", "source": "s", "meta": "{}",
          "rule": "c4_quality.terminal_punctuation", "value": 9.0, "detail": "no full stop", "scope": "line"}]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA), path)
    table = rejection_examples([path], per_rule=2)
    assert table["s"]["gopher_quality.min_words"]["count"] == 3
    assert len(table["s"]["gopher_quality.min_words"]["examples"]) == 2
    page = render_rejections(table, {"s": {"malformed_json": 4}})
    assert "<b>x</b>" not in page and "&lt;b&gt;" in page
    assert "quarantine: malformed_json" in page
    assert table["s"]["c4_quality.terminal_punctuation (lines)"]["count"] == 1
