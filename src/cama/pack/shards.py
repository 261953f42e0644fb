"""The shard stage: encode, sentence-pack and write Megatron shards in parallel.

Per batch of documents (``PackSettings.batch_docs``):

1. Encode the documents whole with one sentencepiece call (through a word cache, or a
   long one in pieces cut at spaces, which gives the same ids faster:
   ``Tokenizer.encode_flat``), and lay them end to end, each framed by BOS and EOS, in
   one token array.
2. One cumulative sum of the tokens' byte widths (``Tokenizer.surface_bytes``) gives
   where each token ends in its text, and checks at once that every document's widths
   add up to its length.
3. A document that fits in ``max_length`` tokens is one sample as it is. A longer one is
   split into sentences, found as UTF-8 byte offsets (``sentences.py``) and mapped onto
   token offsets by ``np.searchsorted``: a sentence ends at the last token that ends at
   or before its last byte. Its sentences are packed (``packing.py``) into samples that
   are contiguous slices of the token array.
4. The kept samples, in order, are written with one array per batch.

**Tokens differ slightly from per-sentence encoding**, as the seed did it, and that is
fine. Encoding a sentence alone adds sentencepiece's dummy-prefix space to it, so every
sentence after the first would start with a "▁" that is not in the text; and a piece
that crosses a boundary (for example "。\\n" or ".\\n\\n" merged into one token) is
encoded differently. Whole-document encoding is exactly what the tokenizer does at
training and inference time, so the shards hold the true token sequence of every
document, and decoding a document's samples gives back its text byte for byte. The one
cost is that a token straddling a sentence boundary goes wholly to the next sentence,
so a sample may end one token before its last sentence's final byte. On the demo
corpus, per-sentence encoding gives 1-4 % more tokens than whole-document encoding
(see benchmarks/pack_throughput.py). A document whose token widths do not add up to its
byte length (a tokenizer that normalises text, or one that emits <unk>) is encoded
sentence by sentence instead, and counted as ``per_sentence_docs``.

**Parallelism and determinism.** Each source is cut into ``workers`` contiguous row
ranges, and each range becomes one shard ``{source}_{k}``: tasks never share output, so
the shards are byte-identical however the pool schedules them. The main process only
gathers counts and writes ``blend.json`` and the stats. Memory per worker is bounded by
one batch of documents (and, for best-fit, one window of pieces), whatever the corpus size.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from cama.config import LANGS, default
from cama.errors import ConfigError
from cama.io import count_rows, write_json
from cama.pack.indexed import IndexedWriter, dtype_for_vocab
from cama.pack.packing import (
    best_fit_decreasing,
    check_max_length,
    doc_pieces,
    greedy_pack,
    with_specials,
)
from cama.pack.sentences import splitter_for
from cama.pack.tokenizer import Tokenizer

log = logging.getLogger(__name__)

HIST_BINS = 32  # sample-length histogram bins over [0, max_length]


@dataclass(frozen=True)
class PackSettings:
    """How documents become samples: some keys of the ``pack`` section (defaults: the schema's),
    and two of the stage's own batch sizes."""

    max_length: int = default("pack.max_length")  # tokens per sample, BOS/EOS included
    min_tokens: int = default("pack.min_tokens")  # samples of ≤ this many tokens are dropped
    packing: str = default("pack.packing")  # greedy | best_fit
    en_splitter: str = default("pack.sentences.en")  # blingfire | pysbd
    # split every document into sentences, also those that fit whole in one sample,
    # only to count sentences per sample (the output is the same; en splitting costs ~20 %)
    sentence_stats: bool = default("pack.sentence_stats")
    batch_docs: int = 1024  # documents per sentencepiece call (and per write): not config
    best_fit_window: int = 1 << 20  # tokens of pieces gathered before best-fit packs them: not config

    @classmethod
    def from_config(cls, pack: dict) -> PackSettings:
        """From the validated ``pack`` section."""
        return cls(max_length=pack["max_length"], min_tokens=pack["min_tokens"], packing=pack["packing"],
                   en_splitter=pack["sentences"]["en"], sentence_stats=pack["sentence_stats"])  # fmt: skip

    def check(self) -> None:
        check_max_length(self.max_length)
        if self.packing not in ("greedy", "best_fit"):
            raise ConfigError(f"pack.packing: {self.packing!r} is not one of ['greedy', 'best_fit']")
        if self.min_tokens < 0:
            raise ConfigError(f"pack.min_tokens: {self.min_tokens} is negative")


@dataclass(frozen=True)
class Task:
    """One shard: rows [start, stop) of one source's Parquet file."""

    source: str
    k: int
    path: str
    start: int
    stop: int
    prefix: str


@dataclass
class ShardStats:
    """Counts for one shard; summed over shards for the stage's stats."""

    docs: int = 0  # rows read
    heldout: int = 0  # skipped: held out
    empty: int = 0  # skipped: empty or whitespace only
    docs_packed: int = 0  # documents with at least one kept sample
    doc_tokens: int = 0  # tokens of all packed documents, BOS/EOS included
    tokens: int = 0  # tokens in kept samples
    samples: int = 0
    sentences: int = 0  # sentences (or chunks) in kept samples of split documents
    split_samples: int = 0  # kept samples of documents split into sentences (greedy)
    whole_docs: int = 0  # documents that fit in one sample, not split into sentences
    chunked: int = 0  # sentences longer than max_length, cut into chunks
    dropped_samples: int = 0
    dropped_tokens: int = 0
    chars: int = 0  # characters of packed documents
    bytes: int = 0  # UTF-8 bytes of packed documents
    per_sentence_docs: int = 0  # documents encoded sentence by sentence (widths did not add up)
    hist: list[int] = field(default_factory=lambda: [0] * HIST_BINS)

    def add(self, other: ShardStats) -> None:
        for name, value in asdict(other).items():
            if name == "hist":
                self.hist = [a + b for a, b in zip(self.hist, value, strict=True)]
            else:
                setattr(self, name, getattr(self, name) + value)


# ---------------------------------------------------------------- one document


def encode_per_sentence(tok: Tokenizer, data: bytes, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The seed's way: each sentence encoded alone. Used when offsets cannot be mapped."""
    bounds = [0, *cuts.tolist(), len(data)]
    sentences = [data[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    pieces = tok.encode(sentences)
    lengths = np.asarray([len(p) for p in pieces], dtype=np.int64)
    ids = np.fromiter((i for p in pieces for i in p), dtype=np.int64, count=int(lengths.sum()))
    return ids, lengths


# ---------------------------------------------------------------- one shard


class _ShardPacker:
    """Packs batches of documents into one shard's writer and counts what happens.

    A batch is handled as arrays, not document by document: one sentencepiece call
    encodes it into one id array; one masked assignment lays all documents, each framed
    by BOS/EOS, end to end in one token array (``buf``); one cumulative sum of the
    tokens' byte widths gives every token's end offset, which checks every document's
    width at once; and the kept samples go to the writer as one array. Only documents
    longer than ``max_length`` are split into sentences and packed by ``greedy_pack``: a
    document that fits is one sample whatever its sentences are, so splitting it would
    only feed the sentences-per-sample statistic (``PackSettings.sentence_stats`` asks
    for that).
    """

    def __init__(self, tok: Tokenizer, settings: PackSettings, writer: IndexedWriter):
        self.tok, self.s, self.w = tok, settings, writer
        self.stats = ShardStats()
        self._splitters: dict = {}
        self._pieces: list[np.ndarray] = []  # best-fit window
        self._window_tokens = 0
        self._bos_eos = np.asarray([tok.bos_id, tok.eos_id], dtype=writer.dtype)

    def splitter(self, lang: str):
        if lang not in self._splitters:
            self._splitters[lang] = splitter_for(lang, self.s.en_splitter)
        return self._splitters[lang]

    def add_batch(self, texts: list[str], langs: list[str]) -> None:
        """Encode, split, pack and write a batch of non-empty documents, in order."""
        if not texts:
            return
        tok, st, max_length = self.tok, self.stats, self.s.max_length
        datas = [t.encode("utf-8") for t in texts]
        n_docs = len(texts)
        nbytes = np.fromiter(map(len, datas), dtype=np.int64, count=n_docs)
        ids, lens = tok.encode_flat(texts)
        total = lens + 2  # BOS/EOS included
        fe = np.cumsum(total)  # document j is buf[fs[j]:fe[j]]
        fs = fe - total
        # every document framed by BOS/EOS, end to end
        buf = np.empty(int(fe[-1]), dtype=self.w.dtype)
        body = np.ones(buf.size, dtype=bool)
        body[fs] = body[fe - 1] = False
        buf[body] = ids
        buf[fs], buf[fe - 1] = tok.bos_id, tok.eos_id
        del ids, body
        # cw[p] = bytes covered by buf[:p]; BOS/EOS (control tokens) cover none. A
        # document's first token also covers the dummy-prefix "▁" that is not in its text.
        cw = np.zeros(buf.size + 1, dtype=np.int64)
        np.cumsum(tok.surface_bytes[buf], out=cw[1:])
        ok = (total == 2) | (cw[fe] - cw[fs] - tok.dummy_prefix == nbytes)
        st.chars += sum(map(len, texts))
        st.bytes += int(nbytes.sum())

        whole = ok & (total <= max_length) if not self.s.sentence_stats else np.zeros(n_docs, dtype=bool)
        split = np.flatnonzero(~whole).tolist()
        extra: list[np.ndarray] = []  # documents encoded sentence by sentence, after buf
        extra_at = buf.size
        doc_spans: dict[int, list[tuple[int, int]]] = {}  # split documents' kept samples, in buf coordinates
        for j in split:
            data, a = datas[j], int(fs[j])
            cuts = self.splitter(langs[j])(data)
            if ok[j]:
                n = int(total[j]) - 2
                # where each token ends, in bytes from the start of the text; a token belongs
                # to the sentence in which it ends, so one that straddles a cut opens the next
                ends = cw[a + 2 : a + n + 2] - cw[a + 1] - tok.dummy_prefix
                bounds = np.searchsorted(ends, cuts, side="right")
                lengths = np.diff(bounds, prepend=0, append=n).tolist()
            else:
                arr, lens = encode_per_sentence(tok, data, cuts)
                st.per_sentence_docs += 1
                doc = np.concatenate((self._bos_eos[:1], arr.astype(self.w.dtype), self._bos_eos[1:]))
                extra.append(doc)
                total[j], a = doc.size, extra_at
                extra_at += doc.size
                lengths = lens.tolist()
            lengths = with_specials(lengths)
            if self.s.packing == "greedy":
                packed = greedy_pack(lengths, max_length, self.s.min_tokens)
                st.chunked += packed.chunked
                st.sentences += sum(packed.sentences)
                st.split_samples += len(packed.spans)
                st.dropped_samples += len(packed.dropped)
                st.dropped_tokens += sum(e - b for b, e in packed.dropped)
                doc_spans[j] = [(a + b, a + e) for b, e in packed.spans]
            else:
                st.chunked += sum(1 for n in lengths if n > max_length)
                st.sentences += len(lengths)
                doc_spans[j] = [(a + b, a + e) for b, e in doc_pieces(lengths, max_length)]
        st.doc_tokens += int(total.sum())
        if extra:
            buf = np.concatenate([buf, *extra])

        if self.s.packing != "greedy":
            st.whole_docs += int(whole.sum())
            for j in range(n_docs):
                spans = doc_spans[j] if j in doc_spans else [(int(fs[j]), int(fe[j]))]
                st.docs_packed += 1
                for b, e in spans:
                    self._pieces.append(buf[b:e])
                    self._window_tokens += e - b
                if self._window_tokens >= self.s.best_fit_window:  # after a whole document
                    self.flush()
            return

        # greedy: a whole document is one sample, or one dropped sample
        short = whole & (total <= self.s.min_tokens)
        st.dropped_samples += int(short.sum())
        st.dropped_tokens += int(total[short].sum())
        kept = np.flatnonzero(whole & ~short)
        st.whole_docs += kept.size
        if doc_spans:
            starts, stops, docs = fs[kept].tolist(), fe[kept].tolist(), kept.tolist()
            for j, spans in doc_spans.items():
                starts += [b for b, _ in spans]
                stops += [e for _, e in spans]
                docs += [j] * len(spans)
            order = np.argsort(np.asarray(docs, dtype=np.int64), kind="stable")  # document order
            starts = np.asarray(starts, dtype=np.int64)[order]
            stops = np.asarray(stops, dtype=np.int64)[order]
            docs = np.asarray(docs, dtype=np.int64)[order]
        else:
            starts, stops, docs = fs[kept], fe[kept], kept
        if not docs.size:
            return
        lengths = stops - starts
        # samples in order are mostly back to back: copy only the runs between dropped ones
        gaps = np.flatnonzero(starts[1:] != stops[:-1]) + 1
        run_starts, run_stops = starts[np.r_[0, gaps]], stops[np.r_[gaps - 1, docs.size - 1]]
        if run_starts.size == 1:
            tokens = buf[run_starts[0] : run_stops[0]]
        else:
            tokens = np.concatenate([buf[b:e] for b, e in zip(run_starts.tolist(), run_stops.tolist(), strict=True)])
        doc_ends = np.r_[np.flatnonzero(docs[1:] != docs[:-1]) + 1, docs.size]  # one Megatron document each
        self.w.add_sequences(tokens, lengths, doc_ends)
        st.docs_packed += doc_ends.size
        st.samples += lengths.size
        st.tokens += int(lengths.sum())
        bins = np.minimum(HIST_BINS - 1, lengths * HIST_BINS // (max_length + 1))
        st.hist = (np.asarray(st.hist) + np.bincount(bins, minlength=HIST_BINS)).tolist()

    def _emit(self, sample: np.ndarray) -> None:
        self.w.add_sequence(sample)
        self.stats.samples += 1
        self.stats.tokens += sample.size
        self.stats.hist[min(HIST_BINS - 1, sample.size * HIST_BINS // (self.s.max_length + 1))] += 1

    def flush(self) -> None:
        """Best-fit: pack the window's pieces; each sample is its own Megatron document.

        Samples hold several documents here; each of those starts with BOS, which is how
        a trainer finds the boundaries inside a sample.
        """
        if not self._pieces:
            return
        bins = best_fit_decreasing([p.size for p in self._pieces], self.s.max_length)
        for b in bins:
            sample = np.concatenate([self._pieces[i] for i in b])
            if sample.size <= self.s.min_tokens:
                self.stats.dropped_samples += 1
                self.stats.dropped_tokens += sample.size
                continue
            self._emit(sample)
            self.w.end_document()
        self._pieces, self._window_tokens = [], 0


_TOKENIZERS: dict[str, Tokenizer] = {}


def _tokenizer(path: str) -> Tokenizer:
    # one per process: building the width table costs a pass over the vocabulary
    # (pack_shards fills this before forking its workers, so they inherit it)
    if path not in _TOKENIZERS:
        _TOKENIZERS[path] = Tokenizer(path)
    return _TOKENIZERS[path]


def iter_rows(path: str, start: int, stop: int, batch_rows: int = 1024):
    """Rows [start, stop) of a Parquet file as (id, text, lang), streamed by row group."""
    pf = pq.ParquetFile(path)
    row = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        if row + n <= start:  # whole row group before the range: not read at all
            row += n
            continue
        if row >= stop:
            break
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[rg], columns=["id", "text", "lang"]):
            cols = batch.to_pydict()
            a, b = max(start - row, 0), min(stop - row, batch.num_rows)
            if a < b:
                yield from zip(cols["id"][a:b], cols["text"][a:b], cols["lang"][a:b], strict=True)
            row += batch.num_rows


def pack_shard(task: Task, tokenizer: str, heldout: frozenset[str] | set[str], settings: PackSettings) -> dict:
    """Write one shard ``task.prefix`` (.bin/.idx); return its counts."""
    tok = _tokenizer(tokenizer)
    with IndexedWriter(task.prefix, dtype_for_vocab(tok.vocab_size)) as writer:
        packer = _ShardPacker(tok, settings, writer)
        st = packer.stats
        texts: list[str] = []
        langs: list[str] = []
        for doc_id, text, lang in iter_rows(task.path, task.start, task.stop):
            st.docs += 1
            if doc_id in heldout:
                st.heldout += 1
            elif not text or text.isspace():
                st.empty += 1
            else:
                texts.append(text)
                langs.append(lang)
                if len(texts) >= settings.batch_docs:
                    packer.add_batch(texts, langs)
                    texts, langs = [], []
        packer.add_batch(texts, langs)
        packer.flush()
    return {"task": asdict(task), **asdict(st)}


def _run(args):
    return pack_shard(*args)


# ---------------------------------------------------------------- the stage


def plan(inputs: dict[str, str | os.PathLike], out_dir: str | os.PathLike, workers: int) -> list[Task]:
    """Shard tasks: each source cut into ``workers`` contiguous row ranges."""
    tasks = []
    for source, path in inputs.items():
        n = count_rows(path)
        for k in range(workers):
            start, stop = n * k // workers, n * (k + 1) // workers
            tasks.append(Task(source, k, str(path), start, stop, str(Path(out_dir) / f"{source}_{k}")))
    return tasks


def source_weights(
    samples: dict[str, int], langs: dict[str, str], mixture: dict[str, float] | None
) -> dict[str, float]:
    """Normalised sampling weight per source.

    ``mixture`` names sources or languages. A source named there takes its weight; the
    weight of a language is shared by its remaining sources in proportion to their
    samples. With no mixture, every source weighs as many samples as it has.
    """
    if not mixture:
        raw = {s: float(n) for s, n in samples.items()}
    else:
        raw = {}
        for source, n in samples.items():
            if source in mixture:
                raw[source] = float(mixture[source])
                continue
            lang = langs[source]
            if lang not in mixture:
                raise ConfigError(f"pack.mixture: no weight for source {source!r} or its language {lang!r}")
            peers = [s for s in samples if langs[s] == lang and s not in mixture]
            total = sum(samples[s] for s in peers)
            raw[source] = float(mixture[lang]) * (n / total if total else 0.0)
        unknown = set(mixture) - set(samples) - set(langs.values()) - set(LANGS)
        if unknown:
            raise ConfigError([f"pack.mixture.{k}: not a source or a language" for k in sorted(unknown)])
    raw = {s: (w if samples[s] else 0.0) for s, w in raw.items()}  # an empty source cannot be drawn
    total = sum(raw.values())
    return {s: (w / total if total else 0.0) for s, w in raw.items()}


def pack_shards(
    inputs: dict[str, str | os.PathLike],
    langs: dict[str, str],
    tokenizer: str | os.PathLike,
    heldout_ids: set[str],
    out_dir: str | os.PathLike,
    out_blend: str | os.PathLike,
    out_stats: str | os.PathLike,
    settings: PackSettings,
    workers: int = 1,
    mixture: dict[str, float] | None = None,
    seed: int = 0,
) -> dict:
    """The ``pack_shards`` rule: dedup Parquet -> shards/{source}_{k}.bin/.idx, blend.json, stats.

    ``inputs`` and ``langs`` map each source to its Parquet file and language. Returns the stats.
    """
    settings.check()
    tok = Tokenizer(tokenizer)  # fails here, naming pack.tokenizer.path, before any worker starts
    _TOKENIZERS[str(tokenizer)] = tok  # forked workers inherit it instead of building their own
    tasks = plan(inputs, out_dir, workers)
    jobs = [(t, str(tokenizer), frozenset(heldout_ids), settings) for t in tasks]
    t0 = time.perf_counter()
    if workers == 1:
        results = [_run(j) for j in jobs]
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_run, jobs, chunksize=1)  # map keeps task order: deterministic
    wall = time.perf_counter() - t0

    per_source: dict[str, ShardStats] = {s: ShardStats() for s in inputs}
    for r in results:
        per_source[r["task"]["source"]].add(ShardStats(**{k: v for k, v in r.items() if k != "task"}))
    weights = source_weights({s: st.samples for s, st in per_source.items()}, langs, mixture)

    blend = _blend(results, per_source, langs, weights, tok, settings, seed, out_dir, out_blend)
    stats = _stats(per_source, langs, settings, tok, wall, workers, results)
    write_json(out_blend, blend)
    write_json(out_stats, stats)
    log.info(
        "packed %d samples, %d tokens, %.1f%% padding in %.1fs",
        stats["total"]["samples"],
        stats["total"]["tokens"],
        100 * stats["total"]["padding_fraction"],
        wall,
    )
    return stats


def _blend(results, per_source, langs, weights, tok, settings, seed, out_dir, out_blend) -> dict:
    base = Path(out_blend).resolve().parent
    datasets = []
    for r in results:
        src = r["task"]["source"]
        n = per_source[src].samples
        datasets.append(
            {
                # relative to blend.json's folder, so the folder can move
                "prefix": os.path.relpath(Path(r["task"]["prefix"]).resolve(), base),
                "source": src,
                "lang": langs[src],
                "samples": r["samples"],
                "tokens": r["tokens"],
                # a source's weight is shared by its shards in proportion to their samples
                "weight": weights[src] * r["samples"] / n if n else 0.0,
            }
        )
    return {
        "format": "megatron-mmidx-v1",
        "dtype": dtype_for_vocab(tok.vocab_size).name,
        "vocab_size": tok.vocab_size,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "max_length": settings.max_length,
        "packing": settings.packing,
        "seed": seed,
        "sources": {
            s: {"lang": langs[s], "weight": weights[s], "samples": st.samples, "tokens": st.tokens}
            for s, st in per_source.items()
        },
        "datasets": datasets,
        # Megatron-LM's --data-path form: weight prefix weight prefix ... (relative to this file)
        "megatron_data_path": [x for d in datasets if d["samples"] for x in (round(d["weight"], 8), d["prefix"])],
    }


def _summary(st: ShardStats, max_length: int) -> dict:
    out = asdict(st)
    out["padding_fraction"] = 1.0 - st.tokens / (st.samples * max_length) if st.samples else 0.0
    # documents that fit whole in a sample are not split unless pack.sentence_stats is
    # on, so greedy counts over the samples of split documents (best-fit: 0 = unknown)
    counted = st.split_samples if st.whole_docs else st.samples
    out["mean_sentences_per_sample"] = st.sentences / counted if counted else 0.0
    out["mean_sample_tokens"] = st.tokens / st.samples if st.samples else 0.0
    out["tokens_per_char"] = st.doc_tokens / st.chars if st.chars else 0.0
    out["bytes_per_token"] = st.bytes / st.doc_tokens if st.doc_tokens else 0.0
    return out


def _stats(per_source, langs, settings, tok, wall, workers, results) -> dict:
    per_lang: dict[str, ShardStats] = {}
    total = ShardStats()
    for s, st in per_source.items():
        per_lang.setdefault(langs[s], ShardStats()).add(st)
        total.add(st)
    return {
        "settings": asdict(settings),
        "vocab_size": tok.vocab_size,
        "workers": workers,
        "seconds": wall,
        "tokens_per_second": total.doc_tokens / wall if wall else 0.0,
        "hist_edges": [round(i * (settings.max_length + 1) / HIST_BINS) for i in range(HIST_BINS + 1)],
        "total": _summary(total, settings.max_length),
        "langs": {lang: _summary(st, settings.max_length) for lang, st in sorted(per_lang.items())},
        "sources": {s: _summary(st, settings.max_length) for s, st in per_source.items()},
        "shards": [{"prefix": r["task"]["prefix"], "samples": r["samples"], "tokens": r["tokens"]} for r in results],
    }


def run_pack_shards(
    inputs: dict[str, str | os.PathLike],
    langs: dict[str, str],
    tokenizer: str | os.PathLike,
    heldout: list[str | os.PathLike],
    out_blend: str | os.PathLike,
    out_stats: str | os.PathLike,
    pack: dict,
) -> dict:
    """The ``pack_shards`` rule: ``pack`` is the config's ``pack`` section (defaults filled in)."""
    from cama.pack.split import load_heldout_ids

    settings = PackSettings.from_config(pack)
    return pack_shards(
        inputs,
        langs,
        tokenizer,
        load_heldout_ids(heldout),
        Path(out_blend).parent,
        out_blend,
        out_stats,
        settings,
        workers=pack["workers"],
        mixture=pack["mixture"],
        seed=pack["seed"],
    )
