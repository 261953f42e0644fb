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
import functools
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
from timing import interleaved, rates, spread  # noqa: E402

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


def stage_runner(texts, lang, bands, rows, tmp: Path):
    """The whole stage on ``texts`` written once as one source (not timed); call it to run it."""
    from cama.clean.dedup import dedup_corpus
    from cama.io import write_docs

    src = tmp / "in.parquet"
    write_docs(src, texts, "b", lang)
    settings = {
        "exact": True,
        "keep": "longest",
        "minhash": {"enabled": True, "num_perm": NUM_PERM, "bands": bands, "rows": rows, "seed": SEED,
                    "min_jaccard": 0.7},
    }  # fmt: skip
    return lambda: dedup_corpus({"b": src}, {"b": tmp / "out.parquet"}, {"b": lang}, tmp / "clusters.parquet",
                                tmp / "stats.json", settings)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-mb", type=float, default=10)
    ap.add_argument("--langs", default="en,zh,code")
    ap.add_argument("--tools", default="cama,rensa,datasketch")
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--no-stage", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each contender")
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
        fns = {}
        for name in tools:
            fn = {"cama": run_cama, "rensa": run_rensa, "datasketch": run_datasketch}[name]
            fn(base[:50], lang, a.bands, a.rows)  # warm-up
            fns[name] = functools.partial(fn, texts, lang, a.bands, a.rows)
        if "cama" in tools:
            fns["cama + verify pairs"] = functools.partial(run_cama, texts, lang, a.bands, a.rows, verify=True)
            if not a.no_stage:
                fns["dedup_corpus (stage)"] = stage_runner(texts, lang, a.bands, a.rows, Path(tempfile.mkdtemp()))
        runs = interleaved(fns, a.repeats)
        print(f"  MB/s, min / median / max of {a.repeats} interleaved runs:")
        for name, r in runs.items():
            what = (f"kept {r.result['kept']}/{r.result['docs_in']} (exact {r.result['exact_duplicates']}, "
                    f"near {r.result['near_duplicates']})" if name.startswith("dedup_corpus")
                    else f"{'verified' if 'verify' in name else 'candidates'} {r.result}")  # fmt: skip
            print(f"  {name:22s} {spread(rates(mb, r.wall))} MB/s  cpu/wall {sum(r.cpu) / sum(r.wall):.2f}  {what}")
        for other in ("rensa", "datasketch"):
            if "cama" in runs and other in runs:
                print(f"  ratio cama/{other}: {runs[other].median() / runs['cama'].median():.2f}x (medians)")


if __name__ == "__main__":
    main()
