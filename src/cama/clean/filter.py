"""The clean stage's filter step: one source's documents -> kept, rejected, scores, stats.

Streams the docs Parquet in batches through the source's filter chain (its language's chain
with its kind's preset, ``cama.config.source_filter_settings``), masks PII in what is kept, and
writes four files atomically:

- the kept documents (DOC_SCHEMA);
- the rejected file (REJECTED_SCHEMA): every rejected document (``scope`` doc) with its rule,
  measured value and detail, and a sample of the lines that rules removed from kept documents
  (``scope`` line, ``filter.line_samples`` per rule), each with its rule and reason;
- the scores (``id`` + one column per score of the chain, for every document, kept or not):
  scoring is apart from selection, so a threshold can change without recomputing them
  (:func:`reselect`);
- the stats JSON.

Accounting, checked before the stats are written:
``docs_in == kept + sum(rejected)``, and in bytes
``bytes_in == bytes_rejected + sum(lines_removed[rule].bytes) + bytes_filtered``, where
``bytes_filtered`` are the kept documents' bytes after the filters and before PII masking
(``bytes_kept`` after it). A source losing more than ``filter.warn_loss`` of its documents or
bytes is logged as a WARNING and flagged in the stats (``loss_flag``) and in the report.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from cama.clean.filters import PiiMasker, build_chain
from cama.clean.filters.base import FilterChain, Reject
from cama.io import DOC_SCHEMA, REJECTED_SCHEMA, ParquetSink, count_rows, iter_parquet, write_json
from cama.logs import progress

log = logging.getLogger(__name__)


def scores_schema(chain: FilterChain) -> pa.Schema:
    return pa.schema([("id", pa.string())] + [(n, pa.float64()) for n in chain.score_names()])


def filter_source(
    docs_path: str | os.PathLike,
    out_kept: str | os.PathLike,
    out_rejected: str | os.PathLike,
    out_stats: str | os.PathLike,
    lang: str,
    settings: dict,
    out_scores: str | os.PathLike | None = None,
    source: str | None = None,
) -> dict:
    """Filter one source. ``settings`` is the validated ``filter`` section as the source sees it
    (``cama.config.source_filter_settings``); returns the stats."""
    chain = build_chain(lang, settings[lang])
    pii = PiiMasker(**settings["pii"])
    samples_per_rule = settings["line_samples"]
    name = source or os.path.basename(os.fspath(docs_path)).split(".")[0]
    log.info(
        "filter %s (%s): %s", docs_path, lang, ", ".join(type(f).__name__ for f in chain.filters)
    )
    docs_in = bytes_in = bytes_rejected = bytes_filtered = bytes_kept = 0
    removed_lines: Counter = Counter()
    removed_bytes: Counter = Counter()
    sampled: Counter = Counter()
    t0 = time.perf_counter()
    score_names = chain.score_names()
    scores_sink = ParquetSink(out_scores, scores_schema(chain)) if out_scores else None
    with (
        ParquetSink(out_kept, DOC_SCHEMA) as kept,
        ParquetSink(out_rejected, REJECTED_SCHEMA) as rejected,
        scores_sink or _Null() as scores,
    ):
        for row in progress(
            iter_parquet(docs_path), total=count_rows(docs_path), desc=f"filter {lang}", unit="doc"
        ):
            text = row["text"] or ""
            docs_in += 1
            nbytes = len(text.encode("utf-8"))
            bytes_in += nbytes
            j = chain.judge(text)
            scores.write({"id": row["id"], **{k: j.scores.get(k) for k in score_names}})
            if j.reject is not None:
                bytes_rejected += nbytes
                rejected.write(_rejected_row(row, j.reject, "doc"))
                continue
            for r in j.removed:
                removed_lines[r.rule] += 1 if r.text else 0
                removed_bytes[r.rule] += r.nbytes
                if r.text and sampled[r.rule] < samples_per_rule:
                    sampled[r.rule] += 1
                    line = {**row, "text": r.text}
                    rejected.write(_rejected_row(line, Reject(r.rule, r.nbytes, r.detail), "line"))
            bytes_filtered += len(j.text.encode("utf-8"))
            row["text"] = pii(j.text)
            bytes_kept += len(row["text"].encode("utf-8"))
            kept.write(row)
    seconds = time.perf_counter() - t0
    n_rejected = sum(chain.rejected.values())
    doc_loss = n_rejected / docs_in if docs_in else 0.0
    byte_loss = 1 - bytes_filtered / bytes_in if bytes_in else 0.0
    stats = {
        "source": name,
        "lang": lang,
        "docs_in": docs_in,
        "kept": chain.kept,
        "rejected": dict(chain.rejected.most_common()),
        "bytes_in": bytes_in,
        "bytes_rejected": bytes_rejected,
        "bytes_filtered": bytes_filtered,
        "bytes_kept": bytes_kept,
        "lines_removed": {
            rule: {"lines": removed_lines[rule], "bytes": removed_bytes[rule], "sampled": sampled[rule]}
            for rule, _ in removed_bytes.most_common()
        },
        "loss": {"docs": round(doc_loss, 4), "bytes": round(byte_loss, 4)},
        "loss_flag": doc_loss > settings["warn_loss"] or byte_loss > settings["warn_loss"],
        "warn_loss": settings["warn_loss"],
        "pii_masked": {k: pii.counts[k] for k in ("email", "phone", "cn_id")},
        "scores": score_names,
        "seconds": round(seconds, 3),
        "mb_per_s": round(bytes_in / 1e6 / seconds, 3) if seconds > 0 else None,
    }
    assert_invariant(stats)
    write_json(out_stats, stats)
    log.info(
        "kept %d of %d documents (%.1f%% of bytes); rejected %s; lines removed %s",
        stats["kept"], docs_in, 100 * (1 - byte_loss), stats["rejected"],
        {r: v["lines"] for r, v in stats["lines_removed"].items()} or "none",
    )  # fmt: skip
    if stats["loss_flag"]:
        log.warning(
            "%s lost %.0f%% of its documents and %.0f%% of its bytes in the filter step "
            "(more than filter.warn_loss = %.0f%%): check its kind (sources.%s.kind) and the "
            "rejected file; top rules: %s",
            name, 100 * doc_loss, 100 * byte_loss, 100 * settings["warn_loss"], name,
            ", ".join(f"{r} {n}" for r, n in list(stats["rejected"].items())[:3]) or "lines removed",
        )  # fmt: skip
    return stats


def _rejected_row(row: dict, why: Reject, scope: str) -> dict:
    return {**row, "rule": why.rule, "value": why.value, "detail": why.detail, "scope": scope}


class _Null:
    """A sink that drops what it is given (no scores file asked for)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, row: dict) -> None:
        pass


def assert_invariant(stats: dict) -> None:
    if stats["docs_in"] != stats["kept"] + sum(stats["rejected"].values()):
        raise RuntimeError(f"filter stats do not add up (documents): {stats}")
    removed = sum(v["bytes"] for v in stats["lines_removed"].values())
    if stats["bytes_in"] != stats["bytes_rejected"] + removed + stats["bytes_filtered"]:
        raise RuntimeError(f"filter stats do not add up (bytes): {stats}")


def reselect(
    scores_path: str | os.PathLike, lang: str, settings: dict
) -> Iterator[tuple[str, Reject | None]]:
    """(id, decision) for every document of a scores file, under ``settings`` (the ``filter``
    section as the source sees it), without reading or scoring any text.

    Exact for every threshold and category change. Not for changes to a rule that rewrites
    the text (C4's line rules) or that change what a score measures (word lists, n-gram
    sizes, ``datatrove_compat``): those need the filter step again.
    """
    chain = build_chain(lang, settings[lang])
    missing = set(chain.score_names()) - set(pq.ParquetFile(scores_path).schema_arrow.names)
    if missing:
        raise ValueError(
            f"{scores_path}: no scores for {sorted(missing)}: the chain measures something new; "
            "run the filter step again"
        )
    for row in iter_parquet(scores_path):
        yield row["id"], chain.select(row)
