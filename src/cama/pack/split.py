"""The held-out split: documents set aside per language before anything is tokenized.

Which documents are held out depends only on their ids and the seed: each id hashes to a
number u in [0, 1) (blake2b), and a language holds out its documents with the smallest u.
How many: those with u < ``fraction``, but at least ``min_docs`` and at most ``max_docs``,
and never more than half of the language's documents, so training keeps most of them.
Adding documents to a corpus therefore never moves an already held-out document back
into training unless the cap is what selected it.

The evaluation of bits-per-byte reads ``heldout/{lang}.jsonl``; the shard stage reads the
ids from the same files and never packs those documents.

Decontamination (``pack.heldout.decontaminate``). Dedup merges documents whose 5-shingle
Jaccard is at least 0.6; a held-out poem whose twin is in training under another title (Jaccard
0.57) stays, and 72 % of its 16-token windows were then seen in training: bits-per-byte on it
measures memory. So after the split each held-out document is compared with every training
document of its language by long n-grams (13 words for en and code, 20 characters for zh:
``cama.clean.minhash.shingle_hashes``, lower-cased, zh without whitespace). A held-out document
whose share of n-grams found in training is over ``max_overlap`` goes back into training, and
the next document in hash order is held out in its place (checked the same way, against
training and against the candidates that are not held out, since those are trained on too);
training is never cut. The choice: the held-out set is a sample whose only job is to be unseen,
so replacing a member costs nothing, while removing training documents would lose data and let
the size of the held-out set decide what is trained on. The stats count the candidates checked,
the documents moved and their overlaps, with the training document that shared most n-grams.
A document shorter than n units is one shingle of all its units, so it is found only by an equal
short document (exact duplicates are gone after dedup anyway).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from cama.io import atomic_path, iter_parquet, write_json

log = logging.getLogger(__name__)

LANGS = ("zh", "en", "code")


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
    decontaminate: dict | None = None,
) -> dict:
    """Write ``outputs[lang]`` (jsonl of DOC_SCHEMA rows) for each language; return stats.

    ``inputs`` maps a source name to its dedup Parquet file. ``decontaminate`` is the validated
    ``pack.heldout.decontaminate`` block (None or enabled false: no check). Memory holds at most
    ``max(min_docs, max_docs)`` documents per language (a bounded heap), times
    ``decontaminate.candidates`` when checking, whatever the corpus size.
    """
    check = decontaminate if decontaminate and decontaminate["enabled"] else None
    cap = max(min_docs, max_docs if max_docs is not None else 0) * (check["candidates"] if check else 1)
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

    stats = {"fraction": fraction, "min_docs": min_docs, "max_docs": max_docs, "seed": seed,
             "decontaminate": check, "langs": {}}  # fmt: skip
    for lang in LANGS:
        pool = sorted([(-nu, i, r) for nu, i, r in heaps[lang]] + unbounded[lang], key=lambda x: (x[0], x[1]))
        c = counts[lang]
        k = how_many(c["docs"] - c["empty"], c["below_fraction"], min_docs, max_docs)
        rows = [r for _, _, r in pool]
        if check and k:
            rows = rows[: k * check["candidates"]]
            chosen, contamination = decontaminated(rows, k, lang, inputs, check, seed)
        else:
            chosen, contamination = rows[:k], None
        if lang in outputs:
            _write_jsonl(outputs[lang], chosen)
        stats["langs"][lang] = {
            **c,
            "heldout": len(chosen),
            "heldout_chars": sum(len(r["text"]) for r in chosen),
            "heldout_bytes": sum(len(r["text"].encode("utf-8")) for r in chosen),
            **({"decontamination": contamination} if contamination else {}),
        }
        moved = f", {contamination['moved_to_training']} moved back to training" if contamination else ""
        log.info("held out %d of %d %s documents%s", len(chosen), c["docs"], lang, moved)
        if len(chosen) < k:
            log.warning("%s: only %d clean held-out documents of the %d wanted (%d checked); raise "
                        "pack.heldout.decontaminate.candidates", lang, len(chosen), k, len(rows))  # fmt: skip
    write_json(out_stats, stats)
    return stats


def decontaminated(
    candidates: list[dict], k: int, lang: str, inputs: dict, check: dict, seed: int
) -> tuple[list[dict], dict]:
    """The first ``k`` candidates (in hash order) whose n-gram overlap with training is at most
    ``check['max_overlap']``, and the stats of the check. Training is every document of ``lang``
    in ``inputs`` that is not a candidate, plus the candidates that are not held out."""
    from cama.clean.minhash import shingle_hashes

    spec = check["ngrams"][lang]
    unit, n, limit = spec["unit"], spec["n"], check["max_overlap"]
    texts = [r["text"] for r in candidates]
    hashes, offsets = shingle_hashes(texts, unit, n, seed)
    grams = [np.unique(hashes[offsets[i] : offsets[i + 1]]) for i in range(len(texts))]
    every = np.unique(np.concatenate(grams)) if grams else np.zeros(0, np.uint64)

    # training documents outside the candidates: which candidate n-grams they hold, and whose
    ids = {r["id"] for r in candidates}
    in_training = np.zeros(len(every), dtype=bool)
    first_doc: dict[int, str] = {}
    scanned = 0
    for path in inputs.values():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048, columns=["id", "text", "lang"]):
            rows = [r for r in batch.to_pylist() if r["lang"] == lang and r["id"] not in ids and r["text"]]
            if not rows:
                continue
            scanned += len(rows)
            h, off = shingle_hashes([r["text"] for r in rows], unit, n, seed)
            hit = np.isin(h, every)
            if not hit.any():
                continue
            pos = np.searchsorted(every, h[hit])
            in_training[pos] = True
            owner = np.searchsorted(off, np.flatnonzero(hit), side="right") - 1
            for p_, o in zip(pos.tolist(), owner.tolist(), strict=True):
                first_doc.setdefault(p_, rows[o]["id"])

    # n-grams shared between candidates: a candidate that is not held out is trained on
    where = [np.searchsorted(every, g) for g in grams]
    holders: dict[int, list[int]] = {}
    shared = np.zeros(len(every), dtype=np.int64)
    for g in where:
        shared[g] += 1
    for i, g in enumerate(where):
        for p_ in g[shared[g] > 1].tolist():
            holders.setdefault(p_, []).append(i)

    def overlap(i: int, held: set[int]) -> tuple[float, str | None]:
        g = where[i]
        if not len(g):
            return 0.0, None
        seen = in_training[g].copy()
        by = Counter(first_doc[p_] for p_ in g[seen].tolist())
        for j in np.flatnonzero((shared[g] > 1) & ~seen).tolist():
            others = [o for o in holders[int(g[j])] if o != i and o not in held]
            if others:
                seen[j] = True
                by[candidates[others[0]]["id"]] += 1
        top = by.most_common(1)[0][0] if by else None
        return float(seen.mean()), top

    held: set[int] = set()
    moved: dict[int, tuple[float, str | None]] = {}
    order = iter(range(len(candidates)))
    while True:
        for i in order:  # fill up to k from the next candidates in hash order
            if len(held) >= k:
                order = iter([i, *order])
                break
            held.add(i)
        bad = {}
        for i in sorted(held):
            share, top = overlap(i, held)
            if share > limit:
                bad[i] = (share, top)
        if not bad:
            break
        held -= set(bad)
        moved.update(bad)
    chosen = [candidates[i] for i in sorted(held)]
    return chosen, {
        "ngram": spec,
        "max_overlap": limit,
        "candidates": len(candidates),
        "training_docs_scanned": scanned,
        "moved_to_training": len(moved),
        "moved": [
            {"id": candidates[i]["id"], "overlap": round(share, 4), "with": top}
            for i, (share, top) in sorted(moved.items(), key=lambda kv: -kv[1][0])
        ],
    }


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
