"""The corpus report's pieces, on small real stats."""

import pyarrow as pa
import pyarrow.parquet as pq

from cama.io import REJECTED_SCHEMA
from cama.report.corpus import cluster_sizes, funnel_counts, rejection_examples, render_rejections


def test_funnel_counts_follow_each_stage():
    counts = funnel_counts(
        ["a"],
        [{"records_in": 10, "docs_out": 9}],
        [{"kept": 6}],
        {"per_source": {"a": {"kept": 5}}},
    )
    assert counts == {"a": {"read": 10, "normalised": 9, "filtered": 6, "deduplicated": 5}}


def test_cluster_sizes_count_members_per_cluster(tmp_path):
    path = tmp_path / "clusters.parquet"
    pq.write_table(pa.table({"cluster_id": [0, 0, 1, 1, 1, 2, 2]}), path)
    assert cluster_sizes(path) == {2: 2, 3: 1}


def test_rejections_page_counts_rules_and_escapes_examples(tmp_path):
    rows = [
        {"id": f"s/0/{i}", "text": "<b>x</b>" * 100, "lang": "en", "source": "s", "meta": "{}",
         "rule": "gopher_quality.min_words" if i < 3 else "toxicity.max_ratio", "value": 1.0, "detail": "d"}
        for i in range(5)
    ]
    path = tmp_path / "r.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA), path)
    table = rejection_examples([path], per_rule=2)
    assert table["s"]["gopher_quality.min_words"]["count"] == 3
    assert len(table["s"]["gopher_quality.min_words"]["examples"]) == 2
    page = render_rejections(table, {"s": {"malformed_json": 4}})
    assert "<b>x</b>" not in page and "&lt;b&gt;" in page
    assert "quarantine: malformed_json" in page
