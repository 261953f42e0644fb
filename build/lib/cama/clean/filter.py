"""The clean stage's filter step: one source's documents -> kept, rejected, stats.

Streams the docs Parquet in batches through the language's filter chain
(``cama.clean.filters``), masks PII in what is kept, and writes three files atomically:
the kept documents (DOC_SCHEMA), the rejected ones with their rule, measured value and
detail (REJECTED_SCHEMA), and the stats JSON. ``docs_in == kept + sum(rejected)`` always.
"""

from __future__ import annotations

import logging
import os
import time

from cama.clean.filters import PiiMasker, build_chain
from cama.io import DOC_SCHEMA, REJECTED_SCHEMA, ParquetSink, count_rows, iter_parquet, write_json
from cama.logs import progress

log = logging.getLogger(__name__)


def filter_source(
    docs_path: str | os.PathLike,
    out_kept: str | os.PathLike,
    out_rejected: str | os.PathLike,
    out_stats: str | os.PathLike,
    lang: str,
    settings: dict,
) -> dict:
    """Filter one source. ``settings`` is the validated ``config['filter']``; returns the stats."""
    chain = build_chain(lang, settings[lang])
    pii = PiiMasker(**settings.get("pii", {}))
    log.info(
        "filter %s (%s): %s", docs_path, lang, ", ".join(type(f).__name__ for f in chain.filters)
    )
    docs_in = bytes_in = bytes_kept = 0
    t0 = time.perf_counter()
    with (
        ParquetSink(out_kept, DOC_SCHEMA) as kept,
        ParquetSink(out_rejected, REJECTED_SCHEMA) as rejected,
    ):
        for row in progress(
            iter_parquet(docs_path), total=count_rows(docs_path), desc=f"filter {lang}", unit="doc"
        ):
            text = row["text"] or ""
            docs_in += 1
            bytes_in += len(text.encode("utf-8"))
            why, new_text = chain(text)
            if why is None:
                row["text"] = pii(new_text)
                bytes_kept += len(row["text"].encode("utf-8"))
                kept.write(row)
            else:
                rejected.write({**row, "rule": why.rule, "value": why.value, "detail": why.detail})
    seconds = time.perf_counter() - t0
    stats = {
        "lang": lang,
        "docs_in": docs_in,
        "kept": chain.kept,
        "rejected": dict(chain.rejected.most_common()),
        "bytes_in": bytes_in,
        "bytes_kept": bytes_kept,
        "pii_masked": {k: pii.counts[k] for k in ("email", "phone", "cn_id")},
        "seconds": round(seconds, 3),
        "mb_per_s": round(bytes_in / 1e6 / seconds, 3) if seconds > 0 else None,
    }
    assert_invariant(stats)
    write_json(out_stats, stats)
    log.info("kept %d of %d documents; rejected %s", stats["kept"], docs_in, stats["rejected"])
    return stats


def assert_invariant(stats: dict) -> None:
    if stats["docs_in"] != stats["kept"] + sum(stats["rejected"].values()):
        raise RuntimeError(f"filter stats do not add up: {stats}")
