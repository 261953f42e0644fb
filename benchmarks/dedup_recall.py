"""Near-duplicate recall on planted copies: cama's dedup stage against datasketch and rensa.

Protocol (that of ``shared/baselines/bench_minhash.py``): 500 real documents (seeded sample
of those with ≥ 100 words for en, ≥ 100 characters for zh; benchmarks/corpus.py), each given
an edited copy: every token (word for en, character for zh) is, with probability p,
substituted by a random corpus token, deleted, or followed by an inserted random token (1/3
each), ``random.Random(0)``. The 1000 documents go through ``dedup_corpus`` as two sources
(originals, copies).

Reported per edit rate p and per setting (bands × rows, min_jaccard):
- recall: planted pairs that end in the same cluster;
- recall at J ≥ 0.8: the same, over pairs whose exact 5-shingle Jaccard is ≥ 0.8;
- S-curve: the recall that banding alone predicts (mean of 1 - (1 - J^r)^b);
- merged < 0.5: removed documents whose verified Jaccard to their kept document is < 0.5
  (must be 0), and the smallest such Jaccard;
- other merges: removed documents not merged with their own planted partner.
datasketch and rensa (14 × 8, no verification) are run on the same documents for
reference: recall = the copy's LSH query returns its original.

usage: python benchmarks/dedup_recall.py [--langs en,zh] [--rates 0.02,0.05,0.10]
       [--settings 28x4@0.7,20x5@0.7,14x8@0.7] [--tools datasketch,rensa]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from dedup_throughput import NUM_PERM, library_index, shingles  # noqa: E402

from cama.clean.dedup import dedup_corpus  # noqa: E402
from cama.clean.planted import edit  # noqa: E402
from cama.io import write_docs  # noqa: E402


def planted(lang: str, p: float, n: int = 500) -> tuple[list[str], list[str]]:
    base = corpus.load(lang)
    size = (lambda t: len("".join(t.split()))) if lang == "zh" else (lambda t: len(t.split()))
    pool = [t for t in base if size(t) >= 100]
    sample = random.Random(0).sample(pool, n)
    if lang == "zh":
        vocab = sorted({c for t in base for c in "".join(t.split())})
    else:
        vocab = sorted({w for t in base for w in t.split()})
    erng = random.Random(0)
    return sample, [edit(t, lang, p, erng, vocab) for t in sample]


def true_jaccard(a: str, b: str, lang: str) -> float:
    sa, sb = shingles(a, lang), shingles(b, lang)
    return len(sa & sb) / len(sa | sb)


def _write(path: Path, src: str, texts: list[str], lang: str) -> None:
    write_docs(path, texts, src, lang)


def run_cama(orig, copies, lang, bands, rows, min_jaccard):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _write(tmp / "orig.parquet", "orig", orig, lang)
        _write(tmp / "copy.parquet", "copy", copies, lang)
        settings = {
            "minhash": {
                "num_perm": NUM_PERM,
                "bands": bands,
                "rows": rows,
                "min_jaccard": min_jaccard,
            }
        }
        stats = dedup_corpus(
            {"orig": tmp / "orig.parquet", "copy": tmp / "copy.parquet"},
            {"orig": tmp / "o.out.parquet", "copy": tmp / "c.out.parquet"},
            {"orig": lang, "copy": lang},
            tmp / "clusters.parquet",
            tmp / "stats.json",
            settings,
        )
        cl = pq.read_table(tmp / "clusters.parquet").to_pylist()
    cid = {r["id"]: r["cluster_id"] for r in cl}
    same = [cid.get(f"orig/0/{k}", -1) == cid.get(f"copy/0/{k}", -2) for k in range(len(orig))]
    removed = [r for r in cl if not r["kept"]]
    low = [r["jaccard"] for r in removed if r["jaccard"] is not None and r["jaccard"] < 0.5]
    jmin = min((r["jaccard"] for r in removed if r["jaccard"] is not None), default=None)
    members: dict[int, set[int]] = {}
    for r in cl:
        members.setdefault(r["cluster_id"], set()).add(int(r["id"].rsplit("/", 1)[1]))
    other = sum(
        1
        for r in removed
        if len(members[r["cluster_id"]]) > 1 and not same[int(r["id"].rsplit("/", 1)[1])]
    )
    return same, len(low), jmin, other, stats


def run_lib(name, orig, copies, lang, bands, rows):
    n = len(orig)
    sigs, lsh = library_index(name, orig + copies, lang, bands, rows)
    return [k in set(lsh.query(sigs[n + k])) for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--rates", default="0.02,0.05,0.10")
    ap.add_argument("--settings", default="28x4@0.7,20x5@0.7,28x4@0.6")
    ap.add_argument("--tools", default="datasketch,rensa")
    a = ap.parse_args()
    settings = []
    for s in a.settings.split(","):
        br, mj = s.split("@")
        b, r = br.split("x")
        settings.append((int(b), int(r), float(mj)))
    print(
        f"{'lang':4s} {'p':>5s} {'J mean':>6s} {'setting':14s} {'recall':>7s} {'S-curve':>7s} "
        f"{'J>=0.8':>13s} {'J<0.5 merged':>12s} {'min J':>6s} {'other':>5s} {'cand':>6s}"
    )
    for lang in a.langs.split(","):
        for p in map(float, a.rates.split(",")):
            orig, copies = planted(lang, p)
            jac = [true_jaccard(x, y, lang) for x, y in zip(orig, copies, strict=True)]
            hi = [k for k, j in enumerate(jac) if j >= 0.8]
            jm = statistics.mean(jac)
            for b, r, mj in settings:
                same, low, jmin, other, stats = run_cama(orig, copies, lang, b, r, mj)
                rec = sum(same) / len(same)
                rec_hi = sum(same[k] for k in hi) / len(hi) if hi else float("nan")
                curve = statistics.mean(1 - (1 - j**r) ** b for j in jac)
                print(
                    f"{lang:4s} {p:5.2f} {jm:6.3f} {f'cama {b}x{r}@{mj}':14s} {rec:7.3f} "
                    f"{curve:7.3f} {rec_hi:6.3f} ({len(hi):3d}) {low:12d} "
                    f"{jmin if jmin is None else round(jmin, 3)!s:>6s} {other:5d} "
                    f"{stats['candidate_pairs']:6d}"
                )
            for name in a.tools.split(",") if a.tools else []:
                found = run_lib(name, orig, copies, lang, 14, 8)
                rec = sum(found) / len(found)
                rec_hi = sum(found[k] for k in hi) / len(hi) if hi else float("nan")
                curve = statistics.mean(1 - (1 - j**8) ** 14 for j in jac)
                print(
                    f"{lang:4s} {p:5.2f} {jm:6.3f} {f'{name} 14x8':14s} {rec:7.3f} {curve:7.3f} "
                    f"{rec_hi:6.3f} ({len(hi):3d}) {'(no verify)':>12s}"
                )


if __name__ == "__main__":
    main()
