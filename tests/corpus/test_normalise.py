"""normalise_source: bad input is quarantined and counted, text is cleaned, languages checked.

Every test checks the accounting: records_in == docs + rejected + quarantined.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cama.corpus.text import clean_code, clean_prose
from cama.errors import SourceError
from cama.io import QUARANTINE_RAW_BYTES

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"


def c4_lines(n: int) -> list[bytes]:
    return gzip.decompress((DEMO / "en" / "c4_demo.jsonl.gz").read_bytes()).splitlines()[:n]


def test_demo_jsonl_all_documents_with_stable_ids(raw_dir_of, spec_of, normalise):
    run = normalise(raw_dir_of(DEMO / "en" / "c4_demo.jsonl.gz"), spec_of(lang="en"), name="c4_en")
    assert run.balanced()
    assert run.stats == run.stats_file
    assert set(run.stats) == {"source", "lang", "records_in", "docs_out", "rejected", "quarantined",
                              "bytes_in", "bytes_out", "bytes_rejected", "bytes_quarantined", "layout",
                              "files", "seconds"}  # fmt: skip
    assert run.stats["layout"] == {"settings": {}, "lines_joined": 0, "removed": {}}
    assert (run.stats["records_in"], run.stats["docs_out"], run.stats["files"]) == (200, 200, 1)
    assert [d["id"] for d in run.docs[:2]] == ["c4_en/0/1", "c4_en/0/2"]
    assert json.loads(run.docs[0]["meta"]) == {"file": "c4_demo.jsonl.gz", "line": 1}
    assert {d["lang"] for d in run.docs} == {"en"} and {d["source"] for d in run.docs} == {"c4_en"}


def test_malformed_and_invalid_utf8_lines_are_quarantined_with_their_line(
    raw_dir_of, spec_of, normalise
):
    good = c4_lines(6)
    lines = (
        good[:2]
        + [b'{"text": "unterminated']
        + good[2:4]
        + [b'{"text": "caf\xe9 au lait"}']
        + good[4:]
    )
    raw = raw_dir_of(("mixed.jsonl", b"\n".join(lines) + b"\n"))
    run = normalise(raw, spec_of(lang="en"))
    assert run.balanced()
    assert run.stats["docs_out"] == 6
    assert run.stats["quarantined"] == {"invalid_utf8": 1, "malformed_json": 1}
    rows = sorted((q["file"], q["line"], q["reason"]) for q in run.quarantine)
    assert rows == [("mixed.jsonl", 3, "malformed_json"), ("mixed.jsonl", 6, "invalid_utf8")]
    assert (
        next(q for q in run.quarantine if q["line"] == 6)["raw"] == b'{"text": "caf\xe9 au lait"}'
    )
    assert [d["id"] for d in run.docs] == [f"s/0/{n}" for n in (1, 2, 4, 5, 7, 8)]


def test_missing_text_field_is_quarantined(raw_dir_of, spec_of, normalise):
    data = b'{"title": "no text"}\n{"text": 42}\n{"text": ["a", "list", "of", "lines", "in", "one", "document"]}\n'
    run = normalise(
        raw_dir_of(("t.jsonl", data)), spec_of(lang="en"), lang_check={"enabled": False}
    )
    assert run.balanced()
    assert [(q["line"], q["reason"]) for q in run.quarantine] == [
        (1, "missing_text"),
        (2, "missing_text"),
    ]
    assert run.docs[0]["text"] == "a\nlist\nof\nlines\nin\none\ndocument"


def test_truncated_gzip_keeps_what_came_before(raw_dir_of, spec_of, normalise):
    whole = (DEMO / "en" / "c4_demo.jsonl.gz").read_bytes()
    run = normalise(raw_dir_of(("c4_cut.jsonl.gz", whole[: len(whole) // 2])), spec_of(lang="en"))
    assert run.balanced()
    assert 50 < run.stats["docs_out"] < 200
    expected = [clean_prose(json.loads(line)["text"]) for line in c4_lines(run.stats["docs_out"])]
    assert [d["text"] for d in run.docs] == expected
    (q,) = run.quarantine
    assert (q["file"], q["reason"], q["line"]) == (
        "c4_cut.jsonl.gz",
        "truncated_stream",
        run.stats["docs_out"] + 1,
    )


def test_truncated_zst_is_noticed(raw_dir_of, spec_of, normalise):
    whole = (DEMO / "en" / "gutenberg_3261.txt.zst").read_bytes()
    raw = raw_dir_of(("book.txt.zst", whole[: len(whole) // 2]))
    run = normalise(raw, spec_of(lang="en", split="paragraph"), lang_check={"enabled": False})
    assert run.balanced()
    assert run.stats["docs_out"] > 100
    assert run.stats["quarantined"] == {"truncated_stream": 1}
    assert run.quarantine[0]["line"] > 1000


def test_empty_documents_are_rejected_and_nul_bytes_removed(raw_dir_of, spec_of, normalise):
    texts = [
        "",
        "   \n\t  ",
        "\u200b\ufeff\n",
        "A real\x00 sentence\x07 about the weather in spring, kept.\r\n",
    ]
    data = "\n".join(json.dumps({"text": t}) for t in texts).encode()
    run = normalise(raw_dir_of(("e.jsonl", data)), spec_of(lang="en"))
    assert run.balanced()
    assert run.stats["rejected"] == {"empty": 3}
    assert [r["id"] for r in run.rejected] == ["s/0/1", "s/0/2", "s/0/3"]
    assert [d["text"] for d in run.docs] == ["A real sentence about the weather in spring, kept."]


@pytest.mark.slow
def test_a_50mb_line_is_quarantined_without_holding_it(tmp_path, raw_dir_of, spec_of):
    """Run in a child process, so that its peak RSS belongs to this reading alone."""
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        f.write(c4_lines(1)[0] + b"\n" + b'{"text": "')
        for _ in range(50):
            f.write(b"word " * 209_716)  # ~1 MB
        f.write(b'"}\n' + c4_lines(2)[1] + b"\n")
    raw = raw_dir_of(big)
    small_raw = raw_dir_of(DEMO / "en" / "c4_demo.jsonl.gz")
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import validated
        from cama.corpus.normalise import normalise_source
        def rss_kb(key):
            return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
        def run(raw, out):
            return normalise_source("s", spec, raw, out / "d.parquet", out / "r.parquet",
                                    out / "q.parquet", out / "s.json", settings)
        spec, settings = validated({{"lang": "en", "uri": "x"}}, {{"max_doc_bytes": int(sys.argv[1])}})
        out = Path(sys.argv[2])
        # warm up on a small file: the model, tqdm (it imports pandas) and the Parquet
        # writer's zstd contexts (~50 MB) are fixed costs, not the line's
        run({str(small_raw)!r}, out / "warm-up")
        before = rss_kb("VmRSS:")
        stats = run({str(raw)!r}, out)
        print(json.dumps({{"stats": stats, "growth_mb": (rss_kb("VmHWM:") - before) / 1024}}))
    """)

    def run(limit: int) -> dict:
        out = tmp_path / f"out{limit}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", script, str(limit), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1]) | {"out": out}

    small = run(10_000_000)
    stats = small["stats"]
    assert (
        stats["records_in"] == 3
        and stats["docs_out"] == 2
        and stats["quarantined"] == {"too_large": 1}
    )
    import pyarrow.parquet as pq

    (q,) = pq.read_table(small["out"] / "q.parquet").to_pylist()
    assert (q["file"], q["line"], q["reason"]) == ("big.jsonl", 2, "too_large")
    assert len(q["raw"]) == QUARANTINE_RAW_BYTES and q["raw_size"] > 50_000_000
    assert small["growth_mb"] < 30, small  # the limit is 10 MB; the line is 50

    raised = run(100_000_000)
    assert raised["stats"]["docs_out"] == 3 and raised["stats"]["quarantined"] == {}


def test_missing_file_fails_the_source_naming_it(raw_dir_of, spec_of, normalise):
    raw = raw_dir_of(DEMO / "en" / "c4_demo.jsonl.gz", ("second.jsonl", b'{"text": "x"}\n'))
    (raw / "second.jsonl").unlink()
    with pytest.raises(SourceError, match=r"second\.jsonl"):
        normalise(raw, spec_of(lang="en"))


def test_opencc_turns_drcd_traditional_into_simplified(raw_dir_of, spec_of, normalise):
    spec = spec_of(
        lang="zh", records="data.*.paragraphs.*", text="context", meta=["id"], opencc=True
    )
    run = normalise(raw_dir_of(DEMO / "zh" / "DRCD_dev.json.gz"), spec)
    assert run.balanced() and run.stats["docs_out"] == 1000
    text = "\n".join(d["text"] for d in run.docs)
    assert "台湾" in text
    assert "臺灣" not in text and "台灣" not in text
    assert run.docs[0]["text"].startswith("在欧洲，梵语的学术研究，由德国学者")  # NFC keeps full-width ，
    assert json.loads(run.docs[0]["meta"])["id"]


def test_without_opencc_traditional_stays(raw_dir_of, spec_of, normalise):
    spec = spec_of(lang="zh", records="data.*.paragraphs.*", text="context")
    run = normalise(
        raw_dir_of(DEMO / "zh" / "DRCD_dev.json.gz"), spec, lang_check={"enabled": False}
    )
    assert run.docs[0]["text"].startswith("在歐洲")


def test_english_paragraph_in_a_zh_source_is_a_lang_mismatch(raw_dir_of, spec_of, normalise):
    contexts = [p["context"] for a in json.loads(gzip.decompress((DEMO / "zh" / "cmrc2018_dev.json.gz").read_bytes()))["data"]
                for p in a["paragraphs"]][:20]  # fmt: skip
    english = json.loads(c4_lines(1)[0])["text"]
    lines = [
        json.dumps({"text": t}, ensure_ascii=False)
        for t in contexts[:10] + [english] + contexts[10:]
    ]
    run = normalise(raw_dir_of(("mixed.jsonl", "\n".join(lines).encode())), spec_of(lang="zh"))
    assert run.balanced()
    assert run.stats["docs_out"] == 20 and run.stats["rejected"] == {"lang_mismatch": 1}
    (rej,) = run.rejected
    assert rej["id"] == "s/0/11" and rej["rule"] == "lang_mismatch" and rej["value"] >= 0.5
    assert rej["detail"].startswith("detected en (") and rej["detail"].endswith("expected zh")


@pytest.mark.parametrize("file", ["poet.tang.0.json.gz", "ci.song.0.json.gz"])
def test_classical_poems_are_kept_though_lid176_says_ja(raw_dir_of, spec_of, normalise, file):
    from cama.corpus.langid import predict, sample

    spec = spec_of(lang="zh", text=["title", "paragraphs"], opencc=True)
    run = normalise(raw_dir_of(DEMO / "zh" / file), spec)
    assert run.balanced() and run.stats["docs_out"] == 1000 and run.stats["rejected"] == {}
    said_ja = sum(
        label == "ja" and score >= 0.5
        for label, score in predict([sample(d["text"], 2000) for d in run.docs])
    )
    assert said_ja > 200  # what the script rule is there for (see langid's docstring)


def test_japanese_in_a_zh_source_is_rejected(raw_dir_of, spec_of, normalise):
    ja = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"
    run = normalise(
        raw_dir_of(("ja.jsonl", json.dumps({"text": ja}, ensure_ascii=False).encode())),
        spec_of(lang="zh"),
    )
    assert run.stats["rejected"] == {"lang_mismatch": 1}
    assert run.rejected[0]["detail"].startswith("detected ja")


def test_code_is_not_language_checked_and_keeps_its_layout(raw_dir_of, spec_of, normalise):
    code = "def f(x):\r\n\tif x:  \r\n\t\treturn '\uff21\u200b'\x00\n"
    run = normalise(
        raw_dir_of(("c.jsonl", json.dumps({"text": code}).encode())), spec_of(lang="code")
    )
    assert run.balanced()
    assert run.docs[0]["text"] == "def f(x):\n\tif x:  \n\t\treturn '\uff21\u200b'\n"


def test_code_tree_binary_file_is_quarantined_not_skipped(raw_dir_of, spec_of, normalise):
    raw = raw_dir_of(
        ("src/a.py", b"x = 1\n"), ("src/a.cpython-311.pyc", b"\xa7\r\r\n\x00\x00\x00\x00")
    )
    run = normalise(raw, spec_of(lang="code", format="code_tree"))
    assert run.balanced()
    assert [(q["file"], q["reason"], q["line"]) for q in run.quarantine] == [
        ("src/a.cpython-311.pyc", "binary", 1)
    ]
    assert [d["id"] for d in run.docs] == ["s/0/1"]


def test_all_four_outputs_exist_for_an_empty_source(raw_dir_of, spec_of, normalise):
    run = normalise(raw_dir_of(("empty.jsonl", b"\n\n")), spec_of(lang="en"))
    assert run.stats["records_in"] == 0 and run.docs == run.rejected == run.quarantine == []


def test_prose_cleanup():
    assert (
        clean_prose("Ｈｅｌｌｏ\u3000world  \r\nline\u2028two\u200d\x0c\n\n")
        == "Hello world\nline\ntwo"
    )
    assert clean_prose("臺灣", "NFC", "t2s") == "台湾"
    assert clean_prose("ﬁ", "none") == "ﬁ"
    assert clean_code("\ufeffx\x1b\x9b = 'ﬁ'  \r") == "\ufeffx = 'ﬁ'  \n"


def test_streaming_a_100mb_jsonl_gz_keeps_memory_flat(tmp_path, spec_of):
    """Read ~100 MB of JSON lines in a child process and compare its peak RSS to where it started."""
    path = tmp_path / "big.jsonl.gz"
    line = (
        json.dumps({"text": "The quick brown fox jumps over the lazy dog. " * 22}).encode() + b"\n"
    )  # ~1 KB
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(100):
            f.write(line * 1000)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import validated
        from cama.corpus.readers import iter_records
        def rss_kb(key):
            return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
        spec, _ = validated({{"lang": "en", "uri": "x"}})
        before = rss_kb("VmRSS:")
        n = size = 0
        for r in iter_records({str(path)!r}, spec):
            n += 1
            size += r.size
        print(n, size, (rss_kb("VmHWM:") - before) / 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n, size, growth_mb = proc.stdout.split()
    assert int(n) == 100_000 and int(size) > 99_000_000
    assert float(growth_mb) < 20  # 100 MB went through
