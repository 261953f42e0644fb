"""corpus: normalise one source: raw files -> documents, rejected, quarantined, stats.

For each record that ``readers.iter_records`` yields, in manifest order:

1. a record that could not be read (``Quarantined``) goes to the quarantine file;
2. its text is cleaned (``text.clean_text``: line ends, Unicode form, control
   characters, OpenCC for sources with ``opencc: true``);
3. nothing left -> rejected with rule ``empty``;
   a record that the reader marked as boilerplate (a Project Gutenberg licence header or
   footer) -> rejected with rule ``layout.gutenberg_header`` / ``layout.gutenberg_footer``;
4. the source's layout steps (``layout.apply``: wiki category lines removed, hard-wrapped
   lines joined); every removed line is counted and written to the rejected file with
   ``scope`` line and its rule (and so are the references, category and file links that
   the wiki XML reader removed);
5. the language check (``langid``, zh and en only, in batches) -> rejected with
   rule ``lang_mismatch``, value = the detector's probability;
6. otherwise a document: ``id`` = ``{source}/{file index}/{record number}``
   (file index 0-based in manifest order, record number 1-based: the line of a
   jsonl or txt file, the n-th record of json or parquet, the page of a wiki dump,
   the n-th file of a code tree), so it stays the same as long as the raw files do.

Stats (``out_stats``)::

    {"source", "lang", "records_in", "docs_out", "rejected": {rule: n},
     "quarantined": {reason: n}, "bytes_in", "bytes_out", "bytes_rejected", "bytes_quarantined",
     "layout": {"settings": {...}, "lines_joined": n,
                "removed": {rule: {"lines": n, "bytes": b}}},
     "files", "seconds"}

with ``records_in == docs_out + sum(rejected) + sum(quarantined)``. ``bytes_in``
counts each record as read (its JSON line, its text lines, its file; quarantined
ones by their full size), ``bytes_out`` the UTF-8 text of the documents written.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cama.corpus import layout
from cama.corpus.langid import LanguageCheck
from cama.corpus.readers import Quarantined, Record, iter_records
from cama.corpus.text import clean_text, is_blank
from cama.errors import SourceError
from cama.io import (
    DOC_SCHEMA,
    QUARANTINE_SCHEMA,
    REJECTED_SCHEMA,
    ParquetSink,
    read_json,
    write_json,
)
from cama.logs import progress

log = logging.getLogger(__name__)

LANG_BATCH = 512  # documents per language-detector call
_BOILERPLATE = {
    "gutenberg_header": "Project Gutenberg licence header (up to the START OF line)",
    "gutenberg_footer": "Project Gutenberg licence footer (from the End of / END OF line)",
}


@dataclass(frozen=True, slots=True)
class RawFile:
    index: int  # 0-based position in the manifest
    name: str  # path relative to raw_dir, as the manifest gives it
    path: Path


def manifest_files(raw_dir: str | Path) -> list[RawFile]:
    """The files of ``raw_dir/manifest.json`` in manifest order; SourceError if any is missing."""
    raw_dir = Path(raw_dir)
    manifest_path = raw_dir / "manifest.json"
    if not manifest_path.exists():
        raise SourceError(f"{manifest_path}: no manifest; run the download stage first")
    try:
        entries = read_json(manifest_path)["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise SourceError(f"{manifest_path}: not a manifest with a 'files' list: {e}") from None
    files = [RawFile(i, entry["path"], raw_dir / entry["path"]) for i, entry in enumerate(entries)]
    missing = [f.name for f in files if not f.path.exists()]
    if missing:
        raise SourceError(f"{manifest_path}: listed but missing in {raw_dir}: {', '.join(missing)}")
    return files


def doc_row(name: str, lang: str, file_index: int, record: Record, text: str) -> dict[str, Any]:
    meta = {"file": record.file, "line": record.line, **record.meta}
    return {
        "id": f"{name}/{file_index}/{record.line}",
        "text": text,
        "lang": lang,
        "source": name,
        "meta": json.dumps(meta, ensure_ascii=False, default=str),
    }


def quarantine_row(name: str, item: Quarantined) -> dict[str, Any]:
    return {"source": name, "file": item.file, "line": item.line, "reason": item.reason,
            "raw": item.raw, "raw_size": item.raw_size}  # fmt: skip


def rejected_row(
    doc: dict[str, Any], rule: str, value: float | None, detail: str, scope: str = "doc"
) -> dict[str, Any]:
    return {**doc, "rule": rule, "value": value, "detail": detail, "scope": scope}


class Outputs:
    """The three Parquet sinks and the counts, so that every row is counted where it is written."""

    def __init__(self, docs: ParquetSink, rejected: ParquetSink, quarantine: ParquetSink):
        self.docs, self.rejected, self.quarantine = docs, rejected, quarantine
        self.rejected_by: Counter[str] = Counter()
        self.quarantined_by: Counter[str] = Counter()
        self.removed_lines: Counter[str] = Counter()
        self.removed_bytes: Counter[str] = Counter()
        self.lines_joined = 0
        self.bytes_out = self.bytes_rejected = self.bytes_quarantined = 0

    def keep(self, doc: dict[str, Any]) -> None:
        self.docs.write(doc)
        self.bytes_out += len(doc["text"].encode("utf-8"))

    def reject(self, doc: dict[str, Any], rule: str, value: float | None, detail: str) -> None:
        self.rejected.write(rejected_row(doc, rule, value, detail))
        self.rejected_by[rule] += 1
        self.bytes_rejected += len(doc["text"].encode("utf-8"))

    def cut(self, doc: dict[str, Any], removed: list[tuple[str, str]]) -> None:
        """Record what the layout steps cut out of ``doc``: counted, and kept as line rows."""
        for rule, text in removed:
            nbytes = len(text.encode("utf-8"))
            self.removed_lines[rule] += 1
            self.removed_bytes[rule] += nbytes
            self.rejected.write(
                rejected_row({**doc, "text": text}, rule, nbytes, _CUT_DETAIL.get(rule, rule), "line")
            )


    def put_aside(self, row: dict[str, Any]) -> None:
        self.quarantine.write(row)
        self.bytes_quarantined += row["raw_size"] or 0
        self.quarantined_by[row["reason"]] += 1


_CUT_DETAIL = {
    "layout.wiki_category": "a wiki category line or link",
    "layout.wiki_ref": "a wiki reference note",
    "layout.wiki_file": "a wiki file or image link",
}


def check_and_write(
    pending: list[dict[str, Any]], check: LanguageCheck | None, out: Outputs
) -> None:
    """Run the language check on a batch of documents and write each where it belongs."""
    verdicts = check.check([d["text"] for d in pending]) if check else [None] * len(pending)
    for doc, mismatch in zip(pending, verdicts, strict=True):
        if mismatch is None:
            out.keep(doc)
        else:
            out.reject(doc, "lang_mismatch", mismatch.score, mismatch.detail)
    pending.clear()


def iter_items(
    files: list[RawFile], spec: dict, max_doc_bytes: int
) -> Iterator[tuple[int, Record | Quarantined]]:
    for f in files:
        for item in iter_records(f.path, spec, name=f.name, max_doc_bytes=max_doc_bytes):
            yield f.index, item


def normalise_source(
    name: str,
    spec: dict,
    raw_dir: str | Path,
    out_docs: str | Path,
    out_rejected: str | Path,
    out_quarantine: str | Path,
    out_stats: str | Path,
    settings: dict,
    layout_settings: dict | None = None,
) -> dict:
    """Turn the raw files of source ``name`` into documents; write the four outputs; return the stats.

    ``spec`` is the source's validated config entry, ``settings`` the validated
    ``normalise`` section, ``layout_settings`` the source's layout steps
    (``cama.config.source_layout_settings``; None: none). A missing file fails the source
    (SourceError) before anything is written; a bad record is quarantined and counted.
    """
    started = time.perf_counter()
    lang = spec["lang"]
    layout_settings = dict(layout_settings or {})
    spec = {**spec, "layout": layout_settings}
    files = manifest_files(raw_dir)
    check = LanguageCheck.from_settings(lang, settings)
    opencc_config = settings["opencc_config"] if spec.get("opencc") else None
    records_in = bytes_in = 0
    pending: list[dict[str, Any]] = []
    with (
        ParquetSink(out_docs, DOC_SCHEMA) as docs,
        ParquetSink(out_rejected, REJECTED_SCHEMA) as rejected,
        ParquetSink(out_quarantine, QUARANTINE_SCHEMA) as quarantine,
    ):
        out = Outputs(docs, rejected, quarantine)
        items = iter_items(files, spec, settings["max_doc_bytes"])
        for file_index, item in progress(items, desc=f"normalise {name}", unit=" rec"):
            records_in += 1
            if isinstance(item, Quarantined):
                bytes_in += item.raw_size
                out.put_aside(quarantine_row(name, item))
                continue
            bytes_in += item.size
            text = clean_text(item.text, lang, settings["unicode_form"].get(lang, "NFC"), opencc_config)
            if item.boilerplate:
                doc = doc_row(name, lang, file_index, item, text)
                out.reject(doc, f"layout.{item.boilerplate}", item.size, _BOILERPLATE[item.boilerplate])
                continue
            shaped = layout.apply(text, layout_settings)
            doc = doc_row(name, lang, file_index, item, shaped.text)
            out.cut(doc, item.removed + shaped.removed)
            out.lines_joined += shaped.lines_joined
            if is_blank(shaped.text):
                out.reject(doc, "empty", 0.0, "no text left after cleanup")
                continue
            pending.append(doc)
            if len(pending) >= LANG_BATCH:
                check_and_write(pending, check, out)
        check_and_write(pending, check, out)
    stats = {
        "source": name,
        "lang": lang,
        "records_in": records_in,
        "docs_out": docs.rows,
        "rejected": dict(sorted(out.rejected_by.items())),
        "quarantined": dict(sorted(out.quarantined_by.items())),
        "bytes_in": bytes_in,
        "bytes_out": out.bytes_out,
        "bytes_rejected": out.bytes_rejected,
        "bytes_quarantined": out.bytes_quarantined,
        "layout": {
            "settings": layout_settings,
            "lines_joined": out.lines_joined,
            "removed": {
                rule: {"lines": out.removed_lines[rule], "bytes": out.removed_bytes[rule]}
                for rule in sorted(out.removed_bytes)
            },
        },
        "files": len(files),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if records_in != stats["docs_out"] + sum(out.rejected_by.values()) + sum(
        out.quarantined_by.values()
    ):
        raise RuntimeError(f"{name}: records do not add up (a bug in cama): {stats}")
    write_json(out_stats, stats)
    log_summary(stats)
    return stats


def log_summary(stats: dict) -> None:
    mb = stats["bytes_in"] / 1e6
    log.info(
        "%s: %d records from %d files (%.1f MB) -> %d docs, rejected %s, quarantined %s, in %.1f s (%.1f MB/s)",
        stats["source"], stats["records_in"], stats["files"], mb, stats["docs_out"],
        stats["rejected"] or "none", stats["quarantined"] or "none", stats["seconds"],
        mb / stats["seconds"] if stats["seconds"] else 0.0,
    )  # fmt: skip
