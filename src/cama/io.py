"""Atomic files and streaming Parquet, shared by every stage.

An interrupted stage must leave nothing that looks complete, so every writer
here writes to ``<name>.tmp-<pid>`` and renames on success; on failure the
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# A document as it travels between corpus and clean stages.
DOC_SCHEMA = pa.schema(
    [
        ("id", pa.string()),  # stable: "<source>/<file index>/<record index>"
        ("text", pa.string()),
        ("lang", pa.string()),  # zh | en | code
        ("source", pa.string()),
        ("meta", pa.string()),  # JSON object
    ]
)

# A document that a rule rejected, the document itself plus why; or a line a rule removed.
REJECTED_SCHEMA = pa.schema(
    list(DOC_SCHEMA)
    + [
        ("rule", pa.string()),  # e.g. "gopher_quality.min_words"
        ("value", pa.float64()),  # the measured value that tripped the rule (null if none)
        ("detail", pa.string()),  # human-readable, e.g. "12 words < 50"
        # "doc": the document was rejected; "line": text is a line (or part of one) removed from
        # a document that was kept, value its bytes (a sample; the stats count them all)
        ("scope", pa.string()),
    ]
)

# A record that could not become a document at all.
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),  # 1-based line or record number; null if unknown
        ("reason", pa.string()),
        ("raw", pa.binary()),  # the first bytes of the record, for inspection
        ("raw_size", pa.int64()),  # its full size in bytes
    ]
)

QUARANTINE_RAW_BYTES = 4096


def tmp_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


class ParquetSink:
    """Append rows to a Parquet file in bounded batches; atomic on close.

    Memory stays flat: rows are buffered up to ``batch_rows`` rows or
    ``batch_bytes`` of text, then written as one row group.

    Use as a context manager. The file appears only if the block exits cleanly;
    an empty sink still writes a valid, empty file with the schema.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: pa.Schema,
        batch_rows: int = 8192,
        batch_bytes: int = 64 << 20,
    ):
        self.path, self.schema = Path(path), schema
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.rows = 0
        self._buf: dict[str, list] = {name: [] for name in schema.names}
        self._buf_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._cm = None

    def __enter__(self) -> ParquetSink:
        self._cm = atomic_path(self.path)
        self._tmp = self._cm.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        return self

    def write(self, row: dict[str, Any]) -> None:
        for name in self.schema.names:
            value = row.get(name)
            self._buf[name].append(value)
            if isinstance(value, str | bytes):
                self._buf_bytes += len(value)
        self.rows += 1
        if len(self._buf[self.schema.names[0]]) >= self.batch_rows or self._buf_bytes >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buf[self.schema.names[0]]:
            return
        table = pa.Table.from_pydict(self._buf, schema=self.schema)
        self._writer.write_table(table)
        self._buf = {name: [] for name in self.schema.names}
        self._buf_bytes = 0

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._flush()
        finally:
            self._writer.close()
            self._cm.__exit__(exc_type, exc, tb)


def iter_parquet(path: str | os.PathLike, columns: list[str] | None = None, batch_rows: int = 4096) -> Iterator[dict]:
    """Stream rows of a Parquet file as dicts, one record batch at a time."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        yield from batch.to_pylist()


def write_docs(path: str | os.PathLike, texts: list[str], source: str, lang: str) -> Path:
    """A docs Parquet file of ``texts`` with positional ids, as a stage would write it (tests, benchmarks)."""
    n = len(texts)
    table = pa.table(
        {
            "id": [f"{source}/0/{i}" for i in range(n)],
            "text": texts,
            "lang": [lang] * n,
            "source": [source] * n,
            "meta": ["{}"] * n,
        },
        schema=DOC_SCHEMA,
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def count_rows(path: str | os.PathLike) -> int:
    return pq.ParquetFile(path).metadata.num_rows
