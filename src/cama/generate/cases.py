"""Case files in, generations out: what ``cama generate --cases`` and ``eval_cases`` read and write.

A case file is JSONL (one object per line) or YAML (a list of objects, or ``{cases: [...]}``).
Each case has exactly one of:

- ``messages``: a chat, ``[{"role": "user", "content": "..."}, ...]``;
- ``prompt``: one user turn;
- ``instruction`` (and optionally ``input``): one user turn made by ``cama.chat.user_content``;

and optionally ``id`` (default: the file and the case's number), ``category``, ``lang`` and
``settings`` (a preset name or a mapping, for this case only). Every prompt is formatted with
the model's chat template (``cama.chat``), as in training.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cama.chat import user_content
from cama.errors import CamaError
from cama.generate.settings import Generation
from cama.io import atomic_path

CATEGORIES = (
    "translation",
    "knowledge",
    "instruction following",
    "code",
    "long text",
    "reasoning",
    "harmlessness",
    "bilingual writing",
    "ie",
)
"""The seed's gallery categories (KnowLM's README), in its order; a case may name another."""


@dataclass
class Case:
    id: str
    messages: list[dict]
    category: str = ""
    lang: str = ""
    settings: str | dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user turn, for display."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def _case(obj, where: str) -> Case:
    if not isinstance(obj, dict):
        raise CamaError(f"{where}: a case must be a mapping, not {type(obj).__name__}")
    given = [k for k in ("messages", "prompt", "instruction") if k in obj]
    if len(given) != 1:
        raise CamaError(f"{where}: a case needs exactly one of messages, prompt, instruction (has {given or 'none'})")
    obj = dict(obj)
    if "messages" in obj:
        messages = obj.pop("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise CamaError(f"{where}: messages must be a list of {{role: system|user|assistant, content: str}}")
    elif "prompt" in obj:
        messages = [{"role": "user", "content": str(obj.pop("prompt"))}]
    else:
        messages = [{"role": "user", "content": user_content(str(obj.pop("instruction")), obj.pop("input", None))}]
    if not messages or messages[-1]["role"] != "user":
        raise CamaError(f"{where}: the last message must be the user's")
    return Case(
        id=str(obj.pop("id", where)),
        messages=messages,
        category=str(obj.pop("category", "")),
        lang=str(obj.pop("lang", "")),
        settings=obj.pop("settings", None),
        extra=obj,
    )


def read_cases(path: str | os.PathLike) -> list[Case]:
    """The cases of a JSONL or YAML file; a bad case raises an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CamaError(f"{path}: no such case file")
    suffix = path.suffix.lower()
    cases: list[Case] = []
    if suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CamaError(f"{path}:{n}: not JSON: {e.msg}") from None
                cases.append(_case(obj, f"{path.name}:{n}"))
    elif suffix in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise CamaError(f"{path}: not YAML: {e}") from None
        if isinstance(doc, dict) and "cases" in doc:
            doc = doc["cases"]
        if not isinstance(doc, list):
            raise CamaError(f"{path}: a YAML case file is a list of cases (or a mapping with 'cases')")
        cases = [_case(obj, f"{path.name}#{n}") for n, obj in enumerate(doc, 1)]
    else:
        raise CamaError(f"{path}: unknown case file format {suffix!r} (use .jsonl or .yaml)")
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise CamaError(f"{path}: case id {c.id!r} appears twice")
        seen.add(c.id)
    if not cases:
        raise CamaError(f"{path}: no cases")
    return cases


def write_jsonl(path: str | os.PathLike, cases: list[Case], runs: dict[str, dict]) -> None:
    """One line per (case, model): the case, the model, its settings and its generation.

    ``runs`` maps a model label to ``{"model": path, "settings": dict, "generations": [...]}``.
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for label, run in runs.items():
            for case, gen in zip(cases, run["generations"], strict=True):
                row = {"id": case.id, "category": case.category, "lang": case.lang, "messages": case.messages,
                       "model": label, "model_path": run.get("model"), "settings": run.get("settings"),
                       **gen.to_dict()}  # fmt: skip
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _quote(text: str) -> str:
    """Text as a Markdown block that nothing inside can break out of."""
    text = text if text.strip() else "(empty)"
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def render_markdown(cases: list[Case], runs: dict[str, dict], title: str = "Generations") -> str:
    """A gallery: cases grouped by category, each model's output with the seed's three marks
    (ended with EOS, cut at the length limit, repetition trimmed)."""
    lines = [f"# {title}", ""]
    lines.append("| model | path | settings | EOS | cut at length | stop string | repetition trimmed |")
    lines.append("|---|---|---|---|---|---|---|")
    for label, run in runs.items():
        gens: list[Generation] = run["generations"]
        count = {r: sum(g.finish_reason == r for g in gens) for r in ("eos", "length", "stop")}
        trimmed = sum(g.repetition_trimmed for g in gens)
        settings = html.escape(json.dumps(run.get("settings"), ensure_ascii=False)) if run.get("settings") else ""
        lines.append(f"| {label} | `{run.get('model', '')}` | {settings} | {count['eos']}/{len(gens)} | "
                     f"{count['length']}/{len(gens)} | {count['stop']}/{len(gens)} | {trimmed}/{len(gens)} |")  # fmt: skip
    lines += ["", "Marks: **EOS** the model ended its answer; **cut at length** it reached the token limit; "
              "**repetition trimmed** a run-on tail that repeated one span was cut to a single copy.", ""]  # fmt: skip
    order = {c: i for i, c in enumerate(CATEGORIES)}
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        by_cat.setdefault(c.category or "other", []).append(i)
    for cat in sorted(by_cat, key=lambda c: (order.get(c, len(order)), c)):
        lines += [f"## {cat}", ""]
        for i in by_cat[cat]:
            c = cases[i]
            lines += [f"### {c.id}" + (f" ({c.lang})" if c.lang else ""), ""]
            for m in c.messages:
                lines += [f"**{m['role']}**", "", _quote(m["content"]), ""]
            for label, run in runs.items():
                g: Generation = run["generations"][i]
                lines += [f"**{label}** — {g.marks}; {g.completion_tokens} tokens", "", _quote(g.text), ""]
    return "\n".join(lines)


def write_markdown(path: str | os.PathLike, cases: list[Case], runs: dict[str, dict], title: str = "Generations") -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(render_markdown(cases, runs, title), encoding="utf-8")
