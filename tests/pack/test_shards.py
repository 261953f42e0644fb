"""The shard stage end to end: round trip, determinism, bad input, blend and loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cama.errors import ConfigError
from cama.pack.dataset import BlendDataset, interleave
from cama.pack.indexed import IndexedReader
from cama.pack.shards import PackSettings, pack_shards, source_weights
from cama.pack.tokenizer import Tokenizer


def _pack(tmp_path, inputs, langs, tok, name="s", workers=2, **kw):
    out = tmp_path / name
    settings = PackSettings(**{"max_length": 128, "min_tokens": 0, **kw})
    stats = pack_shards(inputs, langs, tok, set(), out, out / "blend.json", out / "stats.json", settings,
                        workers=workers, mixture={"zh": 5.5, "en": 1.5, "code": 0.9})
    return out, stats


def test_documents_round_trip(tmp_path, demo_sources, tokenizer_dir, demo_docs):
    """Each document's samples, in order, are its whole-document encoding with BOS/EOS."""
    inputs, langs = demo_sources
    out, stats = _pack(tmp_path, inputs, langs, tokenizer_dir, workers=1)
    tok = Tokenizer(tokenizer_dir)
    r = IndexedReader(out / "demo_en_0")
    docs = demo_docs["en"]
    assert r.num_documents == len(docs) and stats["total"]["dropped_samples"] == 0
    for d, seqs in zip(docs, r.documents(), strict=True):
        joined = np.concatenate([r[i] for i in seqs]).tolist()
        assert joined == [tok.bos_id, *tok.sp.encode(d), tok.eos_id]
        # no sample spans two documents: BOS only opens, EOS only closes a document
        assert all(r[i][1:].tolist().count(tok.bos_id) == 0 for i in seqs)
        assert all(len(r[i]) <= 128 for i in seqs)
    assert stats["langs"]["zh"]["tokens_per_char"] > 0


def test_same_config_same_bytes(tmp_path, demo_sources, tokenizer_dir):
    inputs, langs = demo_sources
    a, _ = _pack(tmp_path, inputs, langs, tokenizer_dir, "a")
    b, _ = _pack(tmp_path, inputs, langs, tokenizer_dir, "b")
    files = sorted(p.name for p in a.iterdir() if p.suffix in (".bin", ".idx"))
    assert len(files) == 12
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ja, jb = json.loads((a / "blend.json").read_text()), json.loads((b / "blend.json").read_text())
    assert ja == jb


def test_best_fit_fewer_samples_less_padding(tmp_path, demo_sources, tokenizer_dir):
    inputs, langs = demo_sources
    _, greedy = _pack(tmp_path, inputs, langs, tokenizer_dir, "g", max_length=512)
    _, best = _pack(tmp_path, inputs, langs, tokenizer_dir, "b", max_length=512, packing="best_fit")
    assert best["total"]["tokens"] == greedy["total"]["doc_tokens"]
    assert best["total"]["samples"] < greedy["total"]["samples"]
    assert best["total"]["padding_fraction"] < greedy["total"]["padding_fraction"]


def test_empty_docs_and_one_huge_sentence(tmp_path, tokenizer_dir, doc_writer):
    huge = "这是一个没有标点的超长句子" * 16000  # ~200k characters, no sentence end
    texts = ["", "   \n ", huge, "好。"]
    inputs = {"z": doc_writer(tmp_path / "z.parquet", "z", "zh", texts)}
    out, stats = _pack(tmp_path, inputs, {"z": "zh"}, tokenizer_dir, workers=1, max_length=256, min_tokens=5)
    t = stats["total"]
    assert t["empty"] == 2 and t["chunked"] == 1 and t["docs_packed"] == 1
    assert t["dropped_samples"] >= 1  # "好。" with BOS/EOS is ≤ 5 tokens
    r = IndexedReader(out / "z_0")
    assert max(r.sequence_lengths) <= 256 and len(r) > 100


def test_missing_tokenizer_is_a_clear_error(tmp_path, demo_sources):
    inputs, langs = demo_sources
    with pytest.raises(ConfigError, match="pack.tokenizer.path: .*does-not-exist does not exist"):
        _pack(tmp_path, inputs, langs, tmp_path / "does-not-exist")


def test_max_length_below_bos_eos(tmp_path, demo_sources, tokenizer_dir):
    inputs, langs = demo_sources
    with pytest.raises(ConfigError, match="pack.max_length"):
        _pack(tmp_path, inputs, langs, tokenizer_dir, max_length=2)


def test_source_weights():
    langs = {"a": "zh", "b": "zh", "c": "en"}
    w = source_weights({"a": 30, "b": 10, "c": 5}, langs, {"zh": 3, "en": 1})
    assert w == pytest.approx({"a": 0.5625, "b": 0.1875, "c": 0.25})
    assert source_weights({"a": 1, "b": 3, "c": 0}, langs, None) == pytest.approx({"a": 0.25, "b": 0.75, "c": 0})
    with pytest.raises(ConfigError, match="pack.mixture"):
        source_weights({"a": 1, "b": 1, "c": 1}, langs, {"zh": 1})


def test_blend_dataset(tmp_path, demo_sources, tokenizer_dir):
    inputs, langs = demo_sources
    out, _ = _pack(tmp_path, inputs, langs, tokenizer_dir)
    ds = BlendDataset(out / "blend.json", seed=7)
    again = BlendDataset(out / "blend.json", seed=7)
    assert [ds.locate(i) for i in range(200)] == [again.locate(i) for i in range(200)]
    resumed = BlendDataset(out / "blend.json", seed=7, skip=150)
    assert len(resumed) == len(ds) - 150
    for i in range(50):
        assert np.array_equal(resumed[i]["input_ids"], ds[150 + i]["input_ids"])
    # proportions follow the mixture weights within one draw on every prefix
    owner = ds.owner[:500]
    blend = json.loads((out / "blend.json").read_text())
    for s, name in enumerate(ds.sources):
        assert abs((owner == s).sum() - 500 * blend["sources"][name]["weight"]) <= 1.5
    assert ds[0]["input_ids"][0] in (1, ds[0]["input_ids"][0])


def test_interleave_is_smooth():
    owner = interleave([2, 1], 9)
    assert owner.tolist().count(0) == 6 and owner.tolist().count(1) == 3
