"""The gold structure of an IE sentence, and the dataset's label schema.

Gold items, as JSON values (the ``ie.gold`` field of a record, and what ``parse`` returns):

====  ==========================================================================
task  one item
====  ==========================================================================
ner   ``[mention, type]``
re    ``[head, relation, tail]``
ee    ``{"type": t, "trigger": w, "arguments": [[argument, role], ...]}``
====  ==========================================================================

Items are unique: an output format cannot say where in the sentence a span is, so two
occurrences of one (mention, type) are one answer. A record's gold is **canonical**: the
items of the asked labels, grouped by label in the order the labels were asked, each group
in sentence order; an event's arguments grouped by role in order of first appearance. Every
output format renders in that order and ``parse`` reads it back in that order, so
``parse(task, fmt, render(task, fmt, gold, labels), labels) == gold``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

TASKS = ("ner", "re", "ee")
# What may not appear inside a span or a label: the line formats use these as separators.
SEPARATORS = ("\n", "\r", "|")


def label_of(task: str, item: Any) -> str:
    """The schema label an item answers to: the entity type, the relation, the event type."""
    return item["type"] if task == "ee" else item[1]


def spans_of(task: str, item: Any) -> list[str]:
    """Every text span an item names (to check them against the sentence)."""
    if task == "ner":
        return [item[0]]
    if task == "re":
        return [item[0], item[2]]
    return [item["trigger"], *(a for a, _ in item["arguments"])]


def _key(task: str, item: Any) -> Any:
    if task == "ee":
        return (item["type"], item["trigger"], tuple(tuple(a) for a in item["arguments"]))
    return tuple(item)


def canonical_event(event: dict) -> dict:
    """An event with unique arguments grouped by role, roles in order of first appearance."""
    seen, args = set(), []
    for arg, role in event["arguments"]:
        if (arg, role) not in seen:
            seen.add((arg, role))
            args.append([arg, role])
    first = {}
    for i, (_, role) in enumerate(args):
        first.setdefault(role, i)
    args.sort(key=lambda a: first[a[1]])
    return {"type": event["type"], "trigger": event["trigger"], "arguments": args}


def canonical(task: str, gold: Iterable[Any], labels: Sequence[str]) -> list:
    """The gold for ``labels``: unique items of those labels, grouped in ``labels`` order."""
    rank = {label: i for i, label in enumerate(labels)}
    seen, items = set(), []
    for item in gold:
        if label_of(task, item) not in rank:
            continue
        item = canonical_event(item) if task == "ee" else list(item)
        key = _key(task, item)
        if key not in seen:
            seen.add(key)
            items.append(item)
    items.sort(key=lambda it: rank[label_of(task, it)])  # stable: sentence order within a label
    return items


@dataclass(slots=True)
class Sample:
    """One sentence (or document) of an IE dataset with its gold answer over every label."""

    text: str
    task: str  # ner | re | ee
    lang: str  # zh | en
    gold: list  # items over all labels, in sentence order
    group: str  # stable id of the sentence: "<source>/<file index>/<record number>"
    source: str
    meta: dict = field(default_factory=dict)

    def labels(self) -> list[str]:
        """The labels present in the gold, in order of first appearance."""
        return list(dict.fromkeys(label_of(self.task, item) for item in self.gold))

    def roles(self) -> dict[str, list[str]]:
        """EE: the roles seen per event type."""
        out: dict[str, dict[str, None]] = {}
        for event in self.gold if self.task == "ee" else []:
            roles = out.setdefault(event["type"], {})
            for _, role in event["arguments"]:
                roles[role] = None
        return {t: list(r) for t, r in out.items()}


@dataclass
class Schema:
    """A dataset's labels (in the order asked at evaluation) and, for EE, each type's roles."""

    task: str
    labels: list[str]
    roles: dict[str, list[str]] = field(default_factory=dict)

    def describe(self, labels: Sequence[str]) -> Any:
        """What the prompt lists for ``labels``: the labels; for EE, each type with its roles."""
        if self.task == "ee":
            return {label: self.roles.get(label, []) for label in labels}
        return list(labels)


class SchemaBuilder:
    """Collects a schema from samples: labels sorted by name unless the config fixes them."""

    def __init__(self, task: str, labels: Sequence[str] | None = None):
        self.task = task
        self.fixed = list(labels) if labels else None
        self.seen: dict[str, None] = {}
        self.roles: dict[str, dict[str, None]] = {}

    def add(self, sample: Sample) -> None:
        for label in sample.labels():
            self.seen[label] = None
        for etype, roles in sample.roles().items():
            bucket = self.roles.setdefault(etype, {})
            for role in roles:
                bucket[role] = None

    def build(self) -> Schema:
        labels = self.fixed if self.fixed is not None else sorted(self.seen)
        roles = {t: sorted(r) for t, r in sorted(self.roles.items())}
        return Schema(self.task, labels, roles)


# Characters a label or role may not hold: the formats write them around labels.
LABEL_FORBIDDEN = ("\n", "\r", "|", ":", ",", "(", ")", "[", "]", '"')


def check_sample(sample: Sample, schema_labels: Sequence[str] | None = None) -> str | None:
    """Why ``sample`` cannot become records (a quarantine reason), or None if it can.

    Every span must be non-empty, occur in the text and hold no separator of the line
    formats; every label and role must be writable in every format; with a fixed schema,
    every label must be in it (``unknown_label``).
    """
    if not sample.text.strip():
        return "empty_text"
    for item in sample.gold:
        label = label_of(sample.task, item)
        names = [label] + ([r for _, r in item["arguments"]] if sample.task == "ee" else [])
        for name in names:
            if not name or name != name.strip() or any(c in name for c in LABEL_FORBIDDEN):
                return "bad_label"
        if schema_labels is not None and label not in schema_labels:
            return "unknown_label"
        for span in spans_of(sample.task, item):
            if not span or not span.strip():
                return "empty_span"
            if span != span.strip():
                return "span_whitespace"
            if any(c in span for c in SEPARATORS):
                return "span_has_separator"
            if span not in sample.text:
                return "span_not_in_text"
    return None
