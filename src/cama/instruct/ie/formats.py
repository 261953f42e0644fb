"""Output formats: how an answer is written (``render``) and read back (``parse``).

The code that writes an answer is the code that parses it. Three formats, each with one
spelling of the empty result:

======  =========================================================  ==============================
format  NER / RE / EE answer                                       empty result
======  =========================================================  ==============================
json    IEPile-style object keyed by every asked label, in the     every label → ``[]``
        asked order: ``{"人名": ["张三"], "地名": []}``;
        RE ``{"rel": [{"subject": h, "object": t}]}``;
        EE ``{"type": [{"trigger": w, "arguments": {role: [a]}}]}``
tuple   the seed's tuples, one a line: ``(mention, type)``,        ``NAN``
        ``(head, relation, tail)``,
        ``(trigger, type, [(argument, role), ...])``
lines   ``label: span`` a line: ``type: mention``,                 ``NAN``
        ``relation: head | tail``,
        ``type: trigger | role: argument | ...``
======  =========================================================  ==============================

``parse`` is strict on spans (a span is what is written, with surrounding whitespace
stripped) and on labels (a label that was not asked is an error), and lenient on layout:
blank lines, spaces around separators, a ```` ``` ```` fence around the answer, and, for
json, single quotes (a Python literal). Anything else raises :class:`ParseError`, which
evaluation counts as a format error with no predictions.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from cama.errors import CamaError
from cama.instruct.ie.structures import TASKS, canonical_event, label_of

FORMATS = ("json", "tuple", "lines")
NAN = "NAN"


class ParseError(CamaError, ValueError):
    """A generation that is not a well-formed answer in its format."""


def _check(task: str, fmt: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown IE task {task!r} (one of {', '.join(TASKS)})")
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")


# ----------------------------------------------------------------------------- render


def render(task: str, fmt: str, gold: Sequence[Any], labels: Sequence[str]) -> str:
    """The answer text for canonical ``gold`` (see ``structures.canonical``) over ``labels``."""
    _check(task, fmt)
    if fmt == "json":
        return json.dumps(_to_json(task, gold, labels), ensure_ascii=False)
    if not gold:
        return NAN
    line = _TUPLE_LINE[task] if fmt == "tuple" else _LINES_LINE[task]
    return "\n".join(line(item) for item in gold)


def _to_json(task: str, gold: Sequence[Any], labels: Sequence[str]) -> dict:
    out: dict[str, list] = {label: [] for label in labels}
    for item in gold:
        label = label_of(task, item)
        if task == "ner":
            out[label].append(item[0])
        elif task == "re":
            out[label].append({"subject": item[0], "object": item[2]})
        else:
            args: dict[str, list[str]] = {}
            for arg, role in item["arguments"]:
                args.setdefault(role, []).append(arg)
            out[label].append({"trigger": item["trigger"], "arguments": args})
    return out


def _ee_tuple(e: dict) -> str:
    args = ", ".join(f"({a}, {r})" for a, r in e["arguments"])
    return f"({e['trigger']}, {e['type']}, [{args}])"


def _ee_lines(e: dict) -> str:
    return " | ".join([f"{e['type']}: {e['trigger']}", *(f"{r}: {a}" for a, r in e["arguments"])])


_TUPLE_LINE = {
    "ner": lambda it: f"({it[0]}, {it[1]})",
    "re": lambda it: f"({it[0]}, {it[1]}, {it[2]})",
    "ee": _ee_tuple,
}
_LINES_LINE = {
    "ner": lambda it: f"{it[1]}: {it[0]}",
    "re": lambda it: f"{it[1]}: {it[0]} | {it[2]}",
    "ee": _ee_lines,
}


# ----------------------------------------------------------------------------- parse


def parse(task: str, fmt: str, text: str, labels: Sequence[str]) -> list:
    """The gold structure an answer states, or ``ParseError`` saying what is wrong with it."""
    _check(task, fmt)
    if not isinstance(text, str):
        raise ParseError(f"not text: {type(text).__name__}")
    body = _strip_fence(text)
    if fmt == "json":
        return _from_json(task, _load_json(body), labels)
    lines = [ln.strip() for ln in body.split("\n") if ln.strip()]  # not splitlines: U+2028 is text
    if not lines:
        raise ParseError("empty answer")
    if any(ln.upper() == NAN for ln in lines):
        if len(lines) > 1:
            raise ParseError(f"{NAN} together with other lines")
        return []
    parse_line = _TUPLE_PARSE[task] if fmt == "tuple" else _LINES_PARSE[task]
    items = []
    for number, line in enumerate(lines, start=1):
        try:
            items.append(parse_line(line, labels))
        except ParseError as e:
            raise ParseError(f"line {number} {line[:80]!r}: {e}") from None
    return items


_FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*?)\n?```\s*$", re.S)


def _strip_fence(text: str) -> str:
    text = text.strip()
    m = _FENCE.match(text)
    return m.group(1).strip() if m else text


def _load_json(body: str) -> dict:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        try:  # single quotes, as a Python literal
            obj = ast.literal_eval(body)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ParseError(f"not JSON: {e.msg} at {e.pos}") from None
    if not isinstance(obj, dict):
        raise ParseError(f"a JSON object keyed by label was expected, not {type(obj).__name__}")
    return obj


def _span(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ParseError(f"{what} is not a string: {value!r}")
    value = value.strip()
    if not value:
        raise ParseError(f"empty {what}")
    return value


def _from_json(task: str, obj: dict, labels: Sequence[str]) -> list:
    unknown = [k for k in obj if k not in labels]
    if unknown:
        raise ParseError(f"label(s) not asked: {', '.join(map(repr, unknown))}")
    items: list = []
    for label in labels:  # the asked order, so the result is canonical
        values = obj.get(label, [])
        if not isinstance(values, list):
            raise ParseError(f"{label!r}: a list was expected, not {type(values).__name__}")
        for v in values:
            if task == "ner":
                items.append([_span(v, "mention"), label])
            elif task == "re":
                if not isinstance(v, dict) or set(v) != {"subject", "object"}:
                    raise ParseError(f"{label!r}: each relation is {{subject, object}}, not {v!r}")
                items.append([_span(v["subject"], "subject"), label, _span(v["object"], "object")])
            else:
                items.append(_event_from_json(label, v))
    return items


def _event_from_json(label: str, v: Any) -> dict:
    if not isinstance(v, dict) or "trigger" not in v or not set(v) <= {"trigger", "arguments"}:
        raise ParseError(f"{label!r}: each event is {{trigger, arguments}}, not {v!r}")
    args_in = v.get("arguments", {})
    if not isinstance(args_in, dict):
        raise ParseError(f"{label!r}: arguments is an object of role -> list, not {args_in!r}")
    args = []
    for role, values in args_in.items():
        role = _span(role, "role")
        for a in (
            [values] if isinstance(values, str) else values if isinstance(values, list) else [None]
        ):
            args.append([_span(a, f"argument of {role!r}"), role])
    return canonical_event(
        {"type": label, "trigger": _span(v["trigger"], "trigger"), "arguments": args}
    )


def _inner(line: str) -> str:
    if not (line.startswith("(") and line.endswith(")")):
        raise ParseError("a tuple in parentheses was expected")
    return line[1:-1]


def _label(value: str, labels: Sequence[str]) -> str:
    value = value.strip()
    if value not in labels:
        raise ParseError(f"label not asked: {value!r}")
    return value


def _ner_tuple(line: str, labels: Sequence[str]) -> list:
    mention, comma, label = _inner(line).rpartition(",")
    if not comma:
        raise ParseError("(mention, type) was expected")
    return [_span(mention, "mention"), _label(label, labels)]


def _split_on_label(inner: str, labels: Sequence[str], tail: str = "") -> tuple[str, str, str]:
    """Split ``a, LABEL, b`` at the leftmost asked label between commas (``tail`` follows it)."""
    best = None
    for label in labels:
        for m in re.finditer(rf",\s*{re.escape(label)}\s*,{tail}", inner):
            if best is None or m.start() < best[0].start():
                best = (m, label)
    if best is None:
        raise ParseError("no asked label between commas")
    m, label = best
    return inner[: m.start()], label, inner[m.end() :]


def _re_tuple(line: str, labels: Sequence[str]) -> list:
    head, label, tail = _split_on_label(_inner(line), labels)
    return [_span(head, "head"), label, _span(tail, "tail")]


def _ee_tuple_parse(line: str, labels: Sequence[str]) -> dict:
    trigger, label, rest = _split_on_label(_inner(line), labels, tail=r"\s*\[")
    rest = rest.rstrip()
    if not rest.endswith("]"):
        raise ParseError("the argument list [...] is not closed")
    body = rest[:-1].strip()
    args = []
    if body:
        if not (body.startswith("(") and body.endswith(")")):
            raise ParseError("arguments are (argument, role) pairs")
        for pair in re.split(r"\)\s*,\s*\(", body[1:-1]):
            arg, comma, role = pair.rpartition(",")
            if not comma:
                raise ParseError(f"(argument, role) was expected, not ({pair})")
            args.append([_span(arg, "argument"), _span(role, "role")])
    return canonical_event({"type": label, "trigger": _span(trigger, "trigger"), "arguments": args})


def _lines_head(line: str, labels: Sequence[str]) -> tuple[str, str]:
    """``label: rest`` with the longest asked label that the line starts with."""
    for label in sorted(labels, key=len, reverse=True):
        if line.startswith(label) and line[len(label) :].lstrip().startswith(":"):
            return label, line[len(label) :].lstrip()[1:]
    raise ParseError("'label: ...' with an asked label was expected")


def _ner_lines(line: str, labels: Sequence[str]) -> list:
    label, rest = _lines_head(line, labels)
    return [_span(rest, "mention"), label]


def _re_lines(line: str, labels: Sequence[str]) -> list:
    label, rest = _lines_head(line, labels)
    parts = rest.split("|")
    if len(parts) != 2:
        raise ParseError("'relation: head | tail' was expected")
    return [_span(parts[0], "head"), label, _span(parts[1], "tail")]


def _ee_lines_parse(line: str, labels: Sequence[str]) -> dict:
    label, rest = _lines_head(line, labels)
    parts = rest.split("|")
    args = []
    for part in parts[1:]:
        role, colon, arg = part.partition(":")
        if not colon:
            raise ParseError(f"'role: argument' was expected, not {part.strip()!r}")
        args.append([_span(arg, "argument"), _span(role, "role")])
    return canonical_event(
        {"type": label, "trigger": _span(parts[0], "trigger"), "arguments": args}
    )


_TUPLE_PARSE = {"ner": _ner_tuple, "re": _re_tuple, "ee": _ee_tuple_parse}
_LINES_PARSE = {"ner": _ner_lines, "re": _re_lines, "ee": _ee_lines_parse}
