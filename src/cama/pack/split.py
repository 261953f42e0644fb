"""The held-out split: documents set aside per language before anything is tokenized.

Which documents are held out depends only on their ids and the seed: each id hashes to a
number u in [0, 1) (blake2b), and a language holds out its documents with the smallest u.
How many: those with u < ``fraction``, but at least ``min_docs`` and at most ``max_docs``,
and never more than half of the language's documents, so training keeps most of them.
Adding documents to a corpus therefore never moves an already held-out document back
into training unless the cap is what selected it.

The evaluation of bits-per-byte reads ``heldout/{lang}.jsonl``; the shard stage reads the
ids from the same files and never packs those documents.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
from pathlib import Path

from cama.config import LANGS  # zh, en, code: the schema's list
from cama.io import atomic_path, iter_parquet, write_json

log = logging.getLogger(__name__)


def id_hash(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) from the id and the seed; stable across runs and machines."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def how_many(n: int, below: int, min_docs: int, max_docs: int | None) -> int:
    """The held-out count for a language of ``n`` documents, ``below`` of which hash under the fraction."""
    k = max(below, min_docs)
    if max_docs is not None:
        k = min(k, max_docs)
    return min(k, n // 2)


def heldout_split(
    inputs: dict[str, str | os.PathLike],
    outputs: dict[str, str | os.PathLike],
    out_stats: str | os.PathLike,
    fraction: float = 0.01,
    min_docs: int = 20,
    max_docs: int | None = 2000,
    seed: int = 0,
) -> dict:
    """Write ``outputs[lang]`` (jsonl of DOC_SCHEMA rows) for each language; return stats.

    ``inputs`` maps a source name to its dedup Parquet file. Memory holds at most
    ``max(min_docs, max_docs)`` documents per language (a bounded heap), whatever the corpus size.
    """
    cap = max(min_docs, max_docs if max_docs is not None else 0)
    heaps: dict[str, list] = {lang: [] for lang in LANGS}  # max-heaps on u, as (-u, id, row)
    counts = {lang: {"docs": 0, "below_fraction": 0, "empty": 0} for lang in LANGS}
    unbounded: dict[str, list] = {lang: [] for lang in LANGS}  # when max_docs is None
    for path in inputs.values():
        for row in iter_parquet(path):
            lang = row["lang"]
            if lang not in counts:
                log.warning("%s: document %s has lang %r, not one of %s; not held out", path, row["id"], lang, LANGS)
                continue
            c = counts[lang]
            c["docs"] += 1
            if not row["text"] or not row["text"].strip():
                c["empty"] += 1
                continue
            u = id_hash(row["id"], seed)
            c["below_fraction"] += u < fraction
            if max_docs is None and u < fraction:
                unbounded[lang].append((u, row["id"], row))
                continue
            item = (-u, row["id"], row)
            heap = heaps[lang]
            if len(heap) < cap:
                heapq.heappush(heap, item)
            elif cap and item > heap[0]:
                heapq.heapreplace(heap, item)

    stats = {"fraction": fraction, "min_docs": min_docs, "max_docs": max_docs, "seed": seed, "langs": {}}
    for lang in LANGS:
        pool = sorted([(-nu, i, r) for nu, i, r in heaps[lang]] + unbounded[lang], key=lambda x: (x[0], x[1]))
        c = counts[lang]
        k = how_many(c["docs"] - c["empty"], c["below_fraction"], min_docs, max_docs)
        chosen = [r for _, _, r in pool[:k]]
        if lang in outputs:
            _write_jsonl(outputs[lang], chosen)
        stats["langs"][lang] = {
            **c,
            "heldout": len(chosen),
            "heldout_chars": sum(len(r["text"]) for r in chosen),
            "heldout_bytes": sum(len(r["text"].encode("utf-8")) for r in chosen),
        }
        log.info("held out %d of %d %s documents", len(chosen), c["docs"], lang)
    write_json(out_stats, stats)
    return stats


def _write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in ("id", "text", "lang", "source", "meta")}, ensure_ascii=False) + "\n")


def load_heldout_ids(paths: list[str | os.PathLike] | dict) -> set[str]:
    """The ids in held-out jsonl files, for the shard stage to skip."""
    files = paths.values() if isinstance(paths, dict) else paths
    ids: set[str] = set()
    for path in files:
        with open(Path(path), encoding="utf-8") as f:
            ids.update(json.loads(line)["id"] for line in f if line.strip())
    return ids
