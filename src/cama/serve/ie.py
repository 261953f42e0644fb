"""The IE prompt helper of ``cama chat`` and ``cama web``: a task, a label schema, a language and an
output format in; the prompt the model was trained on, and the parsed answer as a table, out.

Prompts come from the instruct stage's own templates (``cama.instruct.ie.fill`` and
``cama.chat.user_content``) and answers go back through its parser (``cama.instruct.ie.parse``):
the code that wrote the training answers is the code that reads the model's.

A schema is written as a user types it:

- NER and RE: labels separated by commas, ``人名, 地名, 组织机构``;
- EE: event types with their roles, ``type: role, role; type: role`` (``地震: 震级, 地点; 出售: 买方``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cama.chat import user_content
from cama.errors import ConfigError
from cama.instruct.ie import FORMATS, TASKS, TEMPLATES, ParseError, Schema, fill, parse

LANGS = ("zh", "en")
HEADERS = {"ner": ["mention", "type"], "re": ["head", "relation", "tail"], "ee": ["event type", "trigger", "role", "argument"]}
_SPLIT = re.compile(r"\s*[,，、]\s*")


@dataclass
class IEQuery:
    """What to extract: the task, its labels (EE: with roles), the prompt's language and answer format."""

    task: str
    labels: list[str]
    lang: str = "zh"
    fmt: str = "json"
    roles: dict[str, list[str]] = field(default_factory=dict)
    template: int = 0  # which of the task's templates in ``lang``

    def __post_init__(self):
        problems = []
        if self.task not in TASKS:
            problems.append(f"task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.lang not in LANGS:
            problems.append(f"language {self.lang!r}: expected one of {', '.join(LANGS)}")
        if self.fmt not in FORMATS:
            problems.append(f"format {self.fmt!r}: expected one of {', '.join(FORMATS)}")
        if not self.labels:
            problems.append("no labels: give at least one")
        if not problems and not 0 <= self.template < len(TEMPLATES[self.task][self.lang]):
            problems.append(f"template {self.template}: {self.task}/{self.lang} has {len(TEMPLATES[self.task][self.lang])}")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_text(cls, task: str, schema: str, lang: str = "zh", fmt: str = "json", template: int = 0) -> IEQuery:
        """A query from a schema as typed (see the module docstring)."""
        task = task.strip().lower()
        if task == "ee":
            roles: dict[str, list[str]] = {}
            for part in filter(None, (p.strip() for p in re.split(r"[;；\n]", schema))):
                etype, _, rest = part.partition(":") if ":" in part else part.partition("：")
                roles[etype.strip()] = [r for r in _SPLIT.split(rest.strip()) if r]
            return cls(task, list(roles), lang.strip(), fmt.strip(), roles, template)
        return cls(task, [x for x in _SPLIT.split(schema.strip()) if x], lang.strip(), fmt.strip(), {}, template)

    def instruction(self) -> str:
        described = Schema(self.task, self.labels, self.roles).describe(self.labels)
        return fill(self.task, self.lang, self.template, self.fmt, described)

    def messages(self, text: str) -> list[dict]:
        """The conversation to generate from: one user turn, the instruction then the text."""
        return [{"role": "user", "content": user_content(self.instruction(), text)}]

    def read(self, answer: str) -> tuple[list[list[str]], str | None]:
        """(table rows, None) for an answer that parses, or ([], why not) for a format error."""
        try:
            return rows(self.task, parse(self.task, self.fmt, answer, self.labels)), None
        except ParseError as e:
            return [], str(e)


def rows(task: str, items: list) -> list[list[str]]:
    """Parsed IE items as table rows under ``HEADERS[task]`` (EE: one row per argument)."""
    if task != "ee":
        return [list(item) for item in items]
    out = []
    for event in items:
        args = event.get("arguments") or [["", ""]]
        out += [[event["type"], event["trigger"], role, arg] for arg, role in args]
    return out


def format_table(headers: list[str], body: list[list[str]]) -> str:
    """A plain-text table, columns padded by display width (a CJK character takes two cells)."""
    import unicodedata

    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    cols = [max([width(h)] + [width(r[i]) for r in body]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, cols, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in cols]), *map(line, body)])
