"""What every converter shares: raw record readers, the result types, the context.

A converter is two small pieces (see ``Format``):

- a **reader** that streams the raw records of one file as ``Raw(number, obj, raw)`` or a
  ``Quarantined`` (malformed JSON, invalid UTF-8, a cut stream), reusing the corpus stage's
  readers (``cama.corpus.readers``) for lines, compression and UTF-8;
- a **convert** function from one raw record to a list of ``Conv`` (a conversation) or
  ``IEItem`` (a sentence and its gold), raising ``RecordError(reason)`` for a bad record,
  which the stage quarantines with the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cama.corpus.readers import (
    Quarantined,
    detect_format,
    iter_raw_lines,
    open_binary,
    parse_json_line,
    quarantine,
    walk_records,
)
from cama.errors import RecordError, SourceError
from cama.io import QUARANTINE_RAW_BYTES

MAX_RECORD_BYTES = 10_000_000


@dataclass(slots=True)
class Raw:
    """One raw record as read: its number (line, or position in a JSON file), object, bytes."""

    number: int
    obj: Any
    raw: bytes = b""


@dataclass(slots=True)
class Conv:
    """A converted conversation (general, cot, code)."""

    messages: list[dict]
    meta: dict = field(default_factory=dict)


@dataclass(slots=True)
class IEItem:
    """A converted IE sentence: text and gold items over the dataset's own label names."""

    text: str
    gold: list
    meta: dict = field(default_factory=dict)


@dataclass
class Context:
    """What a convert function may read: the source's language, options and auxiliary data."""

    source: str
    lang: str  # zh | en (auto is resolved per record, after conversion)
    task: str
    options: dict
    aux: dict[str, Any] = field(default_factory=dict)  # e.g. relation_names, loaded once


Reader = Callable[[Path, str, dict], Iterator["Raw | Quarantined"]]
Convert = Callable[[Any, Context], list]


@dataclass(frozen=True)
class Format:
    """A source format: which tasks it feeds, how to read and convert it, its options."""

    name: str
    tasks: tuple[str, ...]
    reader: Reader
    convert: Convert
    options: dict = field(default_factory=dict)  # option -> default
    doc: str = ""


def raw_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")[:QUARANTINE_RAW_BYTES]


# ----------------------------------------------------------------------------- readers


def read_jsonl(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    with open_binary(path) as stream:
        try:
            for raw in iter_raw_lines(stream, file, MAX_RECORD_BYTES):
                if raw.too_large:
                    yield Quarantined(file, raw.number, "too_large", raw.data, raw.size)
                    continue
                if not raw.data.strip():
                    continue
                try:
                    yield Raw(raw.number, parse_json_line(raw, file), raw.data)
                except RecordError as e:
                    yield quarantine(e, raw.data)
        except RecordError as e:  # a cut stream: what came before it was read
            yield quarantine(e)


def read_json_document(path: Path, file: str) -> Any:
    """A whole JSON file; SourceError naming it when it is not JSON."""
    with open_binary(path) as stream:
        data = stream.read()
    try:
        return json.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SourceError(f"{file}: not a JSON document ({e})") from None


def read_json(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    """JSONL or a JSON document (by extension); in a document, records under ``options['records']``."""
    if detect_format(path) == "jsonl":
        yield from read_jsonl(path, file, options)
        return
    doc = read_json_document(path, file)
    for number, obj in enumerate(walk_records(doc, options.get("records", ""), file), start=1):
        yield Raw(number, obj, raw_bytes(obj))


def read_lines(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    """Non-blank text lines: ``Raw(line number, the line)``."""
    with open_binary(path) as stream:
        try:
            for raw in iter_raw_lines(stream, file, MAX_RECORD_BYTES):
                if raw.too_large:
                    yield Quarantined(file, raw.number, "too_large", raw.data, raw.size)
                    continue
                try:
                    line = raw.data.decode("utf-8")
                except UnicodeDecodeError:
                    yield quarantine(RecordError("invalid_utf8", file, raw.number), raw.data)
                    continue
                if line.strip():
                    yield Raw(raw.number, line, raw.data)
        except RecordError as e:
            yield quarantine(e)


def read_blocks(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    """Blocks of lines separated by blank (or whitespace-only) lines: ``Raw(first line, [lines])``.

    A bad line (invalid UTF-8, too long) quarantines its whole block.
    """
    block: list[str] = []
    start, bad = 0, None
    raw_lines: list[bytes] = []

    def flush():
        nonlocal block, raw_lines, bad
        out = None
        if bad is not None:
            out = quarantine(RecordError(bad, file, start), b"\n".join(raw_lines))
        elif block:
            out = Raw(start, block, b"\n".join(raw_lines)[:QUARANTINE_RAW_BYTES])
        block, raw_lines, bad = [], [], None
        return out

    with open_binary(path) as stream:
        try:
            for raw in iter_raw_lines(stream, file, MAX_RECORD_BYTES):
                if not raw.data.strip():
                    if (out := flush()) is not None:
                        yield out
                    continue
                if not block and bad is None:
                    start = raw.number
                raw_lines.append(raw.data[:QUARANTINE_RAW_BYTES])
                if raw.too_large:
                    bad = bad or "too_large"
                    continue
                try:
                    block.append(raw.data.decode("utf-8"))
                except UnicodeDecodeError:
                    bad = bad or "invalid_utf8"
        except RecordError as e:
            yield quarantine(e)
            return
    if (out := flush()) is not None:
        yield out


# ----------------------------------------------------------------------------- helpers


def field_str(obj: Any, name: str, required: bool = True) -> str:
    """``obj[name]`` as a string; RecordError ``missing_<name>`` when absent (and required)."""
    if not isinstance(obj, dict):
        raise RecordError("not_an_object")
    value = obj.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and required):
        if required:
            raise RecordError(f"missing_{name}")
        return ""
    if not isinstance(value, str):
        raise RecordError(f"bad_{name}")
    return value


def check_offset(text: str, span: str, start: int, end: int) -> None:
    """``text[start:end] == span``, or RecordError ``span_mismatch`` (offset errors are common)."""
    if not isinstance(start, int) or not isinstance(end, int) or text[start:end] != span:
        raise RecordError("span_mismatch")
