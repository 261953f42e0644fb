"""Assemble the instruction set: decontaminate, deduplicate, split, mix; write train/val and stats.

Rule ``assemble_instruct``. In: every source's records (converted, and translated where
configured), the IE evaluation sets, the held-out bits-per-byte documents, the files under
``instruct.decontaminate.files``, and the tokenizer (to count tokens). Out:

- ``instruct/train.jsonl``, ``instruct/val.jsonl``: the records (``cama.instruct.records``),
  in source order (the trainer shuffles);
- ``instruct/rejected.jsonl``: every record left out, with ``reason`` and ``detail``:
  ``decontaminated`` (the evaluation data it overlaps), ``duplicate_exact`` and
  ``duplicate_near`` (the record kept in its place, with the Jaccard), ``mixture_dropped``;
- ``instruct/stats.json``: per source ``records_in = decontaminated + duplicate_exact +
  duplicate_near + mixture_dropped + val + train`` (checked), repeats added by the mixture,
  records, tokens and share per task × lang × source, what was translated.

The unit of every decision is the **unit**: one record, or for IE one sentence (all the label
batches of one ``ie.group``), so a sentence is never half in train and half in val, and
never half removed as a duplicate. A translated unit follows its original: out with it
(decontaminated, duplicate) and into val with it, so no translation of a validation record
is trained on; translations are decontaminated on their own text too.

1. **Scan** (streamed; memory ~30 bytes a record). Per unit: its decontamination text (the
   IE sentence, or every turn of the conversation) is looked up in the n-gram index of the
   evaluation data (``decontam.py``); a clean unit's dedup text (the IE sentence with its
   gold, or the conversation) goes to a Parquet file per (source, language).
2. **Dedup**: ``cama.clean.dedup.dedup_corpus`` over those files, with the ``dedup``
   section's MinHash settings: exact duplicates (normalised text), then near duplicates
   verified by their shingle Jaccard (≥ ``dedup.minhash.min_jaccard``); the first source
   in config order keeps a tie (``keep: first``).
3. **Split**: ``val_records`` records for validation, stratified by task (each task's share of
   the surviving records, largest remainders; at least one unit per task when there is room),
   the units of a task taken in the order of a hash of (seed, unit).
4. **Mixture** (train only): each source's records are multiplied by its ``weight``; with
   ``instruct.mixture``, the cells it names (a cell takes the first key given of ``task.lang``,
   ``task``, ``ie.lang``, ``ie``; a key shared by several cells is split by their sizes) share
   their records by those weights, and the other cells keep theirs. A cell under its target
   is sampled (``mixture_dropped``), over it repeated (copies get ``#r<k>`` ids), by a hash
   of (seed, id).
5. **Write** train, val, rejected; stats.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from cama.instruct.decontam import NgramIndex, file_texts
from cama.instruct.records import IE_TASKS, LANGS, TASKS, JsonlSink, iter_jsonl, record_text
from cama.io import DOC_SCHEMA, ParquetSink, write_json
from cama.logs import progress

log = logging.getLogger(__name__)

KEEP, DECONTAMINATED, EXACT, NEAR = 0, 1, 2, 3
REASONS = {DECONTAMINATED: "decontaminated", EXACT: "duplicate_exact", NEAR: "duplicate_near"}
BATCH = 1024


def cells() -> list[str]:
    return [f"{t}.{lang}" for t in TASKS for lang in LANGS]


def unit_hash(seed: int, key: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest(), "little"
    )


# ----------------------------------------------------------------------------- evaluation data


def build_index(eval_sets: dict, heldout: dict, files: list, settings: dict) -> NgramIndex:
    ngrams = settings["ngrams"]
    index = NgramIndex(word_n=ngrams["en"], char_n=ngrams["zh"])
    for name, path in eval_sets.items():
        index.add(
            (
                (r["ie"]["text"] if "ie" in r else record_text(r), r["lang"])
                for r in iter_jsonl(path)
            ),
            f"eval:{name}",
        )
    for lang, path in heldout.items():
        index.add(((r["text"], r.get("lang", lang)) for r in iter_jsonl(path)), f"heldout:{lang}")
    for path in files:
        index.add(file_texts(path), f"file:{Path(path).name}")
    index.freeze()
    log.info("decontamination index: %d texts, %s", index.texts, index.sizes())
    return index


# ----------------------------------------------------------------------------- scan


class _Scan:
    """Per record and per unit arrays, indexed by position in the input order."""

    def __init__(self):
        self.rec_source = array.array("h")
        self.rec_cell = array.array("h")
        self.rec_unit = array.array("q")
        self.rec_tokens = array.array("q")
        self.rec_hash = array.array("Q")
        self.unit_task = array.array("b")
        self.unit_source = array.array("h")
        self.unit_hash = array.array("Q")
        self.unit_state = array.array("b")
        self.unit_link = array.array("q")  # a translation's original unit, or -1
        self.detail: dict[int, str] = {}


def _dedup_text(records: list[dict]) -> str:
    first = records[0]
    if "ie" not in first:
        return record_text(first)
    gold = sorted(
        {
            json.dumps(g, ensure_ascii=False, sort_keys=True)
            for r in records
            for g in r["ie"]["gold"]
        }
    )
    return first["ie"]["text"] + "\n" + "\n".join(gold)


def _iter_units(path: Path) -> Iterator[list[dict]]:
    """Records grouped into units: an IE sentence's batches are consecutive in a source file."""
    unit: list[dict] = []
    key = None
    for r in iter_jsonl(path):
        k = r["ie"]["group"] if "ie" in r else r["id"]
        if unit and k != key:
            yield unit
            unit = []
        key = k
        unit.append(r)
    if unit:
        yield unit


def _scan(inputs, index, tokenizer, seed, tmp: Path) -> tuple[_Scan, dict, dict]:
    scan = _Scan()
    cell_of = {c: i for i, c in enumerate(cells())}
    sources = list(inputs)
    sinks: dict[str, ParquetSink] = {}
    langs: dict[str, str] = {}
    # units waiting for the index: (unit, lang, check text, dedup text, sink key), and their ids
    pending: list[tuple[int, str, str, str, str]] = []
    unit_key: dict[int, str] = {}

    def flush():
        by_lang = defaultdict(list)
        for item in pending:
            by_lang[item[1]].append(item)
        for lang, items in by_lang.items():
            hits = index.match([it[2] for it in items], lang)
            for (u, _, _, text, key), hit in zip(items, hits, strict=True):
                if hit is not None:
                    scan.unit_state[u] = DECONTAMINATED
                    scan.detail[u] = hit
                elif text is not None:  # None: a translation, which follows its original
                    if key not in sinks:
                        sinks[key] = ParquetSink(
                            tmp / f"{len(sinks)}.parquet", DOC_SCHEMA
                        ).__enter__()
                        langs[key] = lang
                    sinks[key].write(
                        {
                            "id": str(u),
                            "text": text,
                            "lang": lang,
                            "source": key,
                            "meta": unit_key[u],
                        }
                    )
        pending.clear()
        unit_key.clear()

    tok_buf: list[tuple[int, str]] = []

    def count_tokens():
        if tokenizer is not None and tok_buf:
            ids = tokenizer.sp.encode([t for _, t in tok_buf])
            for (i, _), x in zip(tok_buf, ids, strict=True):
                scan.rec_tokens[i] = len(x)
        tok_buf.clear()

    try:
        with progress(desc="assemble: scan", unit="record") as bar:
            for s, source in enumerate(sources):
                originals: dict[str, int] = {}  # a translated source's units, by key
                for f, path in enumerate(inputs[source]):
                    for unit in _iter_units(Path(path)):
                        u = len(scan.unit_task)
                        first = unit[0]
                        task, lang = first["task"], first["lang"]
                        key = first["ie"]["group"] if "ie" in first else first["id"]
                        if f > 0:  # a translation: "<id>@<lang>", or the same IE group
                            original = originals.get(
                                key if "ie" in first else key.rsplit("@", 1)[0], -1
                            )
                        else:
                            original = -1
                            if len(inputs[source]) > 1:
                                originals[key] = u
                        scan.unit_link.append(original)
                        scan.unit_task.append(TASKS.index(task))
                        scan.unit_source.append(s)
                        scan.unit_hash.append(unit_hash(seed, key))
                        scan.unit_state.append(KEEP)
                        for r in unit:
                            i = len(scan.rec_unit)
                            scan.rec_source.append(s)
                            scan.rec_cell.append(cell_of[f"{r['task']}.{r['lang']}"])
                            scan.rec_unit.append(u)
                            scan.rec_tokens.append(0)
                            scan.rec_hash.append(unit_hash(seed, r["id"]))
                            tok_buf.append((i, record_text(r)))
                        check = first["ie"]["text"] if "ie" in first else record_text(first)
                        dedup_text = _dedup_text(unit) if original < 0 else None
                        pending.append((u, lang, check, dedup_text, f"{source}.{lang}"))
                        unit_key[u] = key
                        if len(pending) >= BATCH:
                            flush()
                        if len(tok_buf) >= BATCH:
                            count_tokens()
                        bar.update(len(unit))
            flush()
            count_tokens()
    finally:
        for sink in sinks.values():
            sink.__exit__(None, None, None)
    files = {key: sink.path for key, sink in sinks.items()}
    return scan, files, langs


def _dedup(
    scan: _Scan, files: dict, langs: dict, dedup_settings: dict, switches: dict, tmp: Path
) -> dict:
    """Mark exact and near duplicate units with cama.clean.dedup; return its stats.

    ``dedup_settings`` is the corpus ``dedup`` section (MinHash parameters); ``switches`` is
    ``instruct.dedup`` (exact, near).
    """
    from cama.clean.dedup import dedup_corpus

    if not files or not (switches["exact"] or switches["near"]):
        return {}
    settings = {**dedup_settings, "keep": "first", "exact": switches["exact"]}
    settings["minhash"] = {**settings.get("minhash", {}), "enabled": switches["near"]}
    outputs = {key: tmp / f"kept-{i}.parquet" for i, key in enumerate(files)}
    stats = dedup_corpus(
        inputs=files,
        outputs=outputs,
        langs={k: ("zh" if v == "zh" else "en") for k, v in langs.items()},
        out_clusters=tmp / "clusters.parquet",
        out_stats=tmp / "dedup.json",
        settings=settings,
    )
    clusters = pq.read_table(tmp / "clusters.parquet").to_pylist()
    kept_of = {c["cluster_id"]: c["id"] for c in clusters if c["kept"]}
    # the id (or IE group) of each kept unit that stands for removed ones, for the detail
    centres, names = set(kept_of.values()), {}
    for path in outputs.values():
        for row in pq.read_table(path, columns=["id", "meta"]).to_pylist():
            if row["id"] in centres:
                names[row["id"]] = row["meta"]
    for c in clusters:
        if not c["kept"]:
            u = int(c["id"])
            scan.unit_state[u] = EXACT if c["kind"] == "exact" else NEAR
            detail = f"duplicate of {names.get(kept_of.get(c['cluster_id']), '?')}"
            if c["jaccard"] is not None:
                detail += f", jaccard {c['jaccard']:.3f}"
            scan.detail[u] = detail
    return stats


# ----------------------------------------------------------------------------- split and mixture


def val_quota(counts: dict[str, int], total: int) -> dict[str, int]:
    """Records of validation per task: proportional, largest remainders, ≥ 1 per task if room."""
    n = sum(counts.values())
    if n == 0 or total <= 0:
        return {t: 0 for t in counts}
    total = min(total, n)
    exact = {t: total * c / n for t, c in counts.items()}
    quota = {t: int(math.floor(x)) for t, x in exact.items()}
    for t in sorted(exact, key=lambda t: quota[t] - exact[t])[: total - sum(quota.values())]:
        quota[t] += 1
    if total >= len([c for c in counts.values() if c]):
        for t in counts:
            if counts[t] and not quota[t]:
                donor = max(quota, key=quota.get)
                quota[donor] -= 1
                quota[t] = 1
    return quota


def _split(
    scan: _Scan, units_alive: np.ndarray, unit_records: np.ndarray, total: int
) -> tuple[np.ndarray, dict]:
    """Boolean per unit: in validation."""
    task = np.frombuffer(scan.unit_task, dtype=np.int8)
    h = np.frombuffer(scan.unit_hash, dtype=np.uint64)
    counts = {
        TASKS[t]: int(unit_records[units_alive & (task == t)].sum()) for t in range(len(TASKS))
    }
    quota = val_quota(counts, total)
    val = np.zeros(len(task), dtype=bool)
    for t, name in enumerate(TASKS):
        cand = np.flatnonzero(units_alive & (task == t))
        cand = cand[np.argsort(h[cand], kind="stable")]
        taken = 0
        for u in cand.tolist():
            if taken >= quota[name]:
                break
            val[u] = True
            taken += int(unit_records[u])
    return val, quota


def mixture_targets(
    counts: dict[str, dict[str, int]], weights: dict[str, float], mixture: dict[str, float] | None
) -> dict[str, dict[str, float]]:
    """Target records per cell and source, from natural counts, source weights and the mixture.

    ``counts[cell][source]`` are train records; the result has the same shape.
    """
    weighted = {c: {s: n * weights.get(s, 1.0) for s, n in by.items()} for c, by in counts.items()}
    if not mixture:
        return weighted
    size = {c: sum(by.values()) for c, by in weighted.items()}

    def key_of(cell: str) -> str | None:
        task, lang = cell.split(".")
        group = "ie" if task in IE_TASKS else None
        for k in (f"{task}.{lang}", task, f"{group}.{lang}" if group else None, group):
            if k and k in mixture:
                return k
        return None

    covered = {c: key_of(c) for c in weighted if size[c] > 0}
    covered = {c: k for c, k in covered.items() if k is not None}
    pool = sum(size[c] for c in covered)
    key_size = Counter()
    for c, k in covered.items():
        key_size[k] += size[c]
    total_w = sum(mixture[k] for k in key_size)
    out = {}
    for c, by in weighted.items():
        if c not in covered or total_w == 0:
            out[c] = by
            continue
        k = covered[c]
        cell_target = pool * (mixture[k] / total_w) * (size[c] / key_size[k])
        out[c] = {s: cell_target * v / size[c] for s, v in by.items()}
    return out


def _copies(ids_hashes: np.ndarray, target: float) -> np.ndarray:
    """Copies per record (0, 1, 2, ...) so that they sum to round(target), by hash order."""
    n = len(ids_hashes)
    t = int(round(target))
    copies = np.full(n, t // n if n else 0, dtype=np.int64)
    rest = t - int(copies.sum())
    if rest > 0:
        copies[np.argsort(ids_hashes, kind="stable")[:rest]] += 1
    return copies


# ----------------------------------------------------------------------------- the stage


def assemble(
    inputs: dict[str, list[str | Path]],
    eval_sets: dict[str, str | Path],
    heldout: dict[str, str | Path],
    out_train: str | Path,
    out_val: str | Path,
    out_rejected: str | Path,
    out_stats: str | Path,
    settings: dict,
    dedup_settings: dict,
    tokenizer: str | Path | None = None,
    translation_stats: dict[str, str | Path] | None = None,
) -> dict:
    """Decontaminate, dedup, split and mix the sources' records; see the module docstring.

    ``inputs`` maps a source (in config order) to its record files; ``settings`` is the
    ``instruct`` config section (``seed``, ``sources``, ``decontaminate``, ``dedup``,
    ``mixture``, ``val_records``).
    """
    t0 = time.perf_counter()
    seed = settings["seed"]
    sources = list(inputs)
    deco = settings["decontaminate"]
    index = (
        build_index(eval_sets, heldout, deco["files"], deco)
        if deco["enabled"]
        else NgramIndex().freeze()
    )
    tok = None
    if tokenizer is not None:
        from cama.pack.tokenizer import Tokenizer

        tok = Tokenizer(tokenizer)
    tmp = Path(tempfile.mkdtemp(prefix="instruct-assemble-", dir=Path(out_stats).parent))
    try:
        scan, files, langs = _scan(inputs, index, tok, seed, tmp)
        dedup_stats = _dedup(scan, files, langs, dedup_settings, settings["dedup"], tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rec_unit = np.frombuffer(scan.rec_unit, dtype=np.int64)
    rec_source = np.frombuffer(scan.rec_source, dtype=np.int16)
    rec_cell = np.frombuffer(scan.rec_cell, dtype=np.int16)
    rec_tokens = np.frombuffer(scan.rec_tokens, dtype=np.int64)
    # a translation follows its original out (decontaminated or a duplicate), and into val
    link = np.frombuffer(scan.unit_link, dtype=np.int64)
    for u in np.flatnonzero(link >= 0).tolist():
        o = int(link[u])
        if scan.unit_state[u] == KEEP and scan.unit_state[o] != KEEP:
            scan.unit_state[u] = scan.unit_state[o]
            scan.detail[u] = f"translation of a record left out: {scan.detail.get(o, '')}"
    state = np.frombuffer(scan.unit_state, dtype=np.int8)
    unit_records = (
        np.bincount(rec_unit, minlength=len(state)) if len(rec_unit) else np.zeros(0, np.int64)
    )
    alive = (state == KEEP) & (link < 0)
    val_unit, quota = _split(scan, alive, unit_records, settings["val_records"])
    linked = np.flatnonzero((link >= 0) & (state == KEEP))
    val_unit[linked] = val_unit[link[linked]]
    rec_state = state[rec_unit] if len(rec_unit) else np.zeros(0, np.int8)
    rec_val = val_unit[rec_unit] if len(rec_unit) else np.zeros(0, bool)
    rec_train = (rec_state == KEEP) & ~rec_val

    # mixture over train records
    cell_names = cells()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for c in range(len(cell_names)):
        for s, src in enumerate(sources):
            n = int((rec_train & (rec_cell == c) & (rec_source == s)).sum())
            if n:
                counts[cell_names[c]][src] = n
    weights = {s: float(settings["sources"].get(s, {}).get("weight", 1.0)) for s in sources}
    targets = mixture_targets(counts, weights, settings.get("mixture"))
    copies = np.zeros(len(rec_unit), dtype=np.int64)
    rec_hash = np.frombuffer(scan.rec_hash, dtype=np.uint64)
    for cell, by in targets.items():
        c = cell_names.index(cell)
        for src, target in by.items():
            sel = np.flatnonzero(rec_train & (rec_cell == c) & (rec_source == sources.index(src)))
            copies[sel] = _copies(rec_hash[sel], target)

    # write
    per_source = {
        s: Counter(
            {
                k: 0
                for k in (
                    "records_in",
                    "decontaminated",
                    "duplicate_exact",
                    "duplicate_near",
                    "mixture_dropped",
                    "val",
                    "train",
                    "train_repeats",
                )
            }
        )
        for s in sources
    }
    table: dict[tuple[str, str, str], Counter] = defaultdict(Counter)
    deco_by_origin: Counter = Counter()
    i = 0
    with (
        JsonlSink(out_train) as train,
        JsonlSink(out_val) as val,
        JsonlSink(out_rejected) as rejected,
        progress(total=len(rec_unit), desc="assemble: write", unit="record") as bar,
    ):
        for source in sources:
            for path in inputs[source]:
                for r in iter_jsonl(path):
                    u = int(rec_unit[i])
                    st = per_source[source]
                    st["records_in"] += 1
                    if state[u] != KEEP:
                        reason = REASONS[int(state[u])]
                        st[reason] += 1
                        if state[u] == DECONTAMINATED:
                            deco_by_origin[scan.detail[u]] += 1
                        rejected.write({**r, "reason": reason, "detail": scan.detail.get(u, "")})
                    elif rec_val[i]:
                        st["val"] += 1
                        val.write(r)
                    elif copies[i] == 0:
                        st["mixture_dropped"] += 1
                        rejected.write(
                            {
                                **r,
                                "reason": "mixture_dropped",
                                "detail": f"cell {r['task']}.{r['lang']}",
                            }
                        )
                    else:
                        st["train"] += 1
                        st["train_repeats"] += int(copies[i]) - 1
                        cell = table[(r["task"], r["lang"], source)]
                        cell["records"] += int(copies[i])
                        cell["tokens"] += int(copies[i] * rec_tokens[i])
                        train.write(r)
                        for k in range(1, int(copies[i])):
                            train.write({**r, "id": f"{r['id']}#r{k}"})
                    i += 1
                    bar.update(1)

    for source, st in per_source.items():
        parts = (
            st["decontaminated"]
            + st["duplicate_exact"]
            + st["duplicate_near"]
            + st["mixture_dropped"]
            + st["val"]
            + st["train"]
        )
        if st["records_in"] != parts:
            raise RuntimeError(f"assemble: counts of {source} do not add up: {dict(st)}")
    total_train = sum(c["records"] for c in table.values())
    total_tokens = sum(c["tokens"] for c in table.values())
    rows = [
        {
            "task": t,
            "lang": lang,
            "source": src,
            "records": c["records"],
            "tokens": c["tokens"],
            "share": round(c["records"] / total_train, 4) if total_train else 0.0,
            "token_share": round(c["tokens"] / total_tokens, 4) if total_tokens else 0.0,
        }
        for (t, lang, src), c in sorted(
            table.items(), key=lambda kv: (TASKS.index(kv[0][0]), kv[0][1], kv[0][2])
        )
    ]
    by_cell: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        by_cell[f"{row['task']}.{row['lang']}"].update(
            {"records": row["records"], "tokens": row["tokens"]}
        )
    val_by_task = Counter()
    for r_task, n in zip(
        np.frombuffer(scan.unit_task, dtype=np.int8)[val_unit].tolist(),
        unit_records[val_unit].tolist(),
        strict=True,
    ):
        val_by_task[TASKS[r_task]] += n
    translation = {}
    for src, path in (translation_stats or {}).items():
        translation[src] = json.loads(Path(path).read_text())
    stats = {
        "train": {
            "records": train.count,
            "tokens": total_tokens,
            "unique_records": sum(st["train"] for st in per_source.values()),
        },
        "val": {"records": val.count, "by_task": dict(val_by_task), "quota": quota},
        "rejected": rejected.count,
        "table": rows,
        "cells": {c: dict(by_cell.get(c, {"records": 0, "tokens": 0})) for c in cell_names},
        "missing_cells": [c for c in cell_names if not by_cell.get(c, {}).get("records")],
        "sources": {s: dict(st) for s, st in per_source.items()},
        "decontamination": {
            "enabled": deco["enabled"],
            "index": {"texts": index.texts, **index.sizes(), "origins": index.origins},
            "records_by_origin": dict(deco_by_origin.most_common()),
        },
        "dedup": {
            k: dedup_stats[k]
            for k in (
                "docs_in",
                "kept",
                "exact_duplicates",
                "near_duplicates",
                "min_merged_jaccard",
            )
            if k in dedup_stats
        },
        "mixture": {
            "weights": settings.get("mixture"),
            "source_weights": weights,
            "targets": {c: {s: round(v, 2) for s, v in by.items()} for c, by in targets.items()},
        },
        "translation": translation,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(out_stats, stats)
    log.info(
        "assembled %d train (%d tokens), %d val, %d rejected in %.1f s; missing cells: %s",
        train.count,
        total_tokens,
        val.count,
        rejected.count,
        stats["seconds"],
        stats["missing_cells"],
    )
    return stats
