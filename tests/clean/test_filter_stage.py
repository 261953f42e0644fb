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
    assert {"docs_in", "kept", "rejected", "bytes_in", "bytes_rejected", "bytes_filtered", "bytes_kept",
            "lines_removed", "loss", "loss_flag", "pii_masked"} <= set(stats)  # fmt: skip
    assert stats["docs_in"] == len(texts) == stats["kept"] + sum(stats["rejected"].values())
    kept = pq.read_table(out["kept"])
    rejected = pq.read_table(out["rejected"])
    assert kept.schema.equals(DOC_SCHEMA) and rejected.schema.equals(REJECTED_SCHEMA)
    docs = [r for r in rejected.to_pylist() if r["scope"] == "doc"]
    assert kept.num_rows == stats["kept"] and len(docs) == sum(stats["rejected"].values())
    rows = {r["id"]: r for r in docs}
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


BOOK = corpus._read_text(corpus.DEMO / "en/gutenberg_3261.txt.zst")


def _run(tmp_path, texts, lang, settings, name="s"):
    _write_docs(tmp_path / f"{name}.parquet", texts, lang)
    paths = {k: tmp_path / f"{name}.{k}.parquet" for k in ("kept", "rejected", "scores")}
    stats = filter_source(tmp_path / f"{name}.parquet", paths["kept"], paths["rejected"],
                          tmp_path / f"{name}.stats.json", lang, settings, out_scores=paths["scores"],
                          source=name)  # fmt: skip
    return stats, {k: pq.read_table(v).to_pylist() for k, v in paths.items()}


def test_lines_removed_from_kept_documents_are_counted_and_sampled(tmp_path):
    """The web chain on a hard-wrapped book: C4 keeps whole blocks but cuts most of their lines."""
    from cama.config import source_filter_settings

    config = load_config(ROOT / "config" / "config.yaml")
    blocks = [BOOK[i : i + 3000] for i in range(20_000, 80_000, 3000)]
    settings = source_filter_settings(config, "c4_en")
    settings["line_samples"] = 5
    stats, out = _run(tmp_path, blocks, "en", settings)
    removed = stats["lines_removed"]
    assert removed["c4_quality.terminal_punctuation"]["lines"] > 200
    # the bytes add up: rejected documents + removed lines + what was kept
    total = stats["bytes_rejected"] + sum(v["bytes"] for v in removed.values()) + stats["bytes_filtered"]
    assert total == stats["bytes_in"]
    lines = [r for r in out["rejected"] if r["scope"] == "line"]
    assert 0 < len(lines) <= 5 * len(removed)
    assert all(r["rule"].startswith("c4_quality.") and r["text"] and r["detail"] for r in lines)
    assert all(r["text"] in BOOK for r in lines)  # real lines of the book, as they were
    assert stats["loss"]["bytes"] > 0.5 and stats["loss_flag"]  # the web chain eats a book

    # the book kind unwraps it first and runs no line rule: nothing removed, nothing flagged
    book = source_filter_settings(config, "gutenberg_en")
    from cama.corpus.layout import unwrap

    stats, _ = _run(tmp_path, [unwrap(b).text for b in blocks], "en", book, "b")
    assert stats["lines_removed"] == {} and stats["kept"] == len(blocks) and not stats["loss_flag"]


def test_scores_file_reselects_without_rescoring(tmp_path):
    from cama.clean.filter import reselect

    settings = load_config(ROOT / "config" / "config.yaml")["filter"]
    texts = corpus.load("zh")[:300]
    stats, out = _run(tmp_path, texts, "zh", settings)
    assert [r["id"] for r in out["scores"]] == [f"demo/0/{i}" for i in range(300)]
    assert set(out["scores"][0]) == {"id", *stats["scores"]}
    rejected = {r["id"]: r["rule"] for r in out["rejected"] if r["scope"] == "doc"}
    again = dict(reselect(tmp_path / "s.scores.parquet", "zh", settings))
    assert {i: r.rule for i, r in again.items() if r} == rejected
    # a threshold changes: the stored scores give what a new run gives
    settings["zh"]["chinesewebtext"]["min_chars"] = 400
    new = {i: (r.rule if r else None) for i, r in reselect(tmp_path / "s.scores.parquet", "zh", settings)}
    stats2, out2 = _run(tmp_path, texts, "zh", settings, "t")
    rerun = {r["id"].replace("t/", "s/"): r["rule"] for r in out2["rejected"] if r["scope"] == "doc"}
    assert {i: r for i, r in new.items() if r} == rerun and len(rerun) > len(rejected)


def test_a_source_losing_too_much_is_a_warning(tmp_path, caplog):
    settings = load_config(ROOT / "config" / "config.yaml")["filter"]
    poems = [t for t in corpus.load("zh") if len(t) < 120][:50]  # the web chain drops poems
    with caplog.at_level("WARNING"):
        stats, _ = _run(tmp_path, poems, "zh", settings, "tang")
    assert stats["loss_flag"] and stats["loss"]["docs"] > 0.9
    assert any("tang lost" in r.message and "sources.tang.kind" in r.message for r in caplog.records)
