"""The filter stage on a small Parquet file: outputs, invariant, rejected rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from cama.clean.filter import filter_source
from cama.config import load_config
from cama.io import DOC_SCHEMA, REJECTED_SCHEMA, ParquetSink, read_json

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import corpus  # noqa: E402


def _write_docs(path, texts, lang):
    with ParquetSink(path, DOC_SCHEMA) as sink:
        for i, t in enumerate(texts):
            sink.write(
                {"id": f"demo/0/{i}", "text": t, "lang": lang, "source": "demo", "meta": "{}"}
            )


C4 = corpus.load("en")[0]  # a real C4 document that every filter keeps


def test_stage_en(tmp_path):
    settings = load_config(ROOT / "config" / "config.yaml")["filter"]
    texts = corpus.load("en")[:60] + [
        "",
        "   ",
        "Too short to keep.",
        C4 + "\nWrite to bob@example.org or call 13812345678 for more details today.",
    ]
    docs = tmp_path / "docs.parquet"
    _write_docs(docs, texts, "en")
    out = {k: tmp_path / f"{k}.parquet" for k in ("kept", "rejected")}
    stats = filter_source(
        docs, out["kept"], out["rejected"], tmp_path / "stats.json", "en", settings
    )

    assert read_json(tmp_path / "stats.json") == json.loads(json.dumps(stats))
    assert set(stats) == {
        "lang", "docs_in", "kept", "rejected", "bytes_in", "bytes_kept", "pii_masked", "seconds", "mb_per_s",
    }  # fmt: skip
    assert stats["docs_in"] == len(texts) == stats["kept"] + sum(stats["rejected"].values())
    kept = pq.read_table(out["kept"])
    rejected = pq.read_table(out["rejected"])
    assert kept.schema.equals(DOC_SCHEMA) and rejected.schema.equals(REJECTED_SCHEMA)
    assert kept.num_rows == stats["kept"] and rejected.num_rows == sum(stats["rejected"].values())
    rows = {r["id"]: r for r in rejected.to_pylist()}
    assert (
        rows["demo/0/60"]["rule"] == "gopher_quality.min_words"
        and rows["demo/0/60"]["value"] == 0.0
    )
    assert (
        rows["demo/0/62"]["detail"] == "4 words < 50"
    )  # "Too short to keep" and a "." that is a symbol
    assert all(r["rule"] and r["detail"] for r in rows.values())
    assert stats["pii_masked"] == {"email": 1, "phone": 1, "cn_id": 0}
    assert "demo/0/63" not in rows
    assert all("bob@example.org" not in t for t in kept.column("text").to_pylist())


def test_stage_zh_and_empty_file(tmp_path):
    settings = load_config(ROOT / "config" / "config.yaml")["filter"]
    texts = corpus.load("zh")[:200]
    _write_docs(tmp_path / "zh.parquet", texts, "zh")
    stats = filter_source(
        tmp_path / "zh.parquet",
        tmp_path / "k.parquet",
        tmp_path / "r.parquet",
        tmp_path / "s.json",
        "zh",
        settings,
    )
    assert stats["docs_in"] == 200 == stats["kept"] + sum(stats["rejected"].values())
    assert 0 < stats["kept"] < 200

    _write_docs(tmp_path / "empty.parquet", [], "code")
    stats = filter_source(
        tmp_path / "empty.parquet",
        tmp_path / "k2.parquet",
        tmp_path / "r2.parquet",
        tmp_path / "s2.json",
        "code",
        settings,
    )
    assert stats["docs_in"] == 0 and stats["kept"] == 0 and stats["rejected"] == {}
    assert pq.read_table(tmp_path / "k2.parquet").num_rows == 0
