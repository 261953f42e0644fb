"""A conversation with one model: its turns, its system prompt and its decoding settings.

``cama chat`` is a loop around a ``Session``; ``cama web``'s chat tab keeps its history in the
page and uses the same settings helpers. Generation goes through the engine (``generate`` with an
``on_token`` callback for streaming); the engine formats the turns with the chat template.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from cama.errors import ConfigError


def settings_dict(settings) -> dict:
    """The settings as plain JSON values (for ``/set``, ``/save`` and the page)."""
    return {f.name: (list(v) if isinstance(v := getattr(settings, f.name), tuple) else v)
            for f in dataclasses.fields(settings)}  # fmt: skip


def set_field(settings, name: str, value: str):
    """``settings`` with field ``name`` set from its text (``/set temperature 0.3``); ConfigError if bad.

    The type follows the field's current value: numbers parse as numbers, ``none`` clears an
    optional field, a tuple field (``stop``) takes a JSON list or one string.
    """
    fields = {f.name: f for f in dataclasses.fields(settings)}
    if name not in fields:
        raise ConfigError(f"unknown setting {name!r}: expected one of {', '.join(fields)}")
    current, text = getattr(settings, name), value.strip()
    try:
        if text.lower() in ("none", "null") and not isinstance(current, tuple):
            parsed = None
        elif isinstance(current, bool):
            parsed = {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        elif isinstance(current, int):
            parsed = int(text)
        elif isinstance(current, float):
            parsed = float(text)
        elif isinstance(current, tuple):
            parsed = tuple(json.loads(text)) if text.startswith("[") else ((text,) if text else ())
        else:  # None or a string: a number if it reads as one
            parsed = _number(text)
    except (ValueError, KeyError, json.JSONDecodeError):
        raise ConfigError(f"setting {name}: {value!r} is not a valid {type(current).__name__}") from None
    return dataclasses.replace(settings, **{name: parsed})


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Session:
    """The turns so far, a system prompt, the settings; ``ask`` adds a user turn and its answer."""

    def __init__(self, engine, settings, system: str | None = None):
        self.engine, self.settings, self.system = engine, settings, system
        self.turns: list[dict] = []

    def messages(self, user: str | None = None) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.turns + ([{"role": "user", "content": user}] if user is not None else [])

    def ask(self, user: str, on_delta=None):
        """Generate the answer to ``user`` (deltas to ``on_delta``); both turns join the history."""
        callback = (lambda _i, delta: on_delta(delta)) if on_delta else None
        gen = self.engine.generate([self.messages(user)], self.settings, on_token=callback)[0]
        self.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": gen.text}]
        return gen

    def reset(self) -> None:
        self.turns = []

    def save(self, path: str | os.PathLike) -> Path:
        """The conversation and the settings as JSON, written atomically."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        body = {"messages": self.messages(), "settings": settings_dict(self.settings)}
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path
