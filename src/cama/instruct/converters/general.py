"""General instructions: alpaca, sharegpt-style conversations, self-instruct seed tasks.

=============  =================================================================  =============
format         a record                                                           records
=============  =================================================================  =============
alpaca         ``{instruction, input, output, system?, history?}`` (JSON array    one
               or JSONL); ``history`` is ``[[user, assistant], ...]`` of earlier
               turns. ``options.fields`` renames the keys (e.g. query/response).
sharegpt       ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``  one
               or ``{"messages": [{"role", "content"}]}``: several turns
self_instruct  ``{instruction, instances: [{input, output}]}`` (Wang et al.        one per
               2023's seed tasks)                                                 instance
=============  =================================================================  =============
"""

from __future__ import annotations

from typing import Any

from cama.errors import RecordError
from cama.instruct.converters.base import Context, Conv, field_str
from cama.instruct.records import single_turn

ALPACA_FIELDS = {
    "instruction": "instruction",
    "input": "input",
    "output": "output",
    "system": "system",
    "history": "history",
}
SPEAKERS = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "system": "system",
}


def alpaca(obj: Any, ctx: Context) -> list[Conv]:
    f = {**ALPACA_FIELDS, **ctx.options.get("fields", {})}
    instruction = field_str(obj, f["instruction"])
    output = field_str(obj, f["output"])
    messages = single_turn(
        instruction, field_str(obj, f["input"], False), output, field_str(obj, f["system"], False)
    )
    history = obj.get(f["history"]) or []
    if not isinstance(history, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in history
    ):
        raise RecordError("bad_history")
    earlier = [
        {"role": role, "content": text.strip()}
        for q, a in history
        for role, text in (("user", q), ("assistant", a))
    ]
    at = 1 if messages[0]["role"] == "system" else 0
    return [Conv(messages[:at] + earlier + messages[at:])]


def sharegpt(obj: Any, ctx: Context) -> list[Conv]:
    if not isinstance(obj, dict):
        raise RecordError("not_an_object")
    if isinstance(obj.get("messages"), list):
        turns = [(m.get("role"), m.get("content")) for m in obj["messages"] if isinstance(m, dict)]
    elif isinstance(obj.get("conversations"), list):
        turns = [
            (m.get("from"), m.get("value")) for m in obj["conversations"] if isinstance(m, dict)
        ]
    else:
        raise RecordError("missing_conversations")
    messages = []
    for speaker, text in turns:
        role = SPEAKERS.get(str(speaker).lower())
        if role is None or not isinstance(text, str):
            raise RecordError("malformed_turn")
        messages.append({"role": role, "content": text.strip()})
    system = obj.get("system")
    if (
        isinstance(system, str)
        and system.strip()
        and not (messages and messages[0]["role"] == "system")
    ):
        messages.insert(0, {"role": "system", "content": system.strip()})
    return [Conv(messages)]


def self_instruct(obj: Any, ctx: Context) -> list[Conv]:
    instruction = field_str(obj, "instruction")
    instances = obj.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RecordError("missing_instances")
    out = []
    for inst in instances:
        if not isinstance(inst, dict):
            raise RecordError("malformed_instance")
        out.append(
            Conv(
                single_turn(
                    instruction, field_str(inst, "input", False), field_str(inst, "output")
                ),
                {"name": obj.get("name"), "is_classification": obj.get("is_classification")},
            )
        )
    return out
