"""The shard stage's fast paths give exactly what the plain per-document way gives.

- chunked encoding of long texts (``Tokenizer.encode``) == sentencepiece on whole texts;
- the word cache (``Tokenizer.encode_flat``) == sentencepiece on whole texts, on every demo
  document, on random texts (hypothesis), and in the shards, with the cache on and off;
- the zh splitter's faster pattern == the seed's regex;
- batch packing (one encode call, one token array, documents that fit not split) ==
  encoding, splitting and packing each document on its own, as the stage did before;
- ``IndexedWriter.add_sequences`` == ``add_sequence`` + ``end_document``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cama.pack.indexed import IndexedReader, IndexedWriter
from cama.pack.packing import greedy_pack, with_specials
from cama.pack.sentences import splitter_for, zh_cuts
from cama.pack.shards import PackSettings, pack_shards
from cama.pack.tokenizer import Tokenizer, space_chunks, word_chunks

# ---------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def nfkc_tokenizer(tmp_path_factory, demo_docs):
    """A model that normalises text (NFKC): its widths do not add up, no chunking."""
    import sentencepiece as spm

    out = tmp_path_factory.mktemp("nfkc")
    lines = [ln for docs in demo_docs.values() for d in docs for ln in d.split("\n") if ln.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(out / "m"), model_type="bpe", vocab_size=3000,
        byte_fallback=True, normalization_rule_name="nmt_nfkc", character_coverage=0.98,
        hard_vocab_limit=False, minloglevel=2,
    )
    return out / "m.model"


def test_chunked_encode_is_exact(tokenizer_dir, demo_docs):
    tok = Tokenizer(tokenizer_dir)
    assert tok.chunkable
    docs = [d for ds in demo_docs.values() for d in ds] + ["a  b " * 40, " lead and trail  ", "x" * 50,
                                                           "x\u2581 y ▁▁z a ▁b c▁ d " * 30]
    whole = tok.sp.encode(docs)
    for n in (1, 7, 64, 2048):
        tok.chunk_chars = n
        assert tok.encode(docs) == whole, n


def test_normalising_model_is_not_chunked(nfkc_tokenizer, demo_docs):
    tok = Tokenizer(nfkc_tokenizer, chunk_chars=8)
    assert not tok.chunkable
    docs = demo_docs["en"][:20]
    assert tok.encode(docs) == tok.sp.encode(docs)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab \t\n。\u2581", max_size=80), st.integers(min_value=1, max_value=20))
def test_space_chunks(text, n):
    pieces = space_chunks(text, n)
    assert " ".join(pieces) == text
    for left, right in zip(pieces[:-1], pieces[1:], strict=True):
        assert left and right and left[-1] not in " \u2581" and right[0] not in " \u2581"
        assert len(left) >= n


# ---------------------------------------------------------------- splitters

_SEED_ZH = re.compile(
    "(?:" + "|".join(re.escape(c) for c in "。！？；!?;\n") + ")+"
    "(?:" + "|".join(re.escape(c) for c in "”’」』）》】\"')") + ")*"
)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="。！？；!?;\n”’」』）》】\"')好a ", max_size=60))
def test_zh_cuts_match_the_seed_regex(text):
    data = text.encode()
    want = [len(text[: m.end()].encode()) for m in _SEED_ZH.finditer(text)]
    want = [c for c in want if 0 < c < len(data)]
    assert zh_cuts(data).tolist() == want


# ---------------------------------------------------------------- packing


def _reference(tok, texts, lang, max_length, min_tokens):
    """Per document, the straightforward way: encode whole, split, map, pack greedily."""
    split = splitter_for(lang)
    samples, docs = [], []
    for text in texts:
        if not text.strip():
            continue
        data = text.encode()
        cuts = split(data)
        ids = np.asarray(tok.sp.encode(text), dtype=np.int64)
        ends = np.cumsum(tok.surface_bytes[ids]) - tok.dummy_prefix
        if ends.size and ends[-1] != len(data):  # widths do not add up: sentence by sentence
            bounds = [0, *cuts.tolist(), len(data)]
            pieces = [tok.sp.encode(data[a:b].decode()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
            ids = np.asarray([i for p in pieces for i in p], dtype=np.int64)
            lengths = [len(p) for p in pieces]
        else:
            lengths = np.diff(np.concatenate(([0], np.searchsorted(ends, cuts, side="right"), [ids.size])))
        full = [tok.bos_id, *ids.tolist(), tok.eos_id]
        spans = greedy_pack(with_specials(lengths), max_length, min_tokens).spans
        if spans:
            docs.append(len(samples) + len(spans))
            samples += [full[a:b] for a, b in spans]
    return samples, docs


@pytest.mark.parametrize("max_length, min_tokens, batch_docs", [(1024, 20, 1024), (64, 5, 7), (16, 0, 1)])
@pytest.mark.parametrize("which", ["trained", "nfkc"])
def test_batch_packing_equals_per_document(
    tmp_path, tokenizer_dir, nfkc_tokenizer, demo_docs, doc_writer, max_length, min_tokens, batch_docs, which
):
    tok_path = tokenizer_dir if which == "trained" else nfkc_tokenizer
    tok = Tokenizer(tok_path)
    for lang, texts in demo_docs.items():
        texts = [*texts[:60], "", "  ", "好。", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ。 ﬁne."]
        inputs = {lang: doc_writer(tmp_path / f"{lang}.parquet", lang, lang, texts)}
        out = tmp_path / f"{which}_{lang}_{max_length}"
        stats = pack_shards(inputs, {lang: lang}, tok_path, set(), out, out / "b.json", out / "s.json",
                            PackSettings(max_length=max_length, min_tokens=min_tokens, batch_docs=batch_docs),
                            workers=1)
        r = IndexedReader(out / f"{lang}_0")
        want, doc_ends = _reference(tok, texts, lang, max_length, min_tokens)
        assert [r[i].tolist() for i in range(len(r))] == want
        assert r.document_indices.tolist() == [0, *doc_ends]
        if which == "nfkc":
            assert stats["total"]["per_sentence_docs"] > 0


def test_sentence_stats_counts_every_document(tmp_path, demo_sources, tokenizer_dir):
    inputs, langs = demo_sources
    runs = {}
    for flag in (False, True):
        out = tmp_path / str(flag)
        runs[flag] = pack_shards(inputs, langs, tokenizer_dir, set(), out, out / "b.json", out / "s.json",
                                 PackSettings(max_length=256, min_tokens=0, sentence_stats=flag), workers=1)
        runs[flag]["dir"] = out
    fast, full = runs[False]["total"], runs[True]["total"]
    assert fast["whole_docs"] > 0 and full["whole_docs"] == 0
    assert full["sentences"] > fast["sentences"] and full["split_samples"] == full["samples"]
    assert {k: v for k, v in fast.items() if k not in ("sentences", "whole_docs", "split_samples",
                                                        "mean_sentences_per_sample")} == \
        {k: v for k, v in full.items() if k not in ("sentences", "whole_docs", "split_samples",
                                                    "mean_sentences_per_sample")}
    for p in runs[False]["dir"].glob("*.bin"):
        assert p.read_bytes() == (runs[True]["dir"] / p.name).read_bytes()


# ---------------------------------------------------------------- writer


def test_add_sequences_equals_one_by_one(tmp_path):
    rng = np.random.default_rng(0)
    docs = [[rng.integers(0, 30000, rng.integers(1, 50)) for _ in range(rng.integers(1, 4))] for _ in range(40)]
    with IndexedWriter(tmp_path / "a", np.uint16) as w:
        for d in docs:
            for s in d:
                w.add_sequence(s)
            w.end_document()
    with IndexedWriter(tmp_path / "b", np.uint16) as w:
        for part in (docs[:15], docs[15:]):
            seqs = [s for d in part for s in d]
            w.add_sequences(np.concatenate(seqs), [s.size for s in seqs], np.cumsum([len(d) for d in part]))
    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()
    with pytest.raises(ValueError, match="add up"), IndexedWriter(tmp_path / "c", np.uint16) as w:
        w.add_sequences(np.zeros(3, np.uint16), [2])


# ---------------------------------------------------------------- word cache


def _flat(ids: list[list[int]]) -> tuple[list[int], list[int]]:
    return [i for doc in ids for i in doc], [len(doc) for doc in ids]


@pytest.fixture(scope="module")
def tok(tokenizer_dir) -> Tokenizer:
    t = Tokenizer(tokenizer_dir)
    assert t.chunkable and t.word_cache
    return t


@pytest.mark.parametrize("cap, chars", [(1 << 17, 48), (64, 48), (1 << 17, 4), (1 << 17, 10_000)])
def test_word_cache_is_exact_on_demo_docs(tokenizer_dir, demo_docs, cap, chars):
    tok = Tokenizer(tokenizer_dir, word_cache=cap, cache_chars=chars)
    for lang, docs in demo_docs.items():
        want = _flat(tok.sp.encode(docs))
        for _ in range(2):  # cold, then warm
            for a in range(0, len(docs), 37):  # batches of 37: later ones hit earlier words
                ids, lens = tok.encode_flat(docs[a : a + 37])
                assert ids.dtype == np.int32
                w = _flat(tok.sp.encode(docs[a : a + 37]))
                assert (ids.tolist(), lens.tolist()) == w, (lang, a)
        ids, lens = tok.encode_flat(docs)
        assert (ids.tolist(), lens.tolist()) == want, lang
        assert len(tok._cache) <= cap
        assert all(len(k) <= chars for k in tok._cache)


_ALPHABET = st.sampled_from(
    [" ", " ", " ", "  ", "\u2581", "\t", "\n", "\r", "\u3000", "a", "b", "the", "The", "ing", "0", "7", "42",
     "中", "文", "。", "，", "😀", "👍🏽", "é", "e\u0301", "ﬁ", ".", ",", "'", "\x00", "(", "):"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_ALPHABET, max_size=40).map("".join), min_size=1, max_size=6))
def test_word_cache_is_exact_on_random_texts(tok, texts):
    assert _pair(tok.encode_flat(texts)) == _flat(tok.sp.encode(texts))


def _pair(r: tuple[np.ndarray, np.ndarray]) -> tuple[list[int], list[int]]:
    return r[0].tolist(), r[1].tolist()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab \t\n。\u2581", max_size=80))
def test_word_chunks(text):
    pieces = word_chunks(text)
    assert " ".join(pieces) == text
    for left, right in zip(pieces[:-1], pieces[1:], strict=True):
        assert left and right and left[-1] not in " \u2581" and right[0] not in " \u2581"
    for p in pieces:  # every single space is a cut
        for i in range(1, len(p) - 1):
            assert not (p[i] == " " and p[i - 1] not in " \u2581" and p[i + 1] not in " \u2581"), (text, p)


def test_normalising_model_takes_the_plain_path(nfkc_tokenizer, demo_docs):
    tok = Tokenizer(nfkc_tokenizer)
    assert not tok.chunkable
    docs = [*demo_docs["en"][:20], "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ。 ﬁne.", ""]
    assert _pair(tok.encode_flat(docs)) == _flat(tok.sp.encode(docs))
    assert not tok._cache


def test_empty_batch(tok):
    ids, lens = tok.encode_flat([])
    assert ids.size == 0 and lens.size == 0


@pytest.mark.parametrize("max_length", [1024, 64])
def test_shards_are_the_same_with_and_without_the_cache(tmp_path, demo_sources, tokenizer_dir, max_length,
                                                        monkeypatch):
    from cama.pack import shards

    inputs, langs = demo_sources
    outs = {}
    for cap in (0, 1 << 17):
        monkeypatch.setattr(shards, "Tokenizer", lambda path, cap=cap: Tokenizer(path, word_cache=cap))
        monkeypatch.setattr(shards, "_TOKENIZERS", {})
        out = tmp_path / str(cap)
        pack_shards(inputs, langs, tokenizer_dir, set(), out, out / "b.json", out / "s.json",
                    PackSettings(max_length=max_length, min_tokens=5, batch_docs=64), workers=1)
        outs[cap] = out
    files = sorted(p.name for p in outs[0].iterdir() if p.suffix in (".bin", ".idx"))
    assert files
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1 << 17] / name).read_bytes(), name
