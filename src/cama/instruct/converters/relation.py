"""RE: DuIE ``spo_list``, FewRel, DocRED-style documents, FinRE lines.

- ``duie``: ``{"text", "spo_list": [{predicate, subject, object, ...}]}``; DuIE 2.0's
  ``object: {"@value": ...}`` is read too. Subject and object must occur in the text.
- ``fewrel``: ``{relation id: [{tokens, h: [name, id, [[token positions]]], t: [...]}]}``;
  one sentence per instance, the tokens joined by spaces (whitespace-only tokens dropped),
  head and tail the tokens at their first positions. Relation ids are named through
  ``options.relation_names``, a file of the source (``{id: [name, description]}`` or
  ``{id: name}``: FewRel's ``pid2name.json``); an id the file does not name stays an id,
  which the source's ``label_names`` can name.
- ``docred``: a JSON array of ``{title, sents: [[tokens]], vertexSet: [[{name, pos, sent_id}]],
  labels: [{h, t, r}]}`` (DocRED, Re-DocRED): the document is one text, sentences joined by
  spaces; an entity is written as its first mention's tokens; relations are named as for
  FewRel.
- ``finre``: ``head<TAB>tail<TAB>relation<TAB>sentence`` per line (blank lines between);
  consecutive lines of one sentence are one sample; ``options.na_relation`` (``unknown``)
  marks a pair with no relation, which is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cama.corpus.readers import Quarantined
from cama.errors import RecordError
from cama.instruct.converters.base import (
    Context,
    IEItem,
    Raw,
    field_str,
    read_json_document,
    read_lines,
)


def _relation_name(ctx: Context, rid: str) -> str:
    names = ctx.aux.get("relation_names") or {}
    if rid not in names:
        return rid  # the id stays; label_names can name it
    name = names[rid]
    return name[0] if isinstance(name, list) else str(name)


def _value(v: Any) -> Any:
    return v.get("@value") if isinstance(v, dict) else v


def duie(obj: Any, ctx: Context) -> list[IEItem]:
    text = field_str(obj, "text")
    spo = obj.get("spo_list")
    if not isinstance(spo, list):
        raise RecordError("missing_spo_list")
    gold = []
    for t in spo:
        if not isinstance(t, dict):
            raise RecordError("malformed_spo")
        s, p, o = t.get("subject"), t.get("predicate"), _value(t.get("object"))
        if not all(isinstance(x, str) and x.strip() for x in (s, p, o)):
            raise RecordError("malformed_spo")
        gold.append([s.strip(), p.strip(), o.strip()])
    return [IEItem(text, gold)]


def _tokens_text(tokens: list) -> tuple[str, dict[int, tuple[int, int]]]:
    """Tokens joined by spaces, whitespace-only tokens dropped; token index -> (start, end)."""
    parts, spans, pos = [], {}, 0
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise RecordError("bad_tokens")
        if not tok.strip():
            continue
        if parts:
            pos += 1
        spans[i] = (pos, pos + len(tok))
        parts.append(tok)
        pos += len(tok)
    return " ".join(parts), spans


def _span(text: str, spans: dict, positions: list) -> str:
    idx = [p for p in positions if p in spans]
    if not idx:
        raise RecordError("bad_positions")
    return text[spans[min(idx)][0] : spans[max(idx)][1]]


def read_fewrel(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    """FewRel's object of relation id → instances: one Raw per instance, numbered in file order."""
    doc = read_json_document(path, file)
    number = 0
    for rid, instances in doc.items() if isinstance(doc, dict) else []:
        for inst in instances if isinstance(instances, list) else []:
            number += 1
            yield Raw(number, (rid, inst))


def fewrel(pair: tuple[str, Any], ctx: Context) -> list[IEItem]:
    rid, inst = pair
    try:
        text, spans = _tokens_text(inst["tokens"])
        head = _span(text, spans, inst["h"][2][0])
        tail = _span(text, spans, inst["t"][2][0])
    except (KeyError, IndexError, TypeError):
        raise RecordError("malformed_instance") from None
    return [IEItem(text, [[head, _relation_name(ctx, rid), tail]], {"relation_id": rid})]


def docred(doc: Any, ctx: Context) -> list[IEItem]:
    try:
        sent_text = [_tokens_text(s) for s in doc["sents"]]
        offsets, pos = [], 0
        for t, _ in sent_text:
            offsets.append(pos)
            pos += len(t) + 1
        text = " ".join(t for t, _ in sent_text)
        names = []
        for vertex in doc["vertexSet"]:
            m = vertex[0]
            s_text, s_spans = sent_text[m["sent_id"]]
            a, b = m["pos"]
            local = _span(s_text, s_spans, list(range(a, b)))
            names.append(local)
        gold = []
        for lab in doc["labels"]:
            gold.append([names[lab["h"]], _relation_name(ctx, lab["r"]), names[lab["t"]]])
    except (KeyError, IndexError, TypeError):
        raise RecordError("malformed_document") from None
    return [IEItem(text, gold, {"title": doc.get("title")})]


def read_finre(path: Path, file: str, options: dict) -> Iterator[Raw | Quarantined]:
    """FinRE lines, consecutive lines of one sentence grouped: Raw(first line, [fields...])."""
    group: list[list[str]] = []
    start = 0
    for item in read_lines(path, file, options):
        if isinstance(item, Quarantined):
            yield item
            continue
        fields = item.obj.rstrip("\n").split("\t")
        if len(fields) != 4:
            if group:
                yield Raw(start, group)
                group = []
            yield Quarantined(file, item.number, "malformed_line", item.raw, len(item.raw))
            continue
        if group and group[0][3] != fields[3]:
            yield Raw(start, group)
            group = []
        if not group:
            start = item.number
        group.append(fields)
    if group:
        yield Raw(start, group)


def finre(group: list[list[str]], ctx: Context) -> list[IEItem]:
    na = ctx.options.get("na_relation", "unknown")
    text = group[0][3]
    gold = [[h.strip(), r.strip(), t.strip()] for h, t, r, _ in group if r.strip() != na]
    return [IEItem(text, gold)]
