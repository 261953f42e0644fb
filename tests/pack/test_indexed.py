"""MMIDIDX v1: our writer and reader, and megatron-core's reader on our files."""

from __future__ import annotations

import numpy as np
import pytest

from cama.errors import FormatError
from cama.pack.indexed import HEADER, DType, IndexedReader, IndexedWriter, dtype_for_vocab
from cama.pack.shards import PackSettings, pack_shards


def _write(prefix, docs, dtype=np.uint16):
    with IndexedWriter(prefix, dtype) as w:
        for doc in docs:
            for seq in doc:
                w.add_sequence(seq)
            w.end_document()


DOCS = [[[1, 5, 9], [7, 7]], [[1, 2, 3, 4, 2]], [[1, 60000, 2]]]


def test_roundtrip(tmp_path):
    _write(tmp_path / "s", DOCS)
    r = IndexedReader(tmp_path / "s")
    flat = [s for d in DOCS for s in d]
    assert len(r) == len(flat)
    assert [r[i].tolist() for i in range(len(r))] == flat
    assert r.document_indices.tolist() == [0, 2, 3, 4]
    assert r.dtype == np.uint16 and r.num_tokens == sum(map(len, flat))
    assert r.get(0, 1, 1).tolist() == [5]


def test_dtype_follows_vocabulary():
    assert dtype_for_vocab(32000) == np.uint16
    assert dtype_for_vocab(65500) == np.int32
    assert DType.code_of(np.uint16) == 8 and DType.code_of(np.int32) == 4


def test_int32_roundtrip(tmp_path):
    _write(tmp_path / "s", [[[1, 100000, 2]]], np.int32)
    assert IndexedReader(tmp_path / "s")[0].tolist() == [1, 100000, 2]


def test_empty_shard(tmp_path):
    _write(tmp_path / "s", [])
    r = IndexedReader(tmp_path / "s")
    assert len(r) == 0 and r.document_indices.tolist() == [0]


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b"NOTANIDX\x00" + b[9:], "bad magic"),
        (lambda b: b[:9] + (2).to_bytes(8, "little") + b[17:], "version 2"),
        (lambda b: b[:17] + bytes([99]) + b[18:], "unknown dtype code 99"),
        (lambda b: b[:-3], "need"),
        (lambda b: b"", "empty file"),
    ],
)
def test_bad_header_names_the_file(tmp_path, corrupt, message):
    _write(tmp_path / "s", DOCS)
    idx = tmp_path / "s.idx"
    idx.write_bytes(corrupt(idx.read_bytes()))
    with pytest.raises(FormatError, match=message) as e:
        IndexedReader(tmp_path / "s")
    assert str(idx) in str(e.value)


def test_bin_size_mismatch(tmp_path):
    _write(tmp_path / "s", DOCS)
    with open(tmp_path / "s.bin", "ab") as f:
        f.write(b"\x00\x00")
    with pytest.raises(FormatError, match="s.bin"):
        IndexedReader(tmp_path / "s")


def test_header_layout(tmp_path):
    _write(tmp_path / "s", DOCS)
    raw = (tmp_path / "s.idx").read_bytes()
    assert raw[:9] == HEADER and int.from_bytes(raw[9:17], "little") == 1 and raw[17] == 8


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), IndexedWriter(tmp_path / "s", np.uint16) as w:
        w.add_sequence([1, 2])
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_megatron_core_reads_our_shards(tmp_path, demo_sources, tokenizer_dir):
    """megatron-core's own IndexedDataset returns exactly the sequences we packed."""
    indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    inputs, langs = demo_sources
    pack_shards(inputs, langs, tokenizer_dir, set(), tmp_path / "shards", tmp_path / "shards/blend.json",
                tmp_path / "shards/stats.json", PackSettings(max_length=128, min_tokens=4), workers=2)
    prefixes = sorted(p.with_suffix("") for p in (tmp_path / "shards").glob("*.idx"))
    assert len(prefixes) == 6
    for prefix in prefixes:
        ours = IndexedReader(prefix)
        theirs = indexed_dataset.IndexedDataset(str(prefix), mmap=True)
        assert len(theirs) == len(ours) > 0
        assert np.array_equal(theirs.document_indices, ours.document_indices)
        assert np.array_equal(theirs.sequence_lengths, ours.sequence_lengths)
        for i in range(len(ours)):
            got = theirs[i]
            assert got.dtype == np.uint16
            assert np.array_equal(got, ours[i])
