"""Near-dedup throughput: cama's numpy MinHash LSH against datasketch and rensa, one process.

All three get the same documents (benchmarks/corpus.py, repeated to --target-mb), the same
shingles (en/code 5-word of ``text.lower().split()``, zh 5-char with whitespace removed),
112 permutations and the same bands × rows (default 14 × 8, the anchor baselines'). Each
hashes every document, indexes it, and finds its candidates (datasketch / rensa: insert every
document, then query every document, as ``shared/baselines/bench_minhash.py``). Shingling is
timed as part of the job. cama's figure is shingles → signatures → band keys → candidate
pairs; a second line adds the verification of every candidate pair by its exact Jaccard
(which the libraries do not do). The repeated corpus is full of exact copies, so that line
verifies many identical pairs; in the pipeline exact duplicates go first.

A last line runs the whole stage, ``dedup_corpus`` (parquet in and out, exact dedup, stats),
on the same documents written as one source.

usage: python benchmarks/dedup_throughput.py [--target-mb 10] [--langs en,zh,code]
       [--tools cama,rensa,datasketch] [--bands 14 --rows 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

from cama.clean import minhash  # noqa: E402

NUM_PERM, SEED = 112, 1
UNIT = {"en": "word", "zh": "char", "code": "word"}


def shingles(text: str, lang: str) -> set[str]:
    if lang == "zh":
        t = "".join(text.split())
        return {t[i : i + 5] for i in range(max(1, len(t) - 4))}
    w = text.lower().split()
    return {" ".join(w[i : i + 5]) for i in range(max(1, len(w) - 4))}


def library_index(name: str, texts, lang, bands, rows):
    """Signatures of ``texts`` and an LSH index holding them all, built with ``name``'s library."""
    if name == "rensa":
        from rensa import RMinHash, RMinHashLSH

        sigs = []
        for t in texts:
            m = RMinHash(NUM_PERM, SEED)
            m.update(list(shingles(t, lang)))
            sigs.append(m)
        lsh = RMinHashLSH(0.5, NUM_PERM, bands)  # bands fix rows = NUM_PERM // bands
    else:
        from datasketch import MinHash, MinHashLSH

        sigs = []
        for t in texts:
            m = MinHash(num_perm=NUM_PERM, seed=SEED)
            m.update_batch([s.encode("utf-8") for s in shingles(t, lang)])
            sigs.append(m)
        lsh = MinHashLSH(num_perm=NUM_PERM, params=(bands, rows))
    for i, m in enumerate(sigs):
        lsh.insert(i, m)
    return sigs, lsh


def run_datasketch(texts, lang, bands, rows):
    sigs, lsh = library_index("datasketch", texts, lang, bands, rows)
    return sum(len(lsh.query(m)) for m in sigs)


def run_rensa(texts, lang, bands, rows):
    sigs, lsh = library_index("rensa", texts, lang, bands, rows)
    return sum(len(lsh.query(m)) for m in sigs)


def run_cama(texts, lang, bands, rows, verify=False):
    from cama.clean.dedup import _byte_chunks  # ~1 MB of text per vectorised call

    hasher = minhash.MinHasher(NUM_PERM, bands, rows, SEED)
    keys = []
    for a, b in _byte_chunks(texts):
        k, _ = hasher.keys_for(texts[a:b], UNIT[lang], 5)
        keys.append(k)
    pairs = minhash.candidate_pairs(minhash.np.concatenate(keys))
    if verify:
        need = minhash.np.unique(pairs)
        sets = minhash.shingle_sets([texts[i] for i in need], UNIT[lang], 5, SEED)
        sets = dict(zip(need.tolist(), sets, strict=True))
        for i, j in pairs.tolist():
            minhash.jaccard(sets[i], sets[j])
    return len(pairs)


def run_stage(texts, lang, bands, rows):

    from cama.clean.dedup import dedup_corpus
    from cama.io import write_docs

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.parquet"
        write_docs(src, texts, "b", lang)
        settings = {
            "exact": True,
            "keep": "longest",
            "minhash": {
                "enabled": True,
                "num_perm": NUM_PERM,
                "bands": bands,
                "rows": rows,
                "seed": SEED,
                "min_jaccard": 0.7,
            },
        }
        t0 = time.perf_counter()
        stats = dedup_corpus(
            {"b": src},
            {"b": Path(tmp) / "out.parquet"},
            {"b": lang},
            Path(tmp) / "clusters.parquet",
            Path(tmp) / "stats.json",
            settings,
        )
        return time.perf_counter() - t0, stats


def timed(fn, *args, **kw):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-mb", type=float, default=10)
    ap.add_argument("--langs", default="en,zh,code")
    ap.add_argument("--tools", default="cama,rensa,datasketch")
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--no-stage", action="store_true")
    a = ap.parse_args()
    tools = a.tools.split(",")
    print(
        f"datasketch {version('datasketch')}, rensa {version('rensa')}, numpy {version('numpy')}"
        f" | {NUM_PERM} perms, {a.bands} x {a.rows} | loadavg {os.getloadavg()[0]:.2f}"
    )
    for lang in a.langs.split(","):
        base = corpus.load(lang)
        texts = corpus.repeat_to(base, a.target_mb)
        mb = corpus.nbytes(texts) / 1e6
        print(f"[{lang}] {len(texts)} docs ({len(base)} unique), {mb:.1f} MB")
        speed = {}
        for name in tools:
            fn = {"cama": run_cama, "rensa": run_rensa, "datasketch": run_datasketch}[name]
            fn(base[:50], lang, a.bands, a.rows)  # warm-up
            wall, cpu, cand = timed(fn, texts, lang, a.bands, a.rows)
            speed[name] = mb / wall
            print(
                f"  {name:22s} {wall:7.2f} s  {mb / wall:7.2f} MB/s  cpu/wall {cpu / wall:.2f}"
                f"  candidates {cand}"
            )
        if "cama" in tools:
            wall, cpu, cand = timed(run_cama, texts, lang, a.bands, a.rows, verify=True)
            print(
                f"  {'cama + verify pairs':22s} {wall:7.2f} s  {mb / wall:7.2f} MB/s  "
                f"cpu/wall {cpu / wall:.2f}  verified {cand}"
            )
            for other in ("rensa", "datasketch"):
                if other in speed:
                    print(f"  ratio cama/{other}: {speed['cama'] / speed[other]:.2f}x")
            if not a.no_stage:
                wall, stats = run_stage(texts, lang, a.bands, a.rows)
                print(
                    f"  {'dedup_corpus (stage)':22s} {wall:7.2f} s  {mb / wall:7.2f} MB/s  "
                    f"kept {stats['kept']}/{stats['docs_in']} (exact {stats['exact_duplicates']},"
                    f" near {stats['near_duplicates']})"
                )


if __name__ == "__main__":
    main()
