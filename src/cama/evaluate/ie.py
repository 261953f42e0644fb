"""IE evaluation: generate answers to the IE evaluation sets, parse them, score micro P/R/F1.

The scheme is IEPile's (ANCHORS, evaluation):

- tuples, matched exactly, as multisets (a duplicated prediction is a second prediction):
  NER ``(mention, type)``; RE ``(head, relation, tail)``; EE triggers ``(type, trigger)`` and
  EE arguments ``(type, argument, role)``, scored separately;
- the answers of a sentence's label batches are merged (``ie.group``) before matching;
- an answer that does not parse (``cama.instruct.ie.parse`` raises ``ParseError``) contributes
  no predictions, so every gold tuple of its batch is a miss, and it is counted as a format
  error, never skipped;
- micro P = tp / predicted, R = tp / gold, F1 = 2PR / (P + R) (0 when undefined), reported per
  dataset, per task and per language, with the gold and predicted counts beside them, so that
  a score over 12 gold tuples reads as what it is.

Generation and scoring are separate steps: ``generate_answers`` (the ``eval_ie_generate``
rule, one model) writes the raw generations; ``score_models`` (``eval_ie``) parses and scores
them all, so a parser change never needs a GPU.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from cama.errors import CamaError
from cama.io import atomic_path, read_jsonl, write_json

log = logging.getLogger(__name__)

KINDS = {"ner": ("ner",), "re": ("re",), "ee": ("ee_trigger", "ee_argument")}
"""The tuple kinds scored for each task."""


# ----------------------------------------------------------------------------- reading


def read_eval_set(path: str | os.PathLike) -> list[dict]:
    """The records of an IE evaluation set (``results/instruct/eval/{set}.jsonl``).

    Each line is an instruction record with an ``ie`` block (text, labels, format, gold,
    group) and messages ending with the assistant's reference answer. Anything else raises
    an error naming the file and line.
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        raise CamaError(f"{path}: an IE evaluation set is a .jsonl file of instruction records")
    records = []
    for n, r in read_jsonl(path):
        ie = r.get("ie") if isinstance(r, dict) else None
        if not isinstance(ie, dict) or r.get("task") not in KINDS:
            raise CamaError(f"{path}:{n}: not an IE record (needs task ner|re|ee and an 'ie' block)")
        missing = [k for k in ("labels", "format", "gold", "group") if k not in ie]
        if missing or not isinstance(r.get("messages"), list) or not r["messages"]:
            raise CamaError(f"{path}:{n}: IE record without {', '.join(missing) or 'messages'}")
        records.append(r)
    if not records:
        raise CamaError(f"{path}: no records")
    return records


def first_sentences(records: list[dict], n: int | None) -> list[dict]:
    """The records of the first ``n`` sentences (all their label batches); all when n is None."""
    if n is None:
        return records
    keep: set[str] = set()
    for r in records:
        if len(keep) < n:
            keep.add(r["ie"]["group"])
    return [r for r in records if r["ie"]["group"] in keep]


def prompt_of(record: dict) -> list[dict]:
    """The conversation to answer: the record's messages without the reference answer."""
    messages = record["messages"]
    return messages[:-1] if messages[-1]["role"] == "assistant" else messages


# ----------------------------------------------------------------------------- scoring


def tuples(task: str, items: Iterable) -> dict[str, Counter]:
    """The scored tuples of a gold or predicted structure, per kind, as multisets."""
    out = {kind: Counter() for kind in KINDS[task]}
    for it in items:
        if task == "ner":
            out["ner"][(it[0], it[1])] += 1
        elif task == "re":
            out["re"][(it[0], it[1], it[2])] += 1
        else:
            out["ee_trigger"][(it["type"], it["trigger"])] += 1
            for arg, role in it["arguments"]:
                out["ee_argument"][(it["type"], arg, role)] += 1
    return out


def prf(tp: int, pred: int, gold: int) -> dict:
    p = tp / pred if pred else 0.0
    r = tp / gold if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "pred": pred, "gold": gold, "p": round(p, 4), "r": round(r, 4), "f1": round(f1, 4)}


def score_set(records: list[dict], answers: dict[str, str]) -> dict:
    """Score one evaluation set: ``answers`` maps a record id to the model's generation.

    A record without an answer is an error (the run is incomplete), not a miss.
    """
    from cama.instruct.ie import ParseError, parse

    counts: dict[str, Counter] = {}
    gold_by: dict[str, dict[str, Counter]] = {}
    pred_by: dict[str, dict[str, Counter]] = {}
    errors, examples = 0, []
    for r in records:
        task, ie = r["task"], r["ie"]
        if r["id"] not in answers:
            raise CamaError(f"no generation for record {r['id']!r}")
        group = ie["group"]
        gold = tuples(task, ie["gold"])
        try:
            pred = tuples(task, parse(task, ie["format"], answers[r["id"]], ie["labels"]))
        except ParseError as e:
            errors += 1
            pred = tuples(task, [])
            if len(examples) < 5:
                examples.append({"id": r["id"], "format": ie["format"], "error": str(e)[:200],
                                 "generation": answers[r["id"]][:300]})  # fmt: skip
        for kind in gold:  # merge the batches of a sentence
            gold_by.setdefault(group, {}).setdefault(kind, Counter()).update(gold[kind])
            pred_by.setdefault(group, {}).setdefault(kind, Counter()).update(pred[kind])
    for group, kinds in gold_by.items():
        for kind, g in kinds.items():
            p = pred_by[group][kind]
            c = counts.setdefault(kind, Counter())
            c["tp"] += sum((g & p).values())
            c["pred"] += sum(p.values())
            c["gold"] += sum(g.values())
    return {
        "scores": {kind: prf(c["tp"], c["pred"], c["gold"]) for kind, c in counts.items()},
        "records": len(records),
        "sentences": len(gold_by),
        "format_errors": errors,
        "format_error_rate": round(errors / len(records), 4) if records else 0.0,
        "format_error_examples": examples,
    }


def _sum(results: list[dict]) -> dict:
    """Micro scores over several sets' results (their counts added)."""
    counts: dict[str, Counter] = {}
    records = errors = 0
    for res in results:
        records += res["records"]
        errors += res["format_errors"]
        for kind, s in res["scores"].items():
            counts.setdefault(kind, Counter()).update({k: s[k] for k in ("tp", "pred", "gold")})
    out = {"scores": {k: prf(c["tp"], c["pred"], c["gold"]) for k, c in counts.items()},
           "records": records, "format_errors": errors,
           "format_error_rate": round(errors / records, 4) if records else 0.0}  # fmt: skip
    all_c = sum(counts.values(), Counter())
    out["all_tuples"] = prf(all_c["tp"], all_c["pred"], all_c["gold"])
    return out


def score_model(sets: dict[str, list[dict]], generations: list[dict]) -> dict:
    """One model's scores: per set, per task, per language, overall; finish reasons counted."""
    answers = {(g["set"], g["id"]): g for g in generations}
    per_set = {}
    for name, records in sets.items():
        missing = [r["id"] for r in records if (name, r["id"]) not in answers]
        if missing:
            raise CamaError(f"set {name}: no generation for {len(missing)} records (first: {missing[0]!r})")
        res = score_set(records, {r["id"]: answers[(name, r["id"])]["text"] for r in records})
        finish = Counter(answers[(name, r["id"])]["finish_reason"] for r in records)
        res.update(task=records[0]["task"], lang=records[0]["lang"], finish=dict(finish),
                   trimmed=sum(answers[(name, r["id"])].get("repetition_trimmed", False) for r in records))  # fmt: skip
        per_set[name] = res
    by_task = {t: _sum([r for r in per_set.values() if r["task"] == t]) for t in sorted({r["task"] for r in per_set.values()})}
    by_lang = {lang: _sum([r for r in per_set.values() if r["lang"] == lang])
               for lang in sorted({r["lang"] for r in per_set.values()})}  # fmt: skip
    overall = _sum(list(per_set.values()))
    overall["finish"] = dict(sum((Counter(r["finish"]) for r in per_set.values()), Counter()))
    return {"overall": overall, "by_task": by_task, "by_lang": by_lang, "by_set": per_set}


# ----------------------------------------------------------------------------- the rules


def generate_answers(
    *,
    model: str | os.PathLike,
    adapter: str | os.PathLike | None,
    sets: dict[str, str | os.PathLike],
    out_jsonl: str | os.PathLike,
    generation: dict | None = None,
    max_sentences: int | None = None,
    engine_settings: dict | None = None,
) -> dict:
    """The ``eval_ie_generate`` rule: one model's answers to every record of every set.

    All sets go through the engine in one call (one continuous batch). Writes one line per
    record: set, id, text, finish_reason, token counts. Returns counts for the log.
    """
    from cama.generate import Engine, resolve

    settings = resolve(generation or {})
    records = {name: first_sentences(read_eval_set(path), max_sentences) for name, path in sets.items()}
    flat = [(name, r) for name, rs in records.items() for r in rs]
    if not flat:
        raise CamaError(f"no IE evaluation records in {', '.join(map(str, sets.values())) or 'no sets'}")
    engine = Engine.load(model, adapter, **{k: v for k, v in (engine_settings or {}).items() if v is not None})
    log.info("IE generation: %d records from %d sets with %s%s (%s)", len(flat), len(sets), model,
             f" + {adapter}" if adapter else "", settings)  # fmt: skip
    gens = engine.generate([prompt_of(r) for _, r in flat], settings)
    with atomic_path(out_jsonl) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for (name, r), g in zip(flat, gens, strict=True):
            f.write(json.dumps({"set": name, "id": r["id"], "group": r["ie"]["group"], "text": g.text,
                                "finish_reason": g.finish_reason, "prompt_tokens": g.prompt_tokens,
                                "completion_tokens": g.completion_tokens,
                                "repetition_trimmed": g.repetition_trimmed}, ensure_ascii=False) + "\n")  # fmt: skip
    finish = Counter(g.finish_reason for g in gens)
    log.info("IE generation done: %s; engine %s", dict(finish), dict(engine.stats))
    return {"records": len(flat), "finish": dict(finish)}


def read_generations(path: str | os.PathLike) -> list[dict]:
    return [g for _, g in read_jsonl(path)]


def score_models(
    *,
    sets: dict[str, str | os.PathLike],
    generations: dict[str, str | os.PathLike],
    out_json: str | os.PathLike,
    max_sentences: int | None = None,
    paths: dict[str, dict] | None = None,
    generation: dict | None = None,
) -> dict:
    """The ``eval_ie`` rule: parse and score every model's generations -> ``eval/ie.json``."""
    records = {name: first_sentences(read_eval_set(path), max_sentences) for name, path in sets.items()}
    out = {
        "scheme": "micro P/R/F1 over exact tuples as multisets, batches merged per sentence; "
        "an unparseable answer = no predictions + one format error",
        "sets": {name: {"task": rs[0]["task"], "lang": rs[0]["lang"], "records": len(rs),
                        "sentences": len({r["ie"]["group"] for r in rs}),
                        "gold": {k: s["gold"] for k, s in score_set(rs, {r["id"]: "" for r in rs})["scores"].items()}}
                 for name, rs in records.items()},  # fmt: skip
        "generation": generation or {},
        "models": {},
        "paths": paths or {},
    }
    for name, path in generations.items():
        out["models"][name] = score_model(records, read_generations(path))
        o = out["models"][name]["overall"]
        log.info("%s: F1 over all tuples %.4f (%d gold), format errors %d/%d", name, o["all_tuples"]["f1"],
                 o["all_tuples"]["gold"], o["format_errors"], o["records"])  # fmt: skip
    write_json(out_json, out)
    return out


# ----------------------------------------------------------------------------- tables


def ie_table(result: dict) -> str:
    """A Markdown table: F1 (P/R) per model and set, format-error rates, gold counts."""
    models = list(result["models"])
    lines = ["| set | task | lang | kind | gold | " + " | ".join(models) + " |",
             "|---" * (5 + len(models)) + "|"]  # fmt: skip
    for name, meta in result["sets"].items():
        for kind, gold in meta["gold"].items():
            cells = []
            for m in models:
                s = result["models"][m]["by_set"][name]["scores"][kind]
                cells.append(f"{100 * s['f1']:.1f} ({100 * s['p']:.0f}/{100 * s['r']:.0f})")
            lines.append(f"| {name} | {meta['task']} | {meta['lang']} | {kind} | {gold} | " + " | ".join(cells) + " |")
    cells = [f"{100 * result['models'][m]['overall']['all_tuples']['f1']:.1f}" for m in models]
    lines.append("| **all** | | | all tuples | | " + " | ".join(cells) + " |")
    cells = [f"{result['models'][m]['overall']['format_errors']}/{result['models'][m]['overall']['records']} "
             f"({100 * result['models'][m]['overall']['format_error_rate']:.0f}%)" for m in models]  # fmt: skip
    lines.append("| **format errors** | | | records | | " + " | ".join(cells) + " |")
    cells = [str(result["models"][m]["overall"]["finish"].get("length", 0)) for m in models]
    lines.append("| **cut at length** | | | records | | " + " | ".join(cells) + " |")
    return "\n".join(lines)
