"""The Megatron MMIDIDX v1 format: one ``.bin`` of raw tokens and one ``.idx`` index.

This is the format of Megatron-LM's ``megatron/core/datasets/indexed_dataset.py``, so
Megatron-LM, NeMo and GPT-NeoX read our shards as they are (tests/pack/test_indexed.py
checks that megatron-core's own ``IndexedDataset`` returns exactly our sequences).

``.idx`` layout, little-endian::

    magic          9 bytes   b"MMIDIDX\\x00\\x00"
    version        uint64    1
    dtype code     uint8     DType below (8 = uint16, 4 = int32)
    S              uint64    number of sequences (our samples)
    D              uint64    number of document boundaries = documents + 1
    lengths        int32[S]  tokens per sequence
    pointers       int64[S]  byte offset of each sequence in the .bin
    doc_indices    int64[D]  sequence index where each document starts; starts at 0, ends at S

The ``.bin`` is the tokens of every sequence, back to back, with no header.

The writer and the reader below mirror each other field by field. The reader maps each
file once and views every array over that one map, so opening a shard costs no copy.
"""

from __future__ import annotations

import os
import struct
from array import array
from enum import IntEnum
from pathlib import Path

import numpy as np

from cama.errors import FormatError
from cama.io import tmp_path

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1


class DType(IntEnum):
    """Megatron's dtype codes, as written in the .idx."""

    uint8 = 1
    int8 = 2
    int16 = 3
    int32 = 4
    int64 = 5
    float64 = 6
    float32 = 7
    uint16 = 8

    @classmethod
    def code_of(cls, dtype: np.dtype | type) -> DType:
        return cls[np.dtype(dtype).name]

    def numpy(self) -> np.dtype:
        return np.dtype(self.name)


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (Megatron's own cut-off is 65500), int32 otherwise."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def bin_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.bin")


def idx_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{prefix}.idx")


class IndexedWriter:
    """Stream sequences into ``{prefix}.bin`` and write ``{prefix}.idx`` on close.

    Both files are written under temporary names and renamed only when the block exits
    cleanly, so an interrupted run leaves no shard that looks complete.

    >>> with IndexedWriter("shard", np.uint16) as w:   # doctest: +SKIP
    ...     w.add_sequence([1, 5, 9]); w.end_document()
    """

    def __init__(self, prefix: str | os.PathLike, dtype: np.dtype | type = np.uint16):
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self.code = DType.code_of(self.dtype)  # fails early on a dtype Megatron has no code for
        # compact arrays, not lists of Python ints: a shard may hold millions of sequences
        self.lengths = array("i")  # int32 per sequence
        self.doc_indices = array("q", [0])  # int64
        self._bin = None

    def __enter__(self) -> IndexedWriter:
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._tmp_bin, self._tmp_idx = tmp_path(bin_path(self.prefix)), tmp_path(idx_path(self.prefix))
        self._bin = open(self._tmp_bin, "wb")  # noqa: SIM115 (closed in __exit__)
        return self

    def add_sequence(self, tokens: np.ndarray | list[int]) -> None:
        """Append one sequence (one training sample)."""
        arr = np.asarray(tokens)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        self._bin.write(arr.tobytes(order="C"))
        self.lengths.append(arr.size)

    def add_sequences(self, tokens: np.ndarray, lengths: np.ndarray, doc_ends: np.ndarray | None = None) -> None:
        """Append many sequences at once: ``tokens`` holds them back to back.

        ``doc_ends`` closes documents after those sequences (counted from 1 within this
        call, ascending), as ``end_document`` after each of them would.
        """
        tokens = np.asarray(tokens)
        if tokens.dtype != self.dtype:
            tokens = tokens.astype(self.dtype)
        lengths = np.asarray(lengths, dtype=np.int32)
        if int(lengths.sum(dtype=np.int64)) != tokens.size:
            raise ValueError(f"lengths add up to {int(lengths.sum())}, not to the {tokens.size} tokens given")
        self._bin.write(memoryview(np.ascontiguousarray(tokens)).cast("B"))
        base = len(self.lengths)
        self.lengths.frombytes(lengths.tobytes())
        if doc_ends is not None and len(doc_ends):
            ends = np.asarray(doc_ends, dtype=np.int64) + base
            if ends[0] == self.doc_indices[-1]:  # an empty document: end_document skips it
                ends = ends[1:]
            self.doc_indices.frombytes(ends.tobytes())

    def end_document(self) -> None:
        """Close the current document: the sequences added since the last call form one."""
        if self.doc_indices[-1] != len(self.lengths):
            self.doc_indices.append(len(self.lengths))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._bin.close()
            if exc_type is None:
                self.end_document()
                self._write_index(self._tmp_idx)
                os.replace(self._tmp_bin, bin_path(self.prefix))
                os.replace(self._tmp_idx, idx_path(self.prefix))
        finally:
            for tmp in (self._tmp_bin, self._tmp_idx):
                if tmp.exists():
                    tmp.unlink()

    def _write_index(self, path: Path) -> None:
        lengths = np.frombuffer(self.lengths, dtype=np.int32) if self.lengths else np.zeros(0, np.int32)
        # byte offset of each sequence: exclusive cumulative sum of lengths × itemsize
        pointers = np.zeros(lengths.size, dtype=np.int64)
        np.cumsum(lengths[:-1], dtype=np.int64, out=pointers[1:])
        pointers *= self.dtype.itemsize
        doc_indices = np.frombuffer(self.doc_indices, dtype=np.int64)
        with open(path, "wb") as f:
            f.write(HEADER)  # magic
            f.write(struct.pack("<Q", VERSION))  # version
            f.write(struct.pack("<B", int(self.code)))  # dtype code
            f.write(struct.pack("<Q", lengths.size))  # S
            f.write(struct.pack("<Q", doc_indices.size))  # D
            f.write(lengths.tobytes(order="C"))  # lengths int32[S]
            f.write(pointers.tobytes(order="C"))  # pointers int64[S]
            f.write(doc_indices.tobytes(order="C"))  # doc_indices int64[D]


_FIXED = len(HEADER) + 8 + 1 + 8 + 8  # bytes before the arrays


class IndexedReader:
    """Random access to the sequences of ``{prefix}.bin/.idx``, as views over two memory maps.

    ``reader[i]`` is a read-only numpy view of sequence ``i`` (no copy); ``len(reader)``
    is the number of sequences. A header that is not MMIDIDX v1 raises ``FormatError``
    naming the file.
    """

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = Path(prefix)
        path = idx_path(self.prefix)
        try:
            self._idx = np.memmap(path, dtype=np.uint8, mode="r")
        except FileNotFoundError:
            raise FormatError(f"{path}: index file not found") from None
        except ValueError:  # np.memmap of an empty file
            raise FormatError(f"{path}: empty file, not an MMIDIDX index") from None
        buf = self._idx
        if buf.size < _FIXED or bytes(buf[: len(HEADER)]) != HEADER:
            raise FormatError(f"{path}: bad magic {bytes(buf[: len(HEADER)])!r}, expected {HEADER!r}")
        (version,) = struct.unpack_from("<Q", buf, len(HEADER))  # version
        if version != VERSION:
            raise FormatError(f"{path}: version {version}, expected {VERSION}")
        (code,) = struct.unpack_from("<B", buf, len(HEADER) + 8)  # dtype code
        try:
            self.dtype = DType(code).numpy()
        except ValueError:
            raise FormatError(f"{path}: unknown dtype code {code}") from None
        s, d = struct.unpack_from("<QQ", buf, len(HEADER) + 9)  # S, D
        need = _FIXED + 4 * s + 8 * s + 8 * d
        if buf.size != need:
            raise FormatError(f"{path}: {buf.size} bytes, but S={s}, D={d} need {need}")
        off = _FIXED
        self.sequence_lengths = np.frombuffer(buf, np.int32, s, off)  # lengths int32[S]
        off += 4 * s
        self.sequence_pointers = np.frombuffer(buf, np.int64, s, off)  # pointers int64[S]
        off += 8 * s
        self.document_indices = np.frombuffer(buf, np.int64, d, off)  # doc_indices int64[D]

        bpath = bin_path(self.prefix)
        expected = int(self.sequence_lengths.sum(dtype=np.int64)) * self.dtype.itemsize
        size = bpath.stat().st_size if bpath.exists() else None
        if size != expected:
            raise FormatError(f"{bpath}: {size} bytes, but {path} describes {expected}")
        # An empty .bin cannot be memory-mapped; an empty array stands in for it.
        # Viewed through np.frombuffer, so slices are plain ndarrays (slicing an np.memmap
        # builds a memmap object per call, several times slower).
        self._bin = (
            np.frombuffer(np.memmap(bpath, dtype=np.uint8, mode="r"), dtype=self.dtype)
            if expected
            else np.empty(0, self.dtype)
        )
        # The hot path indexes two array.array of int64 start/end offsets (in tokens): an
        # item is a fresh Python int and the array is 16 bytes per sequence, contiguous.
        # Lists of Python ints are 2.4x slower on random reads (each int is an object of
        # its own, a cache miss away) and 5x the memory; numpy scalars slower still.
        starts = self.sequence_pointers // self.dtype.itemsize
        self._starts = array("q", starts.tobytes())
        self._ends = array("q", (starts + self.sequence_lengths).tobytes())

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._bin[self._starts[i] : self._ends[i]]

    def get(self, i: int, offset: int = 0, length: int | None = None) -> np.ndarray:
        """Part of sequence ``i``, as Megatron's ``IndexedDataset.get``."""
        seq = self[i]
        return seq[offset : None if length is None else offset + length]

    @property
    def num_tokens(self) -> int:
        return int(self.sequence_lengths.sum(dtype=np.int64))

    @property
    def num_documents(self) -> int:
        return self.document_indices.size - 1

    def documents(self) -> list[range]:
        """The sequence indices of each document."""
        di = self.document_indices.tolist()
        return [range(a, b) for a, b in zip(di[:-1], di[1:], strict=True)]
