"""Readers: stream records out of one raw file, whatever its format and compression.

``iter_records(path, spec)`` yields, in file order, either a :class:`Record`
(file, 1-based line or record number, text, meta) or a :class:`Quarantined`
(file, line, reason, the first bytes, full size). A bad record never raises:
``RecordError`` is caught inside the reader and turned into a quarantine row, so
one bad line never stops the file (see ``cama.errors``).

Formats (``format: auto`` picks by extension once ``.gz``/``.bz2``/``.zst`` is removed):

============  =====================  ================================================
format        extensions             one record is
============  =====================  ================================================
jsonl         .jsonl .ndjson         one line (blank lines are not records)
json          .json                  one item under the dotted ``records`` path
parquet       .parquet               one row, read batch by batch
txt           .txt .raw              the file, a line, a paragraph, or the lines
                                     from one ``split_regex`` match to the next
wiki_xml      .xml                   one ``<page>`` of namespace 0 that is no redirect
code_tree     a directory            one file (``include`` globs pick them)
============  =====================  ================================================

Memory stays flat: jsonl and txt are read line by line with ``readline(limit)``,
so even a 50 MB line is never held whole when it is over ``max_doc_bytes``;
parquet is read one record batch at a time; wiki_xml is parsed with ``iterparse``
and each page is cleared once read. The exception is ``json``: a JSON document
is parsed whole, so its memory is a few times the decompressed file size; use
jsonl for anything big.

Layout (``spec["layout"]``, see ``cama.corpus.layout``): with ``gutenberg`` the txt reader
yields a Project Gutenberg licence header and footer as records of their own, marked
``Record.boilerplate``; with ``wiki`` the wiki_xml reader removes references, category and
file links (listed in ``Record.removed``) and puts headings on lines of their own.

Quarantine reasons: ``malformed_json``, ``malformed_xml``, ``malformed_markup``,
``invalid_utf8``, ``missing_text``, ``too_large``, ``truncated_stream`` (a cut or
corrupt gzip/bz2/zst stream: what was read before the break is kept), ``binary``
(code_tree: NUL bytes in the first 8 KB).
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import json
import logging
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import zstandard

from cama.corpus.layout import gutenberg_sections, wikitext_to_text
from cama.errors import RecordError, SourceError
from cama.io import QUARANTINE_RAW_BYTES

log = logging.getLogger(__name__)

COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd"}
FORMAT_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "txt",
    ".raw": "txt",
    ".xml": "wiki_xml",
}
# What a broken compressed stream raises: gzip/bz2 EOFError on a cut, BadGzipFile
# (an OSError) or zlib.error on corruption, ZstdError from zstandard.
STREAM_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError)

BINARY_SNIFF_BYTES = 8192
# Version-control and cache folders are never source of a code tree.
SKIPPED_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
}
LANGUAGE_BY_EXTENSION = {
    ".py": "python", ".pyi": "python", ".smk": "snakemake", ".ipynb": "jupyter",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".cu": "cuda", ".java": "java", ".kt": "kotlin", ".scala": "scala", ".go": "go", ".rs": "rust",
    ".js": "javascript", ".mjs": "javascript", ".jsx": "javascript", ".ts": "typescript",
    ".tsx": "typescript", ".rb": "ruby", ".php": "php", ".cs": "csharp", ".swift": "swift",
    ".m": "objective-c", ".r": "r", ".jl": "julia", ".lua": "lua", ".pl": "perl", ".hs": "haskell",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".sql": "sql", ".html": "html", ".css": "css",
    ".md": "markdown", ".rst": "rst", ".tex": "tex", ".json": "json", ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml", ".xml": "xml", ".cfg": "ini", ".ini": "ini", ".txt": "text",
}  # fmt: skip
LANGUAGE_BY_NAME = {"Makefile": "make", "Dockerfile": "dockerfile", "Snakefile": "snakemake"}


@dataclass(slots=True)
class Record:
    """One record that became text: where it came from, its text, its meta fields."""

    file: str
    line: int  # 1-based line (jsonl, txt), record (json, parquet), page (wiki_xml) or file (code_tree)
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    size: int = 0  # bytes as read: the JSON line, the text lines, the wikitext, the file
    boilerplate: str | None = None  # not content (layout: gutenberg_header, gutenberg_footer)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (layout rule, text) cut out


@dataclass(slots=True)
class Quarantined:
    """One record that could not become text, with why; a row of QUARANTINE_SCHEMA."""

    file: str
    line: int | None
    reason: str
    raw: bytes
    raw_size: int


Item = Record | Quarantined


def quarantine(error: RecordError, raw: bytes = b"", raw_size: int | None = None) -> Quarantined:
    return Quarantined(
        error.file,
        error.line,
        error.reason,
        raw[:QUARANTINE_RAW_BYTES],
        len(raw) if raw_size is None else raw_size,
    )


# ----------------------------------------------------------------------------- formats


def split_compression(path: Path) -> tuple[str | None, str]:
    """``("gzip", ".jsonl")`` for ``x.jsonl.gz``: the compression and the inner suffix."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        return COMPRESSION_SUFFIXES[suffixes[-1]], (suffixes[-2] if len(suffixes) > 1 else "")
    return None, (suffixes[-1] if suffixes else "")


def detect_format(path: Path, declared: str = "auto") -> str:
    """The format to read ``path`` with: the declared one, or by extension."""
    if declared != "auto":
        return declared
    if path.is_dir():
        return "code_tree"
    _, suffix = split_compression(path)
    if suffix not in FORMAT_SUFFIXES:
        known = ", ".join(sorted(FORMAT_SUFFIXES))
        raise SourceError(
            f"{path}: cannot tell the format from '{suffix or path.name}' (known: {known}); set format"
        )
    return FORMAT_SUFFIXES[suffix]


class ZstdStream(io.RawIOBase):
    """A streaming zstd reader that, unlike ``stream_reader``, notices a cut frame.

    ``ZstdDecompressor().stream_reader(read_across_frames=True)`` ends quietly when
    the input stops in the middle of a frame, so a truncated .zst would look
    complete. Here each frame is fed to a ``decompressobj``, whose ``eof`` says
    whether the frame finished; input that ends before it did raises ``EOFError``,
    as gzip and bz2 do. Concatenated frames are read one after another.
    """

    def __init__(self, raw: IO[bytes], chunk_size: int = 1 << 14):
        # Small input chunks bound the output of one step: a 16 KB chunk of highly
        # repetitive text can still decompress to megabytes (a 128 KB chunk of the
        # repeated benchmark corpus held ~800 MB at once).
        self._raw, self._chunk_size = raw, chunk_size
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False  # True once the current frame has received input
        self._pending = b""
        self._offset = 0  # how much of _pending was handed out

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._offset >= len(self._pending):
            chunk = self._raw.read(self._chunk_size)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ended before the end of its frame")
                return 0
            self._pending, self._offset = self._decompress(chunk), 0
        n = min(len(buffer), len(self._pending) - self._offset)
        buffer[:n] = self._pending[self._offset : self._offset + n]
        self._offset += n
        return n

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._obj.decompress(chunk))
            chunk = b""
            if self._obj.eof:  # the frame is complete; what follows starts the next one
                chunk = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._in_frame = False
        return b"".join(out)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_binary(path: Path) -> IO[bytes]:
    """Open ``path`` for streaming reads, decompressing by its extension."""
    compression, _ = split_compression(path)
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "zstd":
        return io.BufferedReader(ZstdStream(open(path, "rb")), buffer_size=1 << 20)  # noqa: SIM115
    return open(path, "rb", buffering=1 << 20)  # noqa: SIM115


# ----------------------------------------------------------------------------- lines


@dataclass(slots=True)
class RawLine:
    number: int  # 1-based
    data: bytes  # without its line end; only the first bytes when too_large
    size: int  # the full size in bytes, line end excluded
    too_large: bool


def iter_raw_lines(stream: IO[bytes], file: str, limit: int) -> Iterator[RawLine]:
    """Lines as bytes, never holding more than ``limit`` bytes of one line.

    A line over ``limit`` is drained in 1 MB pieces and yielded with only its
    first bytes. A broken compressed stream raises ``RecordError("truncated_stream")``
    naming the line that could not be read.
    """
    number = 0
    while True:
        number += 1
        try:
            chunk = stream.readline(
                limit + 2
            )  # +2: room for "\r\n" after a line of exactly `limit`
            size = len(chunk)
            if chunk and not chunk.endswith(b"\n") and size == limit + 2:
                head = chunk[:QUARANTINE_RAW_BYTES]
                chunk = None  # let a huge line go before draining the rest of it
                while True:
                    more = stream.readline(1 << 20)
                    size += len(more)
                    if not more or more.endswith(b"\n"):
                        break
                yield RawLine(number, head, size - _line_end_len(more), True)
                continue
        except STREAM_ERRORS as e:
            log.warning("%s: stream broken at line %d: %s", file, number, e)
            raise RecordError("truncated_stream", file, number) from e
        if not chunk:
            return
        if number == 1 and chunk.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM is no text
            chunk = chunk[3:]
        data = chunk[: len(chunk) - _line_end_len(chunk)]
        if len(data) > limit:
            yield RawLine(number, data[:QUARANTINE_RAW_BYTES], len(data), True)
        else:
            yield RawLine(number, data, len(data), False)


def _line_end_len(chunk: bytes) -> int:
    if chunk.endswith(b"\r\n"):
        return 2
    return 1 if chunk.endswith(b"\n") else 0


def decode_utf8(data: bytes, file: str, line: int) -> str:
    """Decode, or raise ``RecordError("invalid_utf8")`` at the line of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError("invalid_utf8", file, line + data.count(b"\n", 0, e.start)) from None


# ----------------------------------------------------------------------------- fields


def as_text(value: Any) -> str | None:
    """A string, or a list of strings joined by newlines; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return None


def extract_text(record: Any, fields: str | list[str], file: str, line: int) -> str:
    """The text of a record from one field or several (joined by newlines).

    With several fields, a missing (or null) one is skipped, so a poem without a
    title keeps its lines; the record is ``missing_text`` when none is there, or
    when one holds something other than a string or a list of strings.
    """
    if not isinstance(record, dict):
        raise RecordError("missing_text", file, line)
    names = [fields] if isinstance(fields, str) else fields
    parts = []
    for name in names:
        value = record.get(name)
        if value is None:
            continue
        text = as_text(value)
        if text is None:
            raise RecordError("missing_text", file, line)
        parts.append(text)
    if not parts:
        raise RecordError("missing_text", file, line)
    return "\n".join(parts)


def extract_meta(record: Any, names: list[str]) -> dict[str, Any]:
    if not isinstance(record, dict):
        return {}
    return {name: record[name] for name in names if name in record}


def record_from(obj: Any, spec: dict, file: str, line: int, size: int | None, limit: int) -> Record:
    """Build a Record from a parsed object, or raise RecordError.

    ``size`` is the record's size as read (a JSONL line); None measures the text itself
    (records parsed out of a whole file or a Parquet row).
    """
    text = extract_text(obj, spec["text"], file, line)
    if size is None:
        size = len(text.encode("utf-8"))
    if size > limit:
        raise RecordError("too_large", file, line)
    return Record(file, line, text, extract_meta(obj, spec["meta"]), size)


# ----------------------------------------------------------------------------- readers


def read_jsonl(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    with open_binary(path) as stream:
        try:
            for raw in iter_raw_lines(stream, file, limit):
                if raw.too_large:
                    yield Quarantined(file, raw.number, "too_large", raw.data, raw.size)
                    continue
                if not raw.data.strip():
                    continue  # a blank line separates nothing and is no record
                try:
                    obj = parse_json_line(raw, file)
                    yield record_from(obj, spec, file, raw.number, raw.size, limit)
                except RecordError as e:
                    yield quarantine(e, raw.data)
        except RecordError as e:  # truncated_stream: everything before it was yielded
            yield quarantine(e)


def parse_json_line(raw: RawLine, file: str) -> Any:
    text = decode_utf8(raw.data, file, raw.number)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise RecordError("malformed_json", file, raw.number) from None


def read_json(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    """A JSON document, parsed whole (there is no streaming JSON parser in the stdlib)."""
    with open_binary(path) as stream:
        try:
            data = stream.read()
        except STREAM_ERRORS as e:
            log.warning("%s: stream broken: %s", file, e)
            yield Quarantined(file, None, "truncated_stream", b"", 0)
            return
    if len(data) > 256 << 20:
        log.warning("%s: a %d MB JSON file is parsed whole; jsonl streams", file, len(data) >> 20)
    try:
        doc = json.loads(decode_utf8(data.removeprefix(b"\xef\xbb\xbf"), file, 1))
    except RecordError as e:
        yield quarantine(e, data)
        return
    except json.JSONDecodeError as e:
        yield quarantine(RecordError("malformed_json", file, e.lineno), data)
        return
    del data
    for number, obj in enumerate(walk_records(doc, spec["records"], file), start=1):
        try:
            yield record_from(obj, spec, file, number, None, limit)
        except RecordError as e:
            raw = json.dumps(obj, ensure_ascii=False)[:QUARANTINE_RAW_BYTES].encode("utf-8")
            yield quarantine(e, raw, len(json.dumps(obj, ensure_ascii=False).encode("utf-8")))


def walk_records(doc: Any, dotted: str, file: str) -> Iterator[Any]:
    """Follow a dotted path (``data.*.paragraphs.*``); ``*`` iterates a list or an object's values.

    ``""`` takes the top: a list of records, or an object whose values are records.
    A key that is not there is a SourceError naming it: the config does not fit the file.
    """
    parts = dotted.split(".") if dotted else []
    if not parts:
        yield from (
            doc.values() if isinstance(doc, dict) else doc if isinstance(doc, list) else [doc]
        )
        return
    yield from _walk(doc, parts, file, "")


def _walk(node: Any, parts: list[str], file: str, where: str) -> Iterator[Any]:
    if not parts:
        yield node
        return
    part, rest = parts[0], parts[1:]
    here = f"{where}.{part}" if where else part
    if part == "*":
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            raise SourceError(
                f"{file}: records path '{here}': not a list or object at '{where or '<top>'}'"
            )
        for child in children:
            yield from _walk(child, rest, file, here)
        return
    if isinstance(node, dict) and part in node:
        yield from _walk(node[part], rest, file, here)
    elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
        yield from _walk(node[int(part)], rest, file, here)
    else:
        raise SourceError(f"{file}: records path: no key '{part}' at '{where or '<top>'}'")


def read_parquet(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if split_compression(path)[0]:
        raise SourceError(
            f"{file}: a compressed Parquet file cannot be streamed; Parquet compresses inside"
        )
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        log.warning("%s: not a readable Parquet file: %s", file, e)
        yield Quarantined(file, None, "truncated_stream", b"", 0)
        return
    names = [spec["text"]] if isinstance(spec["text"], str) else list(spec["text"])
    have = set(pf.schema_arrow.names)
    if not set(names) & have:
        raise SourceError(f"{file}: no text column {names} (columns: {', '.join(sorted(have))})")
    columns = [c for c in dict.fromkeys(names + list(spec["meta"])) if c in have]
    number = 0
    try:
        for batch in pf.iter_batches(batch_size=1024, columns=columns):
            for row in batch.to_pylist():
                number += 1
                try:
                    yield record_from(row, spec, file, number, None, limit)
                except RecordError as e:
                    raw = str(row)[:QUARANTINE_RAW_BYTES].encode("utf-8")
                    yield quarantine(e, raw, len(raw))
    except (pa.ArrowException, OSError) as e:
        log.warning("%s: Parquet broken after row %d: %s", file, number, e)
        yield Quarantined(file, number + 1, "truncated_stream", b"", 0)


def read_txt(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    """Plain text, one document per file, line, paragraph, block of paragraphs
    (at least ``block_bytes``), or ``split_regex`` match."""
    split = spec["split"]
    if split == "regex" and not spec.get("split_regex"):
        raise SourceError(f"{file}: split: regex needs split_regex")
    starts = re.compile(spec["split_regex"]) if split == "regex" else None
    doc = TextDoc(file, limit)
    boiler = TextDoc(file, limit)  # a Project Gutenberg header or footer (layout.gutenberg)
    gutenberg = (spec.get("layout") or {}).get("gutenberg")
    with open_binary(path) as stream:
        try:
            lines = iter_raw_lines(stream, file, limit)
            sections = gutenberg_sections(lines) if gutenberg else (("body", r) for r in lines)
            for section, raw in sections:
                if section != "body":
                    if section == "footer" and boiler.start is None:
                        yield from doc.finish()  # the body ends where the footer starts
                    boiler.add(raw, keep_blank=boiler.start is not None)
                    boiler.kind = f"gutenberg_{section}"
                    continue
                if boiler.start is not None:  # the header is over
                    yield from boiler.finish()
                if split == "line":
                    if raw.too_large:
                        yield Quarantined(file, raw.number, "too_large", raw.data, raw.size)
                    elif raw.data.strip():
                        yield from doc.add(raw).finish()
                    continue
                blank = not raw.data.strip()
                if blank and split == "paragraph":
                    yield from doc.finish()
                    continue
                if blank and split == "block":
                    # paragraphs gathered until the block is big enough, as one document
                    if doc.size >= spec["block_bytes"]:
                        yield from doc.finish()
                    elif doc.start is not None:
                        doc.add(raw)  # keeps the paragraph break
                    continue
                if (
                    starts
                    and not raw.too_large
                    and starts.search(raw.data.decode("utf-8", "replace"))
                ):
                    yield from doc.finish()
                doc.add(raw)
        except RecordError as e:
            yield from doc.finish()
            yield from boiler.finish()
            yield quarantine(e)
            return
    yield from doc.finish()
    yield from boiler.finish()


class TextDoc:
    """Lines gathered into one txt document; past ``limit`` only the size is counted."""

    def __init__(self, file: str, limit: int):
        self.file, self.limit = file, limit
        self._reset()

    def _reset(self) -> None:
        self.kind: str | None = None  # set for boilerplate: the record's Record.boilerplate
        self.start: int | None = None
        self.lines: list[bytes] = []
        self.size = 0
        self.head = b""
        self.overflow = False

    def add(self, raw: RawLine, keep_blank: bool = False) -> TextDoc:
        if self.start is None:
            if not raw.data.strip() and not keep_blank:
                return self  # blank lines before a document belong to none
            self.start = raw.number
        self.size += raw.size + (1 if self.size else 0)
        if not self.overflow and (raw.too_large or self.size > self.limit):
            self.head = (b"\n".join(self.lines) + b"\n" + raw.data)[:QUARANTINE_RAW_BYTES]
            self.lines, self.overflow = [], True  # let the lines go: it will be quarantined
        elif not self.overflow:
            self.lines.append(raw.data)
        return self

    def finish(self) -> Iterator[Item]:
        if self.start is None:
            return
        start, lines, size, head, overflow, kind = (
            self.start,
            self.lines,
            self.size,
            self.head,
            self.overflow,
            self.kind,
        )
        self._reset()
        if overflow:
            yield Quarantined(self.file, start, "too_large", head.lstrip(b"\n"), size)
            return
        data = b"\n".join(lines)
        try:
            text = decode_utf8(data, self.file, start)
            yield Record(self.file, start, text, {}, size, boilerplate=kind)
        except RecordError as e:
            yield quarantine(e, data)


def read_wiki_xml(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    """A MediaWiki XML export: one document per article (namespace 0, not a redirect).

    The ``line`` of a record is its page's ordinal in the dump. Each page is cleared
    once read, and so is the root, so that memory does not grow with the dump.
    """
    import xml.etree.ElementTree as ET

    import mwparserfromhell

    pages = skipped = 0
    wiki_layout = bool((spec.get("layout") or {}).get("wiki"))
    with open_binary(path) as stream:
        root = None
        try:
            for event, elem in ET.iterparse(stream, events=("start", "end")):
                if root is None:
                    root = elem
                if event != "end" or local_name(elem.tag) != "page":
                    continue
                pages += 1
                item = page_item(elem, file, pages, limit, mwparserfromhell, wiki_layout)
                root.clear()  # drops this page and everything before it
                if item is None:
                    skipped += 1
                else:
                    yield item
        except ET.ParseError as e:
            log.warning("%s: XML not well-formed after page %d: %s", file, pages, e)
            yield Quarantined(file, pages + 1, "malformed_xml", str(e).encode(), 0)
        except STREAM_ERRORS as e:
            log.warning("%s: stream broken after page %d: %s", file, pages, e)
            yield Quarantined(file, pages + 1, "truncated_stream", b"", 0)
    log.info("%s: %d pages, %d not articles (other namespace or redirect)", file, pages, skipped)


def local_name(tag: str) -> str:
    """``{http://www.mediawiki.org/xml/export-0.11/}page`` -> ``page``."""
    return tag.rsplit("}", 1)[-1]


def child(elem, name: str):
    return next((c for c in elem if local_name(c.tag) == name), None)


def page_item(
    page, file: str, number: int, limit: int, mwparserfromhell, wiki_layout: bool = False
) -> Item | None:
    """The article in a ``<page>`` element, a Quarantined, or None when it is no article.

    With ``wiki_layout`` (layout.wiki), references, category and file links are removed and
    recorded, and headings get lines of their own (``cama.corpus.layout.wikitext_to_text``).
    """
    ns = child(page, "ns")
    if (ns is not None and (ns.text or "").strip() != "0") or child(page, "redirect") is not None:
        return None
    title, page_id = child(page, "title"), child(page, "id")
    meta = {
        "title": title.text if title is not None else None,
        "page_id": page_id.text if page_id is not None else None,
    }
    revisions = [c for c in page if local_name(c.tag) == "revision"]
    text_elem = (
        child(revisions[-1], "text") if revisions else None
    )  # the last revision is the current one
    wikitext = text_elem.text if text_elem is not None else None
    if wikitext is None:
        return Quarantined(file, number, "missing_text", (meta["title"] or "").encode(), 0)
    size = len(wikitext.encode("utf-8"))
    if size > limit:
        return Quarantined(
            file, number, "too_large", wikitext[:QUARANTINE_RAW_BYTES].encode("utf-8"), size
        )
    removed: list[tuple[str, str]] = []
    try:
        if wiki_layout:
            out = wikitext_to_text(wikitext, mwparserfromhell)
            text, removed = out.text, out.removed
        else:
            text = mwparserfromhell.parse(wikitext).strip_code()
    except Exception as e:  # noqa: BLE001 (any parser failure is this one page's problem)
        log.warning("%s: page %d (%s): wikitext not parsed: %s", file, number, meta["title"], e)
        return Quarantined(
            file, number, "malformed_markup", wikitext.encode("utf-8")[:QUARANTINE_RAW_BYTES], size
        )
    return Record(file, number, text, meta, size, removed=removed)


def read_code_tree(path: Path, spec: dict, file: str, limit: int) -> Iterator[Item]:
    """Source files, one document each: a whole folder, or one file of a tree."""
    if path.is_dir():
        paths = list(iter_tree(path, spec["include"]))
        names = [f"{file}/{p.relative_to(path).as_posix()}" for p in paths]
    else:
        paths, names = [path], [file]
    for number, (p, name) in enumerate(zip(paths, names, strict=True), start=1):
        yield read_code_file(p, name, number, limit)


def iter_tree(root: Path, include: list[str]) -> Iterator[Path]:
    """Files under ``root`` in a stable (sorted) order, matching ``include`` if given."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            p = Path(folder) / name
            rel = PurePosixPath(p.relative_to(root).as_posix())
            if not include or any(rel.match(g) or fnmatch.fnmatch(str(rel), g) for g in include):
                yield p


def code_language(path: Path) -> str:
    return LANGUAGE_BY_NAME.get(path.name) or LANGUAGE_BY_EXTENSION.get(
        path.suffix.lower(), "unknown"
    )


def read_code_file(path: Path, name: str, number: int, limit: int) -> Item:
    size = path.stat().st_size
    meta = {"path": name, "language": code_language(path)}
    if size > limit:
        with open(path, "rb") as f:
            return Quarantined(name, number, "too_large", f.read(QUARANTINE_RAW_BYTES), size)
    data = path.read_bytes()
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return Quarantined(name, number, "binary", data[:QUARANTINE_RAW_BYTES], size)
    try:
        text = decode_utf8(data.removeprefix(b"\xef\xbb\xbf"), name, 1)
    except RecordError as e:
        return quarantine(e, data)
    return Record(name, number, text, meta, size)


READERS = {
    "jsonl": read_jsonl,
    "json": read_json,
    "parquet": read_parquet,
    "txt": read_txt,
    "wiki_xml": read_wiki_xml,
    "code_tree": read_code_tree,
}


def iter_records(
    path: str | os.PathLike, spec: dict, name: str | None = None, max_doc_bytes: int = 10_000_000
) -> Iterator[Item]:
    """Stream the records of one raw file (or code folder) as Record or Quarantined.

    ``spec`` is a validated source entry of the config (format, text, records,
    meta, split, split_regex, include); ``name`` is how the file is named in
    records and messages (default: its file name). A missing file is a SourceError.
    """
    path = Path(path)
    name = name or path.name
    if not path.exists():
        raise SourceError(f"{name}: file not found ({path})")
    fmt = detect_format(path, spec["format"])
    yield from READERS[fmt](path, spec, name, max_doc_bytes)
