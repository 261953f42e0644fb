"""Tokenize+pack throughput, tokens/s per core, zh / en / code separately.

The protocol of ../shared/baselines/bench_tokenize.py (ANCHORS.md, "tokenize" rows), so
that the figures compare:

- corpus: the anchors' own documents (../shared/baselines/corpus.py over ../shared/data), or
  the same cut of data/demo with ``--corpus demo`` (never one silently for the other); each
  language repeated in order up to ``--target-mb`` (50 MB, as the anchors) and written
  once to a Parquet file of our documents schema (not timed).
- two passes per language: over that **repeated** corpus (the anchors' protocol: the 14-109
  copies keep our word cache warm after the first), and over the **unique** documents once
  (no repetition: every word is new to the cache the first time, as on a real corpus). The
  unique pass also times the tokenizer alone, ours (``Tokenizer.encode_flat``, a cold cache
  every run) against plain ``sp.encode`` of whole documents.
- tokenizer: a 32k LLaMA-style sentencepiece BPE (byte fallback, split digits, identity
  normalisation, character coverage 0.9995, 2 threads) trained by
  ``cama.pack.tokenizer.train_tokenizer`` on every line of every document of the three
  languages, as the anchors trained theirs; or ``--tokenizer DIR``.
- every method reads the same Parquet file and writes its output to local disk, inside
  the timed region, on the same 2 cores:

  ours       ``cama.pack.shards.pack_shards(workers=2)``, the whole stage: Parquet read,
             whole-document encode, sentence split (documents over max_length only),
             greedy packing into ≤ 1024-token samples, MMIDIDX shards, blend.json, stats.
  seed       the seed's structure: ``multiprocessing.Pool(2).imap(chunksize=32)``
             workers split each document into sentences (the same splitters) and
             encode them one by one; the main process packs greedily and writes MMIDIDX.
  megatron   Megatron's tools/preprocess_data.py structure (anchor 3a): ``Pool(2)``
             workers encode whole documents, the main process appends uint16 ids to a .bin.
  ceiling    sentencepiece's own batch encode (anchor 3b): one process,
             ``sp.encode(batch_of_1024, num_threads=2)``, ids appended to a .bin. No
             splitting, no packing: what the tokenizer alone does on 2 cores.

"tok/s/core" is the documents' whole-document token count (no BOS/EOS, the same number
for every method, so ratios of tok/s are ratios of wall time on the same text) divided by
wall time and by the 2 cores. Per-sentence encoding (seed) makes a few % more tokens,
printed as "tok+". Each method runs ``--reps`` times (3), interleaved, in a rotating order
(``benchmarks/timing.py``); every figure is printed as min / median / max and ratios compare
medians. CPU seconds (this process, its threads and its reaped children: the Pool workers)
are printed too: on a shared machine they move less with the load than wall time does.
Targets: ours ≥ 2x seed, ≥ 0.8x ceiling.

usage: python benchmarks/pack_throughput.py [--target-mb 50] [--langs zh,en,code] [--reps 3]
                                            [--corpus anchors|demo] [--tokenizer DIR]
                                            [--passes repeated,unique]
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as demo_corpus  # noqa: E402
from timing import interleaved, rates, spread  # noqa: E402

from cama.io import DOC_SCHEMA, ParquetSink  # noqa: E402
from cama.pack.indexed import IndexedWriter  # noqa: E402
from cama.pack.packing import greedy_pack, with_specials  # noqa: E402
from cama.pack.sentences import splitter_for  # noqa: E402
from cama.pack.shards import PackSettings, iter_rows, pack_shards  # noqa: E402
from cama.pack.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

CORES = 2
BATCH = 1024
MAX_LENGTH, MIN_TOKENS = 1024, 20
ANCHOR_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "baselines" / "corpus.py"


def load_corpus(which: str):
    """(load(lang) -> docs, name) for the anchors' corpus or data/demo: the one asked for."""
    if which == "anchors":
        if not ANCHOR_CORPUS.exists():
            raise SystemExit(f"{ANCHOR_CORPUS} is not here: pass --corpus demo to measure on data/demo instead")
        spec = importlib.util.spec_from_file_location("anchor_corpus", ANCHOR_CORPUS)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.load, f"anchors ({ANCHOR_CORPUS.parent.parent / 'data'})"
    return demo_corpus.load, f"demo ({demo_corpus.DEMO})"


def repeat_to(docs: list[str], target_mb: float) -> list[str]:
    return docs * max(1, round(target_mb * 1e6 / demo_corpus.nbytes(docs)))


def texts_of(path: Path):
    """The text column of a Parquet file, in batches of BATCH."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH, columns=["text"]):
        yield batch.column(0).to_pylist()


# ---- seed-style baseline and Megatron-style pool (module level: Pool workers pickle them)
_W: dict = {}


def _init(model: str, lang: str) -> None:
    import sentencepiece as spm

    _W["sp"] = spm.SentencePieceProcessor(model_file=model)
    _W["split"] = splitter_for(lang)


def _seed_encode(text: str) -> list[list[int]]:
    data = text.encode("utf-8")
    bounds = [0, *_W["split"](data).tolist(), len(data)]
    sentences = [data[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [_W["sp"].encode(s) for s in sentences]  # one sentence at a time, as the seed did


def _doc_encode(text: str) -> list[int]:
    return _W["sp"].encode(text)


def run_seed(pq_path: Path, model: str, lang: str, out: Path) -> int:
    tokens = 0
    rows = (text for _, text, _ in iter_rows(str(pq_path), 0, 1 << 62))
    with mp.get_context("fork").Pool(CORES, initializer=_init, initargs=(model, lang)) as pool:
        with IndexedWriter(out / "seed", np.uint16) as w:
            for sents in pool.imap(_seed_encode, rows, chunksize=32):
                lengths = with_specials([len(s) for s in sents])
                full = np.empty(sum(lengths), dtype=np.uint16)  # BOS + ids + EOS, filled in C
                full[0], full[-1] = 1, 2
                full[1:-1] = np.fromiter(chain.from_iterable(sents), dtype=np.uint16, count=full.size - 2)
                for a, b in greedy_pack(lengths, MAX_LENGTH, MIN_TOKENS).spans:
                    w.add_sequence(full[a:b])
                w.end_document()
                tokens += full.size - 2
    return tokens


def run_megatron(pq_path: Path, model: str, lang: str, out: Path) -> int:
    tokens = 0
    rows = (text for _, text, _ in iter_rows(str(pq_path), 0, 1 << 62))
    with mp.get_context("fork").Pool(CORES, initializer=_init, initargs=(model, lang)) as pool:
        with open(out / "megatron.bin", "wb") as f:
            for ids in pool.imap(_doc_encode, rows, chunksize=32):
                np.asarray(ids, dtype=np.uint16).tofile(f)
                tokens += len(ids)
    return tokens


def run_ceiling(pq_path: Path, model: str, lang: str, out: Path) -> int:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    tokens = 0
    with open(out / "ceiling.bin", "wb") as f:
        for batch in texts_of(pq_path):
            for ids in sp.encode(batch, num_threads=CORES):
                np.asarray(ids, dtype=np.uint16).tofile(f)
                tokens += len(ids)
    return tokens


def run_ours(pq_path: Path, tok_dir: Path, lang: str, out: Path) -> int:
    st = pack_shards({lang: pq_path}, {lang: lang}, tok_dir, set(), out, out / "blend.json", out / "stats.json",
                     PackSettings(max_length=MAX_LENGTH, min_tokens=MIN_TOKENS), workers=CORES)
    t = st["total"]
    return t["doc_tokens"] - 2 * (t["docs"] - t["empty"])


RUNNERS = {"ours": run_ours, "seed": run_seed, "megatron": run_megatron, "ceiling": run_ceiling}


def run_pass(lang: str, pass_: str, docs: list[str], methods: list[str], tmp: Path, tok_dir, model: str,
             reps: int) -> str:
    """Every method on ``docs`` (one Parquet file), ``reps`` interleaved runs each; the ratio line."""
    nbytes = demo_corpus.nbytes(docs)
    pq_path = tmp / f"{lang}.parquet"
    with ParquetSink(pq_path, DOC_SCHEMA) as sink:
        for i, d in enumerate(docs):
            sink.write({"id": f"{lang}/{i}", "text": d, "lang": lang, "source": lang, "meta": "{}"})

    def runner(m: str):
        def run() -> int:
            out = tmp / f"out_{m}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            return RUNNERS[m](pq_path, tok_dir if m == "ours" else model, lang, out)

        return run

    runs = interleaved({m: runner(m) for m in methods}, reps)
    ntok = {m: r.result for m, r in runs.items()}
    base = ntok.get("ceiling", ntok.get("ours"))  # whole-document tokens: the unit of work
    print(f"{lang} {pass_}: {len(docs)} documents, {nbytes / 1e6:.1f} MB, {base} tokens; "
          f"min / median / max of {reps} interleaved runs")
    for m, r in runs.items():
        print(f"  {m:8s} {spread(r.wall)} s -> {spread(rates(base / CORES, r.wall), '{:,.0f}')} tok/s/core; "
              f"CPU {spread(r.cpu)} s -> {base / r.median('cpu'):,.0f} tok/cpu-s (median)"
              + (f"  tok+ {ntok[m] / base - 1:+.1%}" if ntok[m] != base else ""))
    med = {m: r.median() for m, r in runs.items()}
    cpu = {m: r.median("cpu") for m, r in runs.items()}
    line = f"{lang:4s} {pass_:8s} RATIO (medians)"
    if "seed" in med and "ours" in med:
        line += f"  ours/seed {med['seed'] / med['ours']:.2f}x (target >= 2)"
    if "ceiling" in med and "ours" in med:
        line += f"  ours/ceiling {med['ceiling'] / med['ours']:.2f}x (target >= 0.8)"
    if "megatron" in med and "ours" in med:
        line += f"  ours/megatron {med['megatron'] / med['ours']:.2f}x"
    if "seed" in cpu and "ours" in cpu and "ceiling" in cpu:
        line += (f" | by CPU time: ours/seed {cpu['seed'] / cpu['ours']:.2f}x, "
                 f"ours/ceiling {cpu['ceiling'] / cpu['ours']:.2f}x")  # fmt: skip
    print(line + f" | loadavg {os.getloadavg()[0]:.2f}", flush=True)
    return line


def tokenizer_alone(lang: str, docs: list[str], tok_dir, reps: int) -> str:
    """One pass of the tokenizer over unique documents: ours (a cold word cache each run)
    against sentencepiece's own encode of whole documents, one thread each."""
    import sentencepiece as spm

    def ours() -> int:
        tok = Tokenizer(tok_dir)  # a fresh word cache: every word is new the first time
        return sum(int(tok.encode_flat(docs[i : i + BATCH])[1].sum()) for i in range(0, len(docs), BATCH))

    sp = spm.SentencePieceProcessor(model_file=str(Tokenizer(tok_dir).model_file))

    def plain() -> int:
        return sum(len(x) for i in range(0, len(docs), BATCH) for x in sp.encode(docs[i : i + BATCH]))

    runs = interleaved({"ours": ours, "sp.encode": plain}, reps)
    assert runs["ours"].result == runs["sp.encode"].result  # the same ids, counted
    line = (f"{lang:4s} unique   tokenizer alone, CPU s: ours {spread(runs['ours'].cpu)}, sp.encode "
            f"{spread(runs['sp.encode'].cpu)} -> {runs['sp.encode'].median('cpu') / runs['ours'].median('cpu'):.2f}x "
            "(medians; a cold word cache every run)")
    print(line, flush=True)
    return line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-mb", type=float, default=50)
    ap.add_argument("--langs", default="zh,en,code")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--methods", default="ours,seed,megatron,ceiling")
    ap.add_argument("--corpus", choices=["anchors", "demo"], default="anchors",
                    help="the anchors' documents (../shared/baselines/corpus.py) or data/demo")  # fmt: skip
    ap.add_argument("--tokenizer", default=None)
    ap.add_argument("--passes", default="repeated,unique", help="repeated (to --target-mb), unique (once)")
    a = ap.parse_args()
    load, corpus_name = load_corpus(a.corpus)
    tmp = Path(tempfile.mkdtemp(prefix="pack_bench_"))
    tok_dir = a.tokenizer
    if tok_dir is None:
        tok_dir = tmp / "tok32k"
        t0 = time.perf_counter()
        texts = [d for lang in ("zh", "en", "code") for d in load(lang)]
        train_tokenizer(texts, tok_dir, vocab_size=32000, character_coverage=0.9995, num_threads=CORES)
        print(f"trained the 32k tokenizer in {time.perf_counter() - t0:.1f}s")
    tok = Tokenizer(tok_dir)
    model = str(tok.model_file)
    print(f"machine: {os.cpu_count()} cores, loadavg {os.getloadavg()}; corpus {corpus_name}; "
          f"tokenizer vocab {tok.vocab_size}; sentencepiece {version('sentencepiece')}, numpy {np.__version__}")
    methods = a.methods.split(",")
    summary = []
    for lang in a.langs.split(","):
        unique = load(lang)
        for pass_ in a.passes.split(","):
            docs = repeat_to(unique, a.target_mb) if pass_ == "repeated" else unique
            summary.append(run_pass(lang, pass_, docs, methods, tmp, tok_dir, model, a.reps))
            if pass_ == "unique":
                summary.append(tokenizer_alone(lang, docs, tok_dir, a.reps))
    print("\n".join(summary))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
