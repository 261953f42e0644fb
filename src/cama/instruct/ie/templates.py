"""Instruction templates for NER, RE and EE, in Chinese and English: our own wording.

A template has two placeholders, ``{labels}`` (the asked labels as a JSON list; for EE a
JSON object of event type → its roles) and ``{format}`` (how to write the answer, from
``FORMAT_HINTS``: the output format in words, with its one spelling of the empty result).
The sentence is not in the template: it is the input of ``cama.chat.user_content``, after
a blank line, as for every single-turn record.

Templates are checked at import: each has exactly those two placeholders and no other
braces, and ``fill`` refuses a value that is missing or a result that still holds one.
"""

from __future__ import annotations

import json
import string
from typing import Any

from cama.errors import CamaError
from cama.instruct.ie.formats import FORMATS, NAN

PLACEHOLDERS = ("labels", "format")

TEMPLATES: dict[str, dict[str, list[str]]] = {
    "ner": {
        "en": [
            "Find the named entities in the text below. Entity types: {labels}. {format}",
            "Extract every mention of these entity types from the passage: {labels}. {format}",
            "You are an information extraction system. Mark the entities of the text that "
            "belong to one of the types {labels}. {format}",
            "Which spans of the following text name an entity of a type in {labels}? Copy each "
            "span exactly as it is written. {format}",
            "Read the text and list the entities it mentions, keeping only the types {labels}. "
            "{format}",
        ],
        "zh": [
            "找出下面文本中的命名实体。实体类型：{labels}。{format}",
            "请从这段文字里抽取属于下列类型的全部实体：{labels}。{format}",
            "你是一个信息抽取系统。请标出文本中属于 {labels} 这些类型的实体。{format}",
            "下面的文本里，哪些片段是 {labels} 中某一类型的实体？请原样照抄每个片段。{format}",
            "阅读文本，列出它提到的实体，只保留以下类型：{labels}。{format}",
        ],
    },
    "re": {
        "en": [
            "Extract the relation triples stated in the text below. Relations: {labels}. {format}",
            "Find every pair of entities in the passage that stands in one of these relations: "
            "{labels}. {format}",
            "Given the relation types {labels}, list each head entity, relation and tail entity "
            "that the text states. {format}",
            "You are an information extraction system. Identify the relations between entities "
            "in the text, using only the relations {labels}. {format}",
            "Which facts of the form head-relation-tail does this text express? Consider only "
            "the relations {labels}. {format}",
        ],
        "zh": [
            "抽取下面文本中陈述的关系三元组。关系类型：{labels}。{format}",
            "请找出这段文字里具有下列关系之一的所有实体对：{labels}。{format}",
            "给定关系类型 {labels}，列出文本所陈述的每个头实体、关系和尾实体。{format}",
            "你是一个信息抽取系统。请识别文本中实体之间的关系，只使用这些关系：{labels}。{format}",
            "这段文本表达了哪些“头实体-关系-尾实体”形式的事实？只考虑关系 {labels}。{format}",
        ],
    },
    "ee": {
        "en": [
            "Extract the events in the text below. Event types and their argument roles: "
            "{labels}. {format}",
            "Find every event of these types in the passage, with its trigger word and its "
            "arguments: {labels}. {format}",
            "You are an information extraction system. Detect the events of the text; the "
            "types and the roles of their arguments are {labels}. {format}",
            "Which events does this text describe? Use only these event types and roles: "
            "{labels}. For each, give the trigger and the arguments. {format}",
            "Read the text and list its events of the types {labels}, each with the word that "
            "triggers it and the arguments by role. {format}",
        ],
        "zh": [
            "抽取下面文本中的事件。事件类型及其论元角色：{labels}。{format}",
            "请找出这段文字里属于下列类型的全部事件，给出触发词和论元：{labels}。{format}",
            "你是一个信息抽取系统。请检测文本中的事件，事件类型和论元角色为 {labels}。{format}",
            "这段文本描述了哪些事件？只使用这些事件类型和角色：{labels}。每个事件给出触发词和论元。{format}",
            "阅读文本，列出其中属于 {labels} 类型的事件，每个事件包括触发它的词和按角色列出的论元。{format}",
        ],
    },
}

FORMAT_HINTS: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "ner": {
            "json": "Answer in JSON: an object with each entity type as a key and the list of "
            "its mentions as the value, [] for a type with none.",
            "tuple": f'Write one "(mention, type)" per line, or {NAN} if there is none.',
            "lines": f'Write one "type: mention" per line, or {NAN} if there is none.',
        },
        "re": {
            "json": "Answer in JSON: an object with each relation as a key and a list of "
            '{"subject": head, "object": tail} as the value, [] for a relation that does not occur.',
            "tuple": f'Write one "(head, relation, tail)" per line, or {NAN} if there is none.',
            "lines": f'Write one "relation: head | tail" per line, or {NAN} if there is none.',
        },
        "ee": {
            "json": "Answer in JSON: an object with each event type as a key and a list of "
            '{"trigger": word, "arguments": {role: [arguments]}} as the value, [] for a type '
            "that does not occur.",
            "tuple": 'Write one "(trigger, event type, [(argument, role), ...])" per line, or '
            f"{NAN} if there is none.",
            "lines": 'Write one "event type: trigger | role: argument | ..." per line, or '
            f"{NAN} if there is none.",
        },
    },
    "zh": {
        "ner": {
            "json": "用 JSON 回答：以每个实体类型为键，值为该类型的实体列表，没有则为 []。",
            "tuple": f"每行写一个“(实体, 类型)”，没有实体时写 {NAN}。",
            "lines": f"每行写一个“类型: 实体”，没有实体时写 {NAN}。",
        },
        "re": {
            "json": '用 JSON 回答：以每个关系为键，值为 {"subject": 头实体, "object": 尾实体} '
            "的列表，没有出现的关系为 []。",
            "tuple": f"每行写一个“(头实体, 关系, 尾实体)”，没有关系时写 {NAN}。",
            "lines": f"每行写一个“关系: 头实体 | 尾实体”，没有关系时写 {NAN}。",
        },
        "ee": {
            "json": '用 JSON 回答：以每个事件类型为键，值为 {"trigger": 触发词, "arguments": '
            "{角色: [论元]}} 的列表，没有出现的类型为 []。",
            "tuple": f"每行写一个“(触发词, 事件类型, [(论元, 角色), ...])”，没有事件时写 {NAN}。",
            "lines": f"每行写一个“事件类型: 触发词 | 角色: 论元 | ...”，没有事件时写 {NAN}。",
        },
    },
}


class TemplateError(CamaError):
    """A template with a placeholder that is unknown, missing or left unfilled."""


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _check_templates() -> None:
    for task, by_lang in TEMPLATES.items():
        for lang, templates in by_lang.items():
            for i, t in enumerate(templates):
                if sorted(_fields(t)) != sorted(PLACEHOLDERS):
                    raise TemplateError(
                        f"TEMPLATES[{task!r}][{lang!r}][{i}]: placeholders {_fields(t)}, "
                        f"expected exactly {list(PLACEHOLDERS)}"
                    )
    for lang, by_task in FORMAT_HINTS.items():
        for task in TEMPLATES:
            if set(by_task.get(task, {})) != set(FORMATS):
                raise TemplateError(f"FORMAT_HINTS[{lang!r}][{task!r}] lacks a format")


_check_templates()


def describe_labels(described: Any) -> str:
    """The ``{labels}`` value: a JSON list (or, for EE, an object), non-ASCII kept."""
    return json.dumps(described, ensure_ascii=False)


def fill(task: str, lang: str, index: int, fmt: str, described: Any) -> str:
    """Template ``index`` of ``task`` in ``lang`` with the labels and the format hint put in."""
    try:
        template = TEMPLATES[task][lang][index]
        hint = FORMAT_HINTS[lang][task][fmt]
    except (KeyError, IndexError):
        raise TemplateError(f"no template {task}/{lang}/{index} for format {fmt!r}") from None
    values = {"labels": describe_labels(described), "format": hint}
    text = template.format_map(values)
    if any("{" + p + "}" in text for p in PLACEHOLDERS) or not all(values.values()):
        raise TemplateError(f"template {task}/{lang}/{index}: a placeholder is left unfilled")
    return text
