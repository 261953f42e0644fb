"""Random-access read throughput of samples: our IndexedReader vs megatron-core's IndexedDataset.

The protocol of ../shared/baselines/bench_megatron_indexed.py (ANCHORS.md, 211k samples/s
for megatron-core with memory-mapped views, 150k with the tokens copied):

- data: real token ids. The corpus (the anchors' documents when ../shared is there, else
  data/demo) is encoded with a 32k LLaMA-style tokenizer trained on it, each language's
  documents are repeated in order up to ``--target-mb`` (50 MB as the anchors: ~117k
  documents), and written with our ``IndexedWriter`` as one uint16 sequence per
  document, one Megatron document each, into one .bin/.idx. ``--prefix`` reads an
  existing shard instead (for example one written by the pack stage).
- reads: ``--reads`` uniformly random sequence indices (numpy seed 0, Python ints), single
  process, page cache warm (every byte read once before timing, and 2000 warm-up reads);
  ``ds[i]`` as a view, and ``np.array(ds[i])`` with the tokens copied. Both readers open
  the very same files (megatron-core with ``mmap=True``, its default).
- each variant runs ``--reps`` times, the readers alternating; the best run counts.

usage: python benchmarks/shard_read.py [--target-mb 50] [--reads 200000] [--reps 3] [--prefix P]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus as demo_corpus  # noqa: E402
from timing import interleaved, rates, spread  # noqa: E402

from cama.pack.indexed import IndexedReader, IndexedWriter  # noqa: E402
from cama.pack.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

ANCHOR_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "baselines" / "corpus.py"


def _load(which: str):
    """The anchors' corpus (``../shared``) or data/demo, as asked: never one for the other."""
    if which == "demo":
        return demo_corpus.load, "demo"
    if not ANCHOR_CORPUS.exists():
        raise SystemExit(f"{ANCHOR_CORPUS} is not here: pass --corpus demo to measure on data/demo instead")
    spec = importlib.util.spec_from_file_location("anchor_corpus", ANCHOR_CORPUS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load, "anchors"


def build(prefix: Path, tmp: Path, target_mb: float, which: str) -> None:
    """One sequence per document, real ids, each language repeated up to target_mb."""
    load, name = _load(which)
    texts = {lang: load(lang) for lang in ("zh", "en", "code")}
    tok_dir = tmp / "tok32k"
    train_tokenizer([d for ds in texts.values() for d in ds], tok_dir, vocab_size=32000, num_threads=2)
    tok = Tokenizer(tok_dir)
    n_docs = n_tok = 0
    with IndexedWriter(prefix, np.uint16) as w:
        for docs in texts.values():
            ids = [np.asarray(x, dtype=np.uint16) for x in tok.encode(docs, num_threads=2)]
            reps = max(1, round(target_mb * 1e6 / demo_corpus.nbytes(docs)))
            for _ in range(reps):  # the corpus repeated in order, as the anchors did
                for x in ids:
                    w.add_sequence(x)
                    w.end_document()
            n_docs += reps * len(ids)
            n_tok += reps * sum(x.size for x in ids)
    print(f"built {prefix}: {name} corpus, {n_docs} sequences, {n_tok} tokens "
          f"({n_tok / n_docs:.0f} per sequence), .bin {os.path.getsize(f'{prefix}.bin') / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-mb", type=float, default=50)
    ap.add_argument("--reads", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prefix", default=None)
    ap.add_argument("--corpus", choices=["anchors", "demo"], default="anchors",
                    help="the anchors' documents (../shared/baselines/corpus.py) or data/demo")  # fmt: skip
    a = ap.parse_args()
    import torch  # noqa: F401  (megatron-core imports it; import it outside the timed region)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    tmp = Path(tempfile.mkdtemp(prefix="shard_read_"))
    prefix = Path(a.prefix) if a.prefix else tmp / "all"
    if not a.prefix:
        build(prefix, tmp, a.target_mb, a.corpus)
    for suffix in (".bin", ".idx"):  # warm the page cache
        Path(f"{prefix}{suffix}").read_bytes()
    ours = IndexedReader(prefix)
    theirs = IndexedDataset(str(prefix), mmap=True)
    assert len(ours) == len(theirs)
    idx = np.random.default_rng(0).integers(0, len(ours), size=a.reads).tolist()
    for i in idx[:2000]:
        assert np.array_equal(ours[i], theirs[i])

    def view(ds) -> int:
        n = 0
        for i in idx:
            n += ds[i].size
        return n

    def copy(ds) -> int:
        n = 0
        for i in idx:
            n += np.array(ds[i]).size
        return n

    print(f"megatron-core {version('megatron-core')}, numpy {np.__version__}, {os.cpu_count()} cores "
          f"| loadavg {os.getloadavg()}")
    runs = interleaved({f"{variant} {name}": functools.partial(fn, ds)
                        for variant, fn in (("view", view), ("copy", copy))
                        for name, ds in (("ours", ours), ("megatron", theirs))}, a.reps)  # fmt: skip
    ntok = runs["view ours"].result
    print(f"{len(ours)} sequences, {a.reads} uniform random reads, mean {ntok / a.reads:.0f} tokens/read; "
          f"samples/s, min / median / max of {a.reps} interleaved runs")
    for variant in ("view", "copy"):
        r_ours, r_meg = runs[f"{variant} ours"], runs[f"{variant} megatron"]
        print(f"{variant:4s}: ours {spread(rates(a.reads, r_ours.wall), '{:,.0f}')}, megatron-core IndexedDataset "
              f"{spread(rates(a.reads, r_meg.wall), '{:,.0f}')} -> ratio {r_meg.median() / r_ours.median():.2f}x "
              "(medians; target >= 1)")
    print(f"loadavg {os.getloadavg()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
