"""Convert one instruction source (or one IE evaluation set) into records.

``convert_source`` (rule ``convert_instruct_source``) reads the files that the download stage
put in ``raw/instruct/{name}/`` and writes:

- ``instruct/sources/{name}.jsonl``: the records (format in ``cama.instruct.records``);
- ``instruct/sources/{name}.quarantine.parquet``: every input record that could not become
  one, with the file, the line and the reason (``cama.io.QUARANTINE_SCHEMA``);
- ``instruct/sources/{name}.stats.json``: ``read = kept + quarantined``, reasons, records.

``build_eval_set`` (rule ``build_ie_eval_set``) does the same for an ``evaluate.ie.sets``
entry, writing ``instruct/eval/{set}.jsonl``: the same converters, checks and templates, but
every label of the set's schema is asked, in the same fixed batches for every sentence, in
the set's output format (``cama.instruct.ie.evaluation_records``).

Input records are read in manifest order, at most ``max_records`` of them. An IE source is
read twice: once to collect its label schema (the labels, and each event type's roles, that
negative sampling and evaluation draw from), then to write the records; both passes apply
the same checks, so a quarantined sentence never adds a label.

Quarantine reasons: the reader's (``malformed_json``, ``invalid_utf8``, ``too_large``,
``truncated_stream``), the converter's (``missing_<field>``, ``span_mismatch`` for an offset
that does not point at its span, ``missing_trigger``, ...), and the stage's checks:
``empty_output``, ``empty_instruction``, ``bad_turn_order``, ``unfilled_placeholder`` for a
conversation; ``span_not_in_text``, ``unknown_label`` (a label outside a fixed ``labels``
schema), ``bad_label``, ``span_has_separator``, ``no_gold`` (``require_gold``) for an IE
sentence (``cama.instruct.ie.check_sample``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from cama.corpus.readers import Quarantined
from cama.corpus.text import to_simplified
from cama.errors import ConfigError, RecordError, SourceError
from cama.instruct import ie
from cama.instruct.converters import AUX_FILE_OPTIONS, FORMATS, Context, Format, IEItem, Raw
from cama.instruct.converters.base import read_json_document
from cama.instruct.records import IE_TASKS, JsonlSink, check_messages, fill_placeholders
from cama.io import QUARANTINE_RAW_BYTES, QUARANTINE_SCHEMA, ParquetSink, write_json
from cama.logs import progress

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the source


def resolve_format(key: str, spec: dict) -> tuple[Format, dict]:
    """The source's Format and its options with defaults; ConfigError naming ``key`` if wrong."""
    fmt = FORMATS.get(spec["format"])
    if fmt is None:
        raise ConfigError(
            f"{key}.format: unknown format {spec['format']!r} (one of {', '.join(FORMATS)})"
        )
    if spec["task"] not in fmt.tasks:
        raise ConfigError(
            f"{key}.task: format {fmt.name} makes {'/'.join(fmt.tasks)} records, not {spec['task']}"
        )
    options = dict(spec.get("options") or {})
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        known = ", ".join(sorted(fmt.options)) or "none"
        raise ConfigError(
            [
                f"{key}.options.{k}: unknown option of format {fmt.name} (known: {known})"
                for k in unknown
            ]
        )
    return fmt, {**fmt.options, **options}


def config_problems(config: dict) -> list[str]:
    """Every problem of the instruct sources and IE sets that the schema cannot see, by key."""
    problems = []
    sources = config.get("instruct", {}).get("sources", {})
    sets = config.get("evaluate", {}).get("ie", {}).get("sets", {})
    for key, entries in (("instruct.sources", sources), ("evaluate.ie.sets", sets)):
        for name, spec in entries.items():
            try:
                resolve_format(f"{key}.{name}", spec)
            except ConfigError as e:
                problems += e.problems
            if key == "evaluate.ie.sets" and spec["task"] not in IE_TASKS:
                problems.append(
                    f"{key}.{name}.task: an IE evaluation set is ner, re or ee, not {spec['task']}"
                )
    translate = config.get("instruct", {}).get("translate", {})
    if translate.get("provider") == "openai" and not translate.get("model"):
        problems.append(
            "instruct.translate.model: required with provider openai (the model the endpoint serves)"
        )
    for name in sorted(set(sources) & set(sets)):
        problems.append(
            f"evaluate.ie.sets.{name}: also an instruct source; both are fetched to raw/instruct/{name}"
        )
    return problems


def source_files(raw_dir: str | Path) -> list[tuple[int, Path, str]]:
    """(file index, path, name) of the downloaded files, in manifest order."""
    raw_dir = Path(raw_dir)
    manifest = raw_dir / "manifest.json"
    if not manifest.exists():
        raise SourceError(f"{raw_dir}: no manifest.json (run the download rule first)")
    files = json.loads(manifest.read_text())["files"]
    return [(i, raw_dir / f["path"], f["path"]) for i, f in enumerate(files)]


def load_aux(name: str, files: list[tuple[int, Path, str]], options: dict) -> tuple[dict, set[str]]:
    """Auxiliary files named by options (e.g. relation_names), loaded; and their names."""
    aux, names = {}, set()
    for opt in AUX_FILE_OPTIONS:
        wanted = options.get(opt)
        if not wanted:
            continue
        hits = [(p, rel) for _, p, rel in files if rel == wanted or Path(rel).name == wanted]
        if len(hits) != 1:
            raise SourceError(
                f"{name}: options.{opt} = {wanted!r} names {len(hits)} of the source's files "
                f"({', '.join(rel for _, _, rel in files)})"
            )
        aux[opt] = read_json_document(*hits[0])
        names.add(hits[0][1])
    return aux, names


def iter_inputs(
    name: str, spec: dict, raw_dir: str | Path
) -> Iterator[tuple[str, Raw | Quarantined, Context, Format]]:
    """(group id, raw record or quarantine, context, format) for each input record, in order."""
    fmt, options = resolve_format(f"{name}", spec)
    files = source_files(raw_dir)
    aux, aux_names = load_aux(name, files, options)
    ctx = Context(name, spec["lang"], spec["task"], options, aux)
    limit = spec.get("max_records")
    read = 0
    for index, path, rel in files:
        if rel in aux_names:
            continue
        for item in fmt.reader(path, rel, options):
            if limit is not None and read >= limit:
                return
            read += 1
            number = item.number if isinstance(item, Raw) else item.line
            yield f"{name}/{index}/{number}", item, ctx, fmt


def quarantine_row(source: str, item: Quarantined) -> dict:
    return {
        "source": source,
        "file": item.file,
        "line": item.line,
        "reason": item.reason,
        "raw": item.raw[:QUARANTINE_RAW_BYTES],
        "raw_size": item.raw_size,
    }


def _bad(file: str, raw: Raw, reason: str) -> Quarantined:
    return Quarantined(file, raw.number, reason, raw.raw, len(raw.raw))


_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")


def _lang(spec_lang: str, text: str) -> str:
    """The language of a record: the source's; for ``auto``, zh if Han characters are at least
    a fifth of its letters (a Chinese answer naming "OpenAI ChatGPT" is still Chinese)."""
    if spec_lang != "auto":
        return spec_lang
    return "zh" if 5 * len(_HAN.findall(text)) >= len(_LETTER.findall(text)) > 0 else "en"


# ----------------------------------------------------------------------------- conversations


def conversation_records(
    group: str, raw: Raw, ctx: Context, fmt: Format, spec: dict, file: str
) -> list[dict] | Quarantined:
    try:
        convs = fmt.convert(raw.obj, ctx)
    except RecordError as e:
        return _bad(file, raw, e.reason)
    out = []
    for k, conv in enumerate(convs):
        messages = fill_placeholders(conv.messages, spec.get("fill") or {})
        if spec.get("opencc"):
            messages = [{**m, "content": to_simplified(m["content"])} for m in messages]
        reason = check_messages(messages)
        if reason:
            return _bad(file, raw, reason)
        text = "\n".join(m["content"] for m in messages)
        out.append(
            {
                "id": group if len(convs) == 1 else f"{group}#{k}",
                "task": spec["task"],
                "lang": _lang(spec["lang"], text),
                "source": ctx.source,
                "messages": messages,
                "meta": {**conv.meta},
            }
        )
    if not out:
        return _bad(file, raw, "no_records")
    return out


# ----------------------------------------------------------------------------- IE sentences


def _rename(task: str, gold: list, names: dict, role_names: dict) -> list:
    if not names and not role_names:
        return gold
    out = []
    for item in gold:
        if task == "ee":
            out.append(
                {
                    "type": names.get(item["type"], item["type"]),
                    "trigger": item["trigger"],
                    "arguments": [[a, role_names.get(r, r)] for a, r in item["arguments"]],
                }
            )
        elif task == "re":
            out.append([item[0], names.get(item[1], item[1]), item[2]])
        else:
            out.append([item[0], names.get(item[1], item[1])])
    return out


def _simplified(task: str, gold: list) -> list:
    if task == "ee":
        return [
            {
                "type": e["type"],
                "trigger": to_simplified(e["trigger"]),
                "arguments": [[to_simplified(a), r] for a, r in e["arguments"]],
            }
            for e in gold
        ]
    if task == "re":
        return [[to_simplified(h), r, to_simplified(t)] for h, r, t in gold]
    return [[to_simplified(m), t] for m, t in gold]


def ie_sample(
    group: str, raw: Raw, ctx: Context, fmt: Format, spec: dict, file: str
) -> ie.Sample | Quarantined:
    """The checked Sample of one input record, or its quarantine entry."""
    try:
        items = fmt.convert(raw.obj, ctx)
    except RecordError as e:
        return _bad(file, raw, e.reason)
    item: IEItem = items[0]
    text, gold = (
        item.text,
        _rename(
            spec["task"], item.gold, spec.get("label_names") or {}, spec.get("role_names") or {}
        ),
    )
    if spec.get("opencc"):
        text, gold = to_simplified(text), _simplified(spec["task"], gold)
    sample = ie.Sample(
        text, spec["task"], _lang(spec["lang"], text), gold, group, ctx.source, dict(item.meta)
    )
    reason = ie.check_sample(sample, spec.get("labels"))
    if reason is None and spec.get("require_gold") and not gold:
        reason = "no_gold"
    return _bad(file, raw, reason) if reason else sample


def _schema(name: str, spec: dict, raw_dir) -> ie.Schema:
    builder = ie.SchemaBuilder(spec["task"], spec.get("labels"))
    for group, item, ctx, fmt in iter_inputs(name, spec, raw_dir):
        if isinstance(item, Raw):
            sample = ie_sample(group, item, ctx, fmt, spec, group)
            if isinstance(sample, ie.Sample):
                builder.add(sample)
    schema = builder.build()
    if not schema.labels:
        raise SourceError(
            f"{name}: no labels found (every sentence was quarantined, or none has gold)"
        )
    return schema


# ----------------------------------------------------------------------------- the stage


def _run(
    name: str, spec: dict, raw_dir, out_records, out_quarantine, out_stats, make, extra_stats
) -> dict:
    t0 = time.perf_counter()
    stats = {"source": name, "format": spec["format"], "task": spec["task"], "lang": spec["lang"]}
    quarantined: Counter = Counter()
    by_lang: Counter = Counter()
    kept = read = 0
    is_ie = spec["task"] in IE_TASKS
    ie_counts: Counter = Counter()
    files = {str(i): rel for i, _, rel in source_files(raw_dir)}
    with (
        JsonlSink(out_records) as sink,
        ParquetSink(out_quarantine, QUARANTINE_SCHEMA) as qsink,
        progress(desc=f"convert {name}", unit="record") as bar,
    ):
        for group, item, ctx, fmt in iter_inputs(name, spec, raw_dir):
            read += 1
            bar.update(1)
            file = files[group.split("/")[-2]]
            if isinstance(item, Quarantined):
                result = item
            elif is_ie:
                result = ie_sample(group, item, ctx, fmt, spec, file)
                if isinstance(result, ie.Sample):
                    result = make(result, ie_counts)
            else:
                result = conversation_records(group, item, ctx, fmt, spec, file)
            if isinstance(result, Quarantined):
                quarantined[result.reason] += 1
                qsink.write(quarantine_row(name, result))
                continue
            kept += 1
            for record in result:
                sink.write(record)
                by_lang[record["lang"]] += 1
    stats.update(
        {
            "read": read,
            "kept": kept,
            "quarantined": dict(quarantined.most_common()),
            "records": sink.count,
            "records_by_lang": dict(by_lang),
            **extra_stats,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    )
    if is_ie:
        stats["ie"] = {**stats.get("ie", {}), **dict(ie_counts)}
    if read != kept + sum(quarantined.values()):
        raise RuntimeError(f"{name}: counts do not add up: {stats}")
    write_json(out_stats, stats)
    log.info(
        "%s: read %d, kept %d, quarantined %d (%s), %d records",
        name,
        read,
        kept,
        sum(quarantined.values()),
        dict(quarantined),
        sink.count,
    )
    return stats


def _count(records: list[dict], counts: Counter) -> list[dict]:
    counts["samples"] += 1
    for r in records:
        counts["records"] += 1
        counts[f"format_{r['ie']['format']}"] += 1
        counts["labels_asked"] += len(r["ie"]["labels"])
        counts["negative_labels"] += r["meta"].get("negatives", 0)
        counts["empty_answers"] += not r["ie"]["gold"]
    return records


def convert_source(
    name: str,
    spec: dict,
    raw_dir: str | Path,
    out_records: str | Path,
    out_quarantine: str | Path,
    out_stats: str | Path,
    ie_settings: dict,
    seed: int,
) -> dict:
    """One ``instruct.sources`` entry → records, quarantine and stats (see the module docstring)."""
    extra = {}
    make = None
    if spec["task"] in IE_TASKS:
        schema = _schema(name, spec, raw_dir)
        settings = ie.SynthSettings.from_config(ie_settings, seed)
        extra["ie"] = {"schema": schema.labels, "roles": schema.roles}
        log.info("%s: %d labels: %s", name, len(schema.labels), schema.labels)

        def make(sample, counts):
            return _count(ie.training_records(sample, schema, settings), counts)

    return _run(name, spec, raw_dir, out_records, out_quarantine, out_stats, make, extra)


def build_eval_set(
    name: str,
    spec: dict,
    raw_dir: str | Path,
    out_records: str | Path,
    out_quarantine: str | Path,
    out_stats: str | Path,
    ie_settings: dict,
    seed: int,
) -> dict:
    """One ``evaluate.ie.sets`` entry → evaluation records: every label, fixed batches."""
    if spec["task"] not in IE_TASKS:
        raise ConfigError(
            f"evaluate.ie.sets.{name}.task: an IE set is ner, re or ee, not {spec['task']}"
        )
    schema = _schema(name, spec, raw_dir)
    settings = ie.SynthSettings.from_config(ie_settings, seed)
    fmt = spec["ie_format"]
    batches = ie.label_batches(schema.labels, settings.batch_size[spec["task"]])
    extra = {
        "ie": {"schema": schema.labels, "roles": schema.roles, "ie_format": fmt, "batches": batches}
    }

    def make(sample, counts):
        return _count(ie.evaluation_records(sample, schema, settings, fmt), counts)

    return _run(name, spec, raw_dir, out_records, out_quarantine, out_stats, make, extra)
