"""Translate one source's records into another language: the seed's step 5, rule ``translate_instruct_source``.

In: ``instruct/sources/{source}.jsonl``. Out: ``instruct/translated/{source}.jsonl`` (the new
records: id ``<id>@<lang>``, ``lang`` the target, ``meta.translation`` saying from what and
how), ``.rejected.jsonl`` (every record not translated, with ``reason`` and ``detail``) and
``.stats.json``: ``records_in = translated + rejected + untranslated`` (checked), rejections by
reason, untranslated by cause (``budget``, ``provider_none``, ``error:<kind>``), requests, cache
hits, retries, tokens in and out, cost, latency percentiles.

Modes (``instruct.sources.<name>.translate.mode``), as the seed's two:

- ``both``: every turn is translated (system, user and assistant), each in its own request;
- ``question``: system and user turns are translated, and each assistant turn is asked of
  the model anew, in the target language, given the translated conversation so far.

Each translation answer is validated (``validate.py``) and, if rejected, asked once more
(``validation.retries``) with a reminder of the target language in the system prompt (a new
request, with its own cache key); a second rejection rejects the record with the reason.

IE records are not sent at all: the record is remade in the target language from its gold
structure (the same sentence, labels, format and answer, with the target language's
template), so labels and spans cannot drift.

Provider ``none`` (the demo's default) writes no translation: every record is
``untranslated: provider_none``, and the report says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter, deque
from pathlib import Path

from cama.chat import user_content
from cama.instruct.ie.templates import fill
from cama.instruct.records import IE_TASKS, JsonlSink, check_messages, iter_jsonl
from cama.instruct.translate.cache import Cache
from cama.instruct.translate.client import ChatClient, ClientSettings
from cama.instruct.translate.validate import PLACEHOLDER, Checks, check_answer, mask, unmask
from cama.io import write_json
from cama.logs import progress

log = logging.getLogger(__name__)

LETTER = re.compile(r"[^\W\d_]")
LANG_NAMES = {"zh": "Simplified Chinese", "en": "English"}
SYSTEM = (
    "You are a professional translator. Translate the user's text from {src} into {dst}. "
    "Keep every placeholder such as ⟦0⟧ exactly as it is, keep the layout (line breaks, lists, "
    "numbers), and do not answer or explain the text. Output only the translation."
)
REMINDER = " Write the translation in {dst} only."
ANSWER_SYSTEM = {"zh": "请用简体中文回答。", "en": "Answer in English."}


def source_lang(record: dict, target: str) -> str:
    return record["lang"] if record["lang"] != target else ("en" if target == "zh" else "zh")


class Translator:
    """Translates records with one ChatClient; see the module docstring."""

    def __init__(
        self, client: ChatClient, target: str, mode: str, checks: Checks, retries: int = 1
    ):
        self.client, self.target, self.mode, self.checks, self.retries = (
            client,
            target,
            mode,
            checks,
            retries,
        )
        self.rejections: Counter = Counter()

    async def text(self, text: str, src: str) -> tuple[str | None, str | None]:
        """(translation, None), or (None, reason): a rejection reason or ``budget`` / ``error:<kind>``."""
        masked = mask(text)
        if not LETTER.search(PLACEHOLDER.sub("", masked.text)):
            return text, None  # only code, numbers or punctuation: nothing to translate
        reason = None
        for attempt in range(1 + self.retries):
            system = SYSTEM.format(src=LANG_NAMES[src], dst=LANG_NAMES[self.target])
            if attempt:
                system += REMINDER.format(dst=LANG_NAMES[self.target])
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": masked.text},
            ]
            bound = 2 * len(masked.text.encode("utf-8")) + 64
            out = await self.client.complete(messages, self.client.params(max_tokens=bound))
            if out.error:
                return None, out.error if out.error == "budget" else f"error:{out.error}"
            reason = check_answer(
                masked.text, out.content, out.finish_reason, self.target, self.checks
            )
            if reason is None:
                restored = unmask(out.content.strip(), masked)
                if restored is not None:
                    return restored, None
                reason = "code_changed"
            self.rejections[f"attempt_{attempt}:{reason}"] += 1
        return None, f"rejected:{reason}"

    async def answer(self, history: list[dict]) -> tuple[str | None, str | None]:
        """Question mode: the model's own answer to the translated conversation."""
        system = ANSWER_SYSTEM[self.target]
        msgs = list(history)
        if msgs and msgs[0]["role"] == "system":
            msgs[0] = {"role": "system", "content": msgs[0]["content"] + "\n" + system}
        else:
            msgs.insert(0, {"role": "system", "content": system})
        reason = None
        for attempt in range(1 + self.retries):
            params = self.client.params(
                temperature=self.client.settings.temperature + 0.3 * attempt
            )
            out = await self.client.complete(msgs, params)
            if out.error:
                return None, out.error if out.error == "budget" else f"error:{out.error}"
            reason = check_answer(
                msgs[-1]["content"],
                out.content,
                out.finish_reason,
                self.target,
                self.checks,
                translation=False,
            )
            if reason is None:
                return out.content.strip(), None
            self.rejections[f"attempt_{attempt}:{reason}"] += 1
        return None, f"rejected:{reason}"

    async def record(self, record: dict) -> tuple[dict | None, str | None]:
        if record["task"] in IE_TASKS:
            return regenerate_ie(record, self.target), None
        src = source_lang(record, self.target)
        out: list[dict] = []
        if self.mode == "both":
            results = await asyncio.gather(
                *(self.text(m["content"], src) for m in record["messages"])
            )
            for m, (text, reason) in zip(record["messages"], results, strict=True):
                if reason:
                    return None, reason
                out.append({"role": m["role"], "content": text})
        else:
            for m in record["messages"]:
                if m["role"] == "assistant":
                    text, reason = await self.answer(out)
                else:
                    text, reason = await self.text(m["content"], src)
                if reason:
                    return None, reason
                out.append({"role": m["role"], "content": text})
        if check_messages(out):
            return None, f"rejected:{check_messages(out)}"
        return translated_record(
            record, out, self.target, self.mode, self.client.settings.model
        ), None


def translated_record(
    record: dict, messages: list[dict], target: str, mode: str, model: str | None
) -> dict:
    return {
        **record,
        "id": f"{record['id']}@{target}",
        "lang": target,
        "messages": messages,
        "meta": {
            **record["meta"],
            "translation": {"from": record["id"], "mode": mode, "model": model},
        },
    }


def regenerate_ie(record: dict, target: str) -> dict:
    """An IE record remade in ``target``: that language's template, the same sentence and answer."""
    ie = record["ie"]
    described = ie["labels"]
    if record["task"] == "ee":
        roles = record["meta"].get("roles", {})
        described = {label: roles.get(label, []) for label in ie["labels"]}
    instruction = fill(record["task"], target, record["meta"]["template"], ie["format"], described)
    messages = [
        {"role": "user", "content": user_content(instruction, ie["text"])},
        record["messages"][-1],
    ]
    return translated_record(record, messages, target, "regenerated", None)


async def _translate_all(
    records_path, translator: Translator, sink, rejected, counts: Counter, window: int
) -> None:
    """Translate records ``window`` at a time (the client bounds the requests in flight) and
    write them in input order as the oldest finishes."""
    pending: deque = deque()
    with progress(desc="translate", unit="record") as bar:

        async def drain_one():
            record, task = pending.popleft()
            out, reason = await task
            if out is not None:
                sink.write(out)
                counts["translated"] += 1
            else:
                counts[reason] += 1  # budget | error:<kind> | rejected:<reason>
                rejected.write({"id": record["id"], "reason": reason})
            bar.update(1)

        for record in iter_jsonl(records_path):
            pending.append((record, asyncio.ensure_future(translator.record(record))))
            if len(pending) >= window:
                await drain_one()
        while pending:
            await drain_one()


def translate_source(
    name: str,
    spec: dict,
    records: str | Path,
    out_records: str | Path,
    out_rejected: str | Path,
    out_stats: str | Path,
    settings: dict,
    cache_path: str | Path,
) -> dict:
    """Translate the records of source ``name`` per ``spec['translate']`` and ``settings`` (instruct.translate)."""
    t0 = time.perf_counter()
    target, mode = spec["translate"]["to"], spec["translate"]["mode"]
    counts: Counter = Counter()
    stats = {
        "source": name,
        "to": target,
        "mode": mode,
        "provider": settings["provider"],
        "model": settings.get("model"),
    }
    n_in = sum(1 for _ in iter_jsonl(records))
    if settings["provider"] == "none":
        with JsonlSink(out_records), JsonlSink(out_rejected) as rejected:
            for record in iter_jsonl(records):
                rejected.write({"id": record["id"], "reason": "provider_none"})
        counts["provider_none"] = n_in
        client_stats = {}
        log.info("%s: provider none, %d records stay untranslated", name, n_in)
    else:
        cache = Cache(cache_path)
        client = ChatClient(ClientSettings.from_config(settings), cache)
        translator = Translator(
            client,
            target,
            mode,
            Checks.from_config(settings["validation"]),
            settings["validation"]["retries"],
        )

        async def run():
            try:
                with JsonlSink(out_records) as sink, JsonlSink(out_rejected) as rejected:
                    await _translate_all(
                        records, translator, sink, rejected, counts, 4 * settings["concurrency"]
                    )
            finally:
                await client.close()

        try:
            asyncio.run(run())
        finally:
            cache.close()
        client_stats = {
            **client.stats.as_dict(),
            "rejections_by_attempt": dict(translator.rejections),
        }
    untranslated = {
        k: v
        for k, v in counts.items()
        if k == "budget" or k == "provider_none" or k.startswith("error:")
    }
    rejected_counts = {
        k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rejected:")
    }
    stats.update(
        {
            "records_in": n_in,
            "translated": counts["translated"],
            "rejected": rejected_counts,
            "untranslated": untranslated,
            **client_stats,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    if n_in != stats["translated"] + sum(rejected_counts.values()) + sum(untranslated.values()):
        raise RuntimeError(f"translate {name}: counts do not add up: {stats}")
    write_json(out_stats, stats)
    log.info(
        "%s: %d of %d translated; rejected %s; untranslated %s",
        name,
        stats["translated"],
        n_in,
        rejected_counts,
        untranslated,
    )
    return stats
