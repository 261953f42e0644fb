"""Instruction records: the format every file of the stage holds, and its checks.

One JSON object per line (``results/instruct/train.jsonl``, ``val.jsonl``, ``eval/{set}.jsonl``,
``sources/{name}.jsonl``)::

    {"id": "weibo_ner/0/17#b0", "task": "ner", "lang": "zh", "source": "weibo_ner",
     "messages": [{"role": "system", "content": "..."},      # optional
                  {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}],  # several turns allowed
     "meta": {...},
     "ie": {"text": "...", "labels": ["人名", "地名"], "format": "json",
            "gold": [["张三", "人名"]], "group": "weibo_ner/0/17"}}   # ner, re, ee only

- ``id``: ``<source>/<file index>/<record number>``, with ``#<k>`` when one input record makes
  several records (a self-instruct task's instances) and ``#b<k>`` for an IE label batch;
  translations add ``@<lang>``. Stable across runs.
- ``task`` ∈ general, cot, code, ner, re, ee; ``lang`` ∈ zh, en (of the conversation).
- ``messages``: an optional system turn, then user and assistant turns alternating, ending
  with an assistant turn. A single-turn record's user turn is ``cama.chat.user_content``.
- ``ie`` (see ``cama.instruct.ie``): the sentence, the labels asked, the output format, the
  gold of those labels, and the sentence's group id, so evaluation never re-parses a prompt.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cama.chat import user_content
from cama.io import atomic_path

TASKS = ("general", "cot", "code", "ner", "re", "ee")
IE_TASKS = ("ner", "re", "ee")
LANGS = ("zh", "en")
ROLES = ("system", "user", "assistant")
# {{name}}-style placeholders (LLaMA-Factory's identity set) and {name} left in a template.
PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")


def single_turn(
    instruction: str, input: str | None, output: str, system: str | None = None
) -> list[dict]:
    """The messages of an instruction/input/output record."""
    messages = [{"role": "system", "content": system.strip()}] if system and system.strip() else []
    messages.append({"role": "user", "content": user_content(instruction, input)})
    messages.append({"role": "assistant", "content": output.strip()})
    return messages


def fill_placeholders(messages: list[dict], values: dict[str, str]) -> list[dict]:
    """Replace ``{{name}}`` by ``values[name]`` in every turn (unknown names are left in place)."""
    if not values:
        return messages

    def sub(m: re.Match) -> str:
        key = m.group(0)[2:-2].strip()
        return str(values[key]) if key in values else m.group(0)

    return [{**m, "content": PLACEHOLDER.sub(sub, m["content"])} for m in messages]


def check_messages(messages: Any) -> str | None:
    """Why a conversation cannot be a record (a quarantine reason), or None."""
    if not isinstance(messages, list) or not messages:
        return "no_messages"
    for m in messages:
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            return "malformed_turn"
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    if not turns or [m["role"] for m in turns] != ["user", "assistant"] * (len(turns) // 2):
        return "bad_turn_order"
    if any(m["role"] == "system" for m in turns):
        return "bad_turn_order"
    for m in turns:
        if not m["content"].strip():
            return "empty_output" if m["role"] == "assistant" else "empty_instruction"
    if any(PLACEHOLDER.search(m["content"]) for m in messages):
        return "unfilled_placeholder"
    return None


def record_text(record: dict) -> str:
    """The text of a record for dedup and decontamination: every turn, in order."""
    return "\n".join(m["content"] for m in record["messages"])


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class JsonlSink:
    """Write records as JSON lines to a temporary name; rename onto ``path`` on a clean exit."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.count = 0

    def __enter__(self) -> JsonlSink:
        self._cm = atomic_path(self.path)
        self._tmp = self._cm.__enter__()
        self._f = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115
        return self

    def write(self, record: dict) -> None:
        self._f.write(dumps(record) + "\n")
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        self._f.close()
        self._cm.__exit__(exc_type, exc, tb)


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a JSONL file this stage wrote (a bad line here is a bug: it raises)."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number}: not a JSON record: {e}") from None


def write_jsonl(path: str | os.PathLike, records) -> int:
    with JsonlSink(path) as sink:
        for r in records:
            sink.write(r)
    return sink.count
