"""EE: DuEE, FewFC and PHEE events, with their triggers and role-tagged arguments.

- ``duee``: ``{"text", "event_list": [{event_type, trigger, trigger_start_index,
  arguments: [{role, argument, argument_start_index}]}]}``; every offset is checked.
- ``fewfc``: ``{"content", "events": [{"type", "mentions": [{"word", "span": [start, end],
  "role"}]}]}``; the mention with role ``trigger`` is the trigger; spans are checked.
- ``phee``: ``{"context", "annotations": [{"events": [{event_type, Trigger: {text: [[..]],
  start: [[..]]}, Subject|Treatment|Effect: {text, start, <sub-argument>: {...}}}]}]}``;
  sub-arguments are roles of their own, named ``Treatment.Drug``; attributes that carry a
  ``value`` (Speculated, Negated, Severity) are not arguments. Each piece of a
  discontinuous argument is an argument of its role; a discontinuous trigger is its first piece.

A checked span that does not match the text at its offset is ``span_mismatch``; an event
without a trigger is ``missing_trigger``.
"""

from __future__ import annotations

from typing import Any

from cama.errors import RecordError
from cama.instruct.converters.base import Context, IEItem, check_offset, field_str


def duee(obj: Any, ctx: Context) -> list[IEItem]:
    text = field_str(obj, "text")
    events = []
    for ev in obj.get("event_list") or []:
        try:
            trigger, start = ev["trigger"], ev.get("trigger_start_index")
            if not isinstance(trigger, str) or not trigger.strip():
                raise RecordError("missing_trigger")
            if start is not None:
                check_offset(text, trigger, start, start + len(trigger))
            args = []
            for a in ev.get("arguments") or []:
                arg, a_start = a["argument"], a.get("argument_start_index")
                if a_start is not None:
                    check_offset(text, arg, a_start, a_start + len(arg))
                args.append([arg, a["role"]])
            events.append({"type": ev["event_type"], "trigger": trigger, "arguments": args})
        except (KeyError, TypeError):
            raise RecordError("malformed_event") from None
    return [IEItem(text, events, {"id": obj.get("id")})]


def fewfc(obj: Any, ctx: Context) -> list[IEItem]:
    text = field_str(obj, "content")
    events = []
    for ev in obj.get("events") or []:
        try:
            trigger, args = None, []
            for m in ev["mentions"]:
                check_offset(text, m["word"], m["span"][0], m["span"][1])
                if m["role"] == "trigger":
                    trigger = m["word"]
                else:
                    args.append([m["word"], m["role"]])
            if trigger is None:
                raise RecordError("missing_trigger")
            events.append({"type": ev["type"], "trigger": trigger, "arguments": args})
        except (KeyError, TypeError, IndexError):
            raise RecordError("malformed_event") from None
    return [IEItem(text, events, {"id": obj.get("id")})]


def _pieces(text: str, node: dict) -> list[str]:
    """The spans of a PHEE node: each piece of each (possibly discontinuous) mention, checked."""
    out = []
    for pieces, starts in zip(node.get("text") or [], node.get("start") or [], strict=True):
        for piece, start in zip(pieces, starts, strict=True):
            check_offset(text, piece, start, start + len(piece))
            out.append(piece)
    return out


def phee(obj: Any, ctx: Context) -> list[IEItem]:
    text = field_str(obj, "context")
    events = []
    try:
        annotations = obj.get("annotations") or [{}]
        for ev in annotations[0].get("events") or []:
            triggers = _pieces(text, ev.get("Trigger") or {})
            if not triggers:
                raise RecordError("missing_trigger")
            args = []
            for role, node in ev.items():
                if role == "Trigger" or not isinstance(node, dict) or "value" in node:
                    continue
                args += [[p, role] for p in _pieces(text, node)]
                for sub, sub_node in node.items():
                    if isinstance(sub_node, dict) and "value" not in sub_node:
                        args += [[p, f"{role}.{sub}"] for p in _pieces(text, sub_node)]
            # a discontinuous trigger is written as its first piece
            events.append({"type": ev["event_type"], "trigger": triggers[0], "arguments": args})
    except (KeyError, TypeError, ValueError):
        raise RecordError("malformed_event") from None
    return [IEItem(text, events, {"id": obj.get("id")})]
