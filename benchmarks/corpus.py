"""The benchmark corpora: per-language document lists built from data/demo.

They mirror how the anchor baselines in ANCHORS.md cut ../shared/data into documents
(en: one C4 line, one WikiText article, ~2 KB blocks of Gutenberg paragraphs; zh: one
CMRC/DRCD paragraph or one poem; code: one HumanEval-X record), so that figures compare.
The demo holds a subset of that pack (no Shijing, Chuci or Guwen Guanzhi), so document
counts differ a little from the baselines'.

``repeat_to(docs, mb)`` repeats a list in order until it reaches a size, for throughput runs.
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
from pathlib import Path

import zstandard

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    elif path.suffix == ".bz2":
        raw = bz2.decompress(raw)
    elif path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    return raw.decode("utf-8-sig").replace("\r\n", "\n")


def _en() -> list[str]:
    docs = [json.loads(line)["text"] for line in _read_text(DEMO / "en/c4_demo.jsonl.gz").splitlines() if line.strip()]
    article: list[str] = []
    for line in _read_text(DEMO / "en/wiki.test.raw.gz").split("\n"):
        if re.match(r"^ = [^=].* = $", line) and "".join(article).strip():
            docs.append("\n".join(article).strip("\n"))
            article = []
        article.append(line)
    if "".join(article).strip():
        docs.append("\n".join(article).strip("\n"))
    for book in ("gutenberg_3261.txt.zst", "gutenberg_972.txt.bz2"):
        block: list[str] = []
        for para in (p for p in re.split(r"\n\s*\n", _read_text(DEMO / "en" / book)) if p.strip()):
            block.append(para)
            if sum(map(len, block)) >= 2000:
                docs.append("\n\n".join(block))
                block = []
        if block:
            docs.append("\n\n".join(block))
    return docs


def _zh() -> list[str]:
    docs = []
    for name in ("cmrc2018_dev.json.gz", "DRCD_dev.json.gz"):
        for article in json.loads(_read_text(DEMO / "zh" / name))["data"]:
            docs += [p["context"] for p in article["paragraphs"]]
    for name, title in (("poet.tang.0.json.gz", "title"), ("ci.song.0.json.gz", "rhythmic"), ("lunyu.json.gz", "chapter")):
        for rec in json.loads(_read_text(DEMO / "zh" / name)):
            docs.append(rec.get(title, "") + "\n" + "\n".join(rec["paragraphs"]))
    return docs


def _code() -> list[str]:
    docs = []
    for lang in ("python", "cpp", "java", "js"):
        for line in _read_text(DEMO / f"code/humaneval_{lang}.jsonl.gz").splitlines():
            rec = json.loads(line)
            docs.append(rec["prompt"] + rec["canonical_solution"] + "\n" + rec["test"])
    return docs


def load(lang: str) -> list[str]:
    return {"en": _en, "zh": _zh, "code": _code}[lang]()


def nbytes(docs: list[str]) -> int:
    return sum(len(d.encode("utf-8")) for d in docs)


def repeat_to(docs: list[str], target_mb: float) -> list[str]:
    reps = max(1, round(target_mb * 1e6 / nbytes(docs)))
    return docs * reps


if __name__ == "__main__":
    for lang in ("en", "zh", "code"):
        d = load(lang)
        print(f"{lang}: {len(d)} docs, {nbytes(d) / 1e6:.2f} MB")
