"""Tokenize+pack throughput, tokens/s per core, zh / en / code separately.

Three ways over the same documents, tokenizer and cores:

- ours:      ``cama.pack.shards.pack_shards`` with 2 workers: whole-document encode, sentence
             boundaries by byte offsets, greedy packing, MMIDIDX shards (reads Parquet too).
- seed:      the seed's structure: ``multiprocessing.Pool(2).imap`` workers split a document
             into sentences (the same splitters) and encode each sentence on its own; one
             writer process packs greedily and writes the shard.
- ceiling:   sentencepiece's own batch encode of whole documents (``num_threads=2``), no
             splitting, no packing, nothing written: the tokenizer's ceiling.

The tokenizer is a 32k LLaMA-style BPE trained by ``cama.pack.tokenizer.train_tokenizer``
on the benchmark corpus (as ../shared/baselines/bench_tokenize.py did), unless --tokenizer.
"per core" divides by the 2 cores the runs occupy. Ratios compare wall time on the same
text (tokens differ by the few % that per-sentence encoding adds, printed as "tok+").
Targets: ours ≥ 2× seed, ours ≥ 0.8× ceiling.

usage: python benchmarks/pack_throughput.py [--target-mb 10] [--langs zh,en,code] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

from cama.io import DOC_SCHEMA, ParquetSink  # noqa: E402
from cama.pack.indexed import IndexedWriter  # noqa: E402
from cama.pack.packing import greedy_pack, with_specials  # noqa: E402
from cama.pack.sentences import splitter_for  # noqa: E402
from cama.pack.shards import PackSettings, pack_shards  # noqa: E402
from cama.pack.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

CORES = 2

# ---- seed-style baseline (module level so Pool workers can pickle the functions)
_SEED: dict = {}


def _seed_init(model: str, lang: str) -> None:
    import sentencepiece as spm

    _SEED["sp"] = spm.SentencePieceProcessor(model_file=model)
    _SEED["split"] = splitter_for(lang)


def _seed_encode(text: str) -> list[list[int]]:
    data = text.encode("utf-8")
    bounds = [0, *_SEED["split"](data).tolist(), len(data)]
    sentences = [data[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [_SEED["sp"].encode(s) for s in sentences]  # one sentence at a time, as the seed did


def run_seed(docs: list[str], model: str, lang: str, prefix: str, max_length: int, min_tokens: int) -> int:
    tokens = 0
    with mp.get_context("fork").Pool(CORES, initializer=_seed_init, initargs=(model, lang)) as pool:
        with IndexedWriter(prefix, np.uint16) as w:
            for sents in pool.imap(_seed_encode, docs, chunksize=32):
                lengths = with_specials([len(s) for s in sents])
                full = np.asarray([1, *(i for s in sents for i in s), 2], dtype=np.uint16)
                for a, b in greedy_pack(lengths, max_length, min_tokens).spans:
                    w.add_sequence(full[a:b])
                w.end_document()
                tokens += full.size
    return tokens


def run_ceiling(docs: list[str], model: str) -> int:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=model)
    tokens = 0
    for i in range(0, len(docs), 1024):
        tokens += sum(len(x) + 2 for x in sp.encode(docs[i : i + 1024], num_threads=CORES))
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-mb", type=float, default=10)
    ap.add_argument("--langs", default="zh,en,code")
    ap.add_argument("--tokenizer", default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pack_bench_"))
    tok_dir = a.tokenizer
    if tok_dir is None:
        tok_dir = tmp / "tok32k"
        t0 = time.perf_counter()
        texts = [d for lang in ("zh", "en", "code") for d in corpus.load(lang)]
        train_tokenizer(texts, tok_dir, vocab_size=32000, num_threads=CORES)
        print(f"trained 32k tokenizer in {time.perf_counter() - t0:.1f}s")
    model = str(Tokenizer(tok_dir).model_file)
    print(f"machine: {os.cpu_count()} cores, loadavg {os.getloadavg()}")
    for lang in a.langs.split(","):
        docs = corpus.repeat_to(corpus.load(lang), a.target_mb)
        nbytes = corpus.nbytes(docs)
        pq_path = tmp / f"{lang}.parquet"
        with ParquetSink(pq_path, DOC_SCHEMA) as sink:
            for i, d in enumerate(docs):
                sink.write({"id": f"{lang}/{i}", "text": d, "lang": lang, "source": lang, "meta": "{}"})
        settings = PackSettings(max_length=1024, min_tokens=20)
        res = {}
        t0 = time.perf_counter()
        st = pack_shards({lang: pq_path}, {lang: lang}, tok_dir, set(), tmp / "ours", tmp / "ours/blend.json",
                         tmp / "ours/stats.json", settings, workers=CORES)
        res["ours"] = (time.perf_counter() - t0, st["total"]["doc_tokens"])
        t0 = time.perf_counter()
        n = run_seed(docs, model, lang, str(tmp / f"seed_{lang}"), 1024, 20)
        res["seed"] = (time.perf_counter() - t0, n)
        t0 = time.perf_counter()
        n = run_ceiling(docs, model)
        res["ceiling"] = (time.perf_counter() - t0, n)
        for name, (dt, ntok) in res.items():
            print(f"{lang:4s} {name:8s} {len(docs)} docs {nbytes / 1e6:.1f} MB {ntok} tokens in {dt:.2f}s -> "
                  f"{ntok / dt / CORES:,.0f} tok/s/core, {nbytes / dt / 1e6 / CORES:.2f} MB/s/core")
        ours, seed, ceil = res["ours"][0], res["seed"][0], res["ceiling"][0]
        print(f"{lang:4s} RATIO ours/seed {seed / ours:.2f}x (target >= 2)  ours/ceiling {ceil / ours:.2f}x "
              f"(target >= 0.8)  tok+ seed vs whole-doc {res['seed'][1] / res['ours'][1] - 1:+.1%} "
              f"| loadavg {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
