"""cama.instruct.ie: formats round-trip, parse errors, templates, batches, negatives, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cama.chat import user_content
from cama.instruct.ie import (
    FORMATS,
    NAN,
    TASKS,
    TEMPLATES,
    ParseError,
    Sample,
    Schema,
    SchemaBuilder,
    SynthSettings,
    TemplateError,
    canonical,
    check_sample,
    evaluation_records,
    fill,
    label_batches,
    parse,
    render,
    training_records,
)
from cama.instruct.ie.structures import LABEL_FORBIDDEN, SEPARATORS

# --- strategies: spans and labels as real datasets have them ---------------------------------

_span_chars = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="".join(SEPARATORS)
) | st.sampled_from(list("张三北京, ():;-'\"[]"))
spans = st.text(_span_chars, min_size=1, max_size=12).map(str.strip).filter(bool)
_label_chars = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="".join(LABEL_FORBIDDEN)
) | st.sampled_from(list("人名地 -_."))
label_lists = st.lists(
    st.text(_label_chars, min_size=1, max_size=8).map(str.strip).filter(bool),
    min_size=1,
    max_size=7,
    unique=True,
)


@st.composite
def golds(draw, task: str):
    labels = draw(label_lists)
    n = draw(st.integers(0, 5))
    items = []
    for _ in range(n):
        label = draw(st.sampled_from(labels))
        if task == "ner":
            items.append([draw(spans), label])
        elif task == "re":
            items.append([draw(spans), label, draw(spans)])
        else:
            roles = st.text(_label_chars, min_size=1, max_size=6).map(str.strip).filter(bool)
            args = draw(st.lists(st.tuples(spans, roles).map(list), max_size=3))
            items.append({"type": label, "trigger": draw(spans), "arguments": args})
    asked = draw(st.permutations(labels))
    return canonical(task, items, asked), asked


def _ambiguous_in_tuple(task: str, gold: list, labels: list[str]) -> bool:
    """The tuple format's one known ambiguity: a span holding ', <asked label>,' (or, in an
    event, a parenthesis or bracket) reads two ways. No dataset span of ours does."""
    for item in gold:
        spans_ = (
            [item[0], item[2]]
            if task == "re"
            else ([item["trigger"]] + [a for a, _ in item["arguments"]] if task == "ee" else [])
        )
        for s in spans_:
            if any(f",{lab}" in s.replace(", ", ",") or s.endswith(",") for lab in labels):
                return True
            if task == "ee" and any(c in s for c in "()[]"):
                return True
    return False


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("task", TASKS)
@given(data=st.data())
def test_parse_reads_back_what_render_writes(task, fmt, data):
    gold, labels = data.draw(golds(task))
    if fmt == "tuple":
        assume(not _ambiguous_in_tuple(task, gold, labels))
    text = render(task, fmt, gold, labels)
    assert parse(task, fmt, text, labels) == gold


@pytest.mark.parametrize("task", TASKS)
def test_the_empty_result_has_one_spelling_per_format(task):
    labels = ["甲", "乙"]
    assert render(task, "tuple", [], labels) == NAN
    assert render(task, "lines", [], labels) == NAN
    assert json.loads(render(task, "json", [], labels)) == {"甲": [], "乙": []}
    for fmt in FORMATS:
        assert parse(task, fmt, render(task, fmt, [], labels), labels) == []
    # lenient on case and whitespace around the one spelling
    assert parse(task, "tuple", "  nan \n", labels) == []


def test_parse_is_lenient_on_layout_and_quoting():
    labels = ["person", "location"]
    gold = [["Ada Lovelace", "person"], ["London", "location"]]
    assert (
        parse(
            "ner",
            "json",
            "```json\n{'person': ['Ada Lovelace'], 'location': [' London ']}\n```",
            labels,
        )
        == gold
    )
    assert (
        parse("ner", "tuple", "\n(Ada Lovelace ,person)\n\n(  London,  location )\n", labels)
        == gold
    )
    assert parse("ner", "lines", "person :Ada Lovelace\nlocation:London", labels) == gold
    # a label left out of a json answer means none for it
    assert parse("ner", "json", '{"person": ["Ada Lovelace"]}', labels) == gold[:1]


@pytest.mark.parametrize(
    "task,fmt,text,why",
    [
        ("ner", "json", '{"person": ["Ada"]', "not JSON"),
        ("ner", "json", '["Ada"]', "object keyed by label"),
        ("ner", "json", '{"organisation": ["ACM"]}', "not asked"),
        ("ner", "json", '{"person": "Ada"}', "list was expected"),
        ("ner", "json", '{"person": [""]}', "empty mention"),
        ("ner", "tuple", "Ada, person", "parentheses"),
        ("ner", "tuple", "(Ada, organisation)", "not asked"),
        ("ner", "tuple", "(Ada, person)\nNAN", "NAN together"),
        ("ner", "lines", "organisation: ACM", "asked label"),
        ("ner", "lines", "", "empty answer"),
        ("re", "json", '{"born in": [{"subject": "Ada"}]}', "subject, object"),
        ("re", "tuple", "(Ada, London)", "no asked label"),
        ("re", "lines", "born in: Ada", "head | tail"),
        ("ee", "json", '{"attack": [{"arguments": {}}]}', "trigger"),
        ("ee", "tuple", "(bombed, attack, [(city, target)", "not closed"),
        ("ee", "tuple", "(bombed, attack, [city, target])", "pairs"),
        ("ee", "lines", "attack: bombed | the city", "role: argument"),
    ],
)
def test_malformed_answers_raise_parse_error_saying_why(task, fmt, text, why):
    labels = {"ner": ["person", "location"], "re": ["born in"], "ee": ["attack"]}[task]
    with pytest.raises(ParseError, match=why):
        parse(task, fmt, text, labels)


def test_parse_error_is_a_value_error_and_unknown_names_raise_value_error():
    assert issubclass(ParseError, ValueError)
    with pytest.raises(ValueError, match="unknown output format"):
        parse("ner", "xml", "", ["a"])
    with pytest.raises(ValueError, match="unknown IE task"):
        render("pos", "json", [], ["a"])


# --- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_at_least_four_templates_per_task_and_language_each_filled_completely(task, lang):
    templates = TEMPLATES[task][lang]
    assert len(templates) >= 4 and len(set(templates)) == len(templates)
    for i in range(len(templates)):
        for fmt in FORMATS:
            text = fill(task, lang, i, fmt, ["甲类", "B type"])
            assert "{labels}" not in text and "{format}" not in text
            assert '["甲类", "B type"]' in text
    with pytest.raises(TemplateError):
        fill(task, lang, len(templates), "json", ["a"])


def test_a_template_with_a_bad_placeholder_is_refused_at_import(monkeypatch):
    from cama.instruct.ie import templates

    monkeypatch.setitem(templates.TEMPLATES["ner"], "en", ["Find {labels}. {fromat}"])
    with pytest.raises(TemplateError, match="placeholders"):
        templates._check_templates()


# --- batches, negatives, determinism -------------------------------------------------------------


@pytest.mark.parametrize(
    "n,size,expected",
    [
        (6, 6, [6]),
        (7, 6, [7]),
        (8, 6, [8]),
        (9, 6, [6, 3]),
        (13, 6, [6, 7]),
        (15, 6, [6, 6, 3]),
        (4, 4, [4]),
        (5, 4, [5]),
        (6, 4, [4, 2]),
        (9, 4, [4, 5]),
        (1, 4, [1]),
        (0, 4, []),
    ],
)
def test_label_batches_merge_a_leftover_under_half_a_batch(n, size, expected):
    labels = [f"l{i}" for i in range(n)]
    batches = label_batches(labels, size)
    assert [len(b) for b in batches] == expected
    assert sum(batches, []) == labels


def _ner_sample(i: int, entities: list[tuple[str, str]]) -> Sample:
    text = " ".join(m for m, _ in entities) + f" said something on day {i}."
    return Sample(text, "ner", "en", [list(e) for e in entities], f"demo/0/{i}", "demo")


SCHEMA = Schema("ner", [f"type{i}" for i in range(13)])


def test_training_asks_every_present_label_and_samples_negatives_at_the_rate():
    settings = SynthSettings(negative_rate=0.3, seed=7)
    kept = Counter()
    n = 400
    for i in range(n):
        sample = _ner_sample(i, [("Ada", "type0"), ("Bob", "type5")])
        records = training_records(sample, SCHEMA, settings)
        asked = [label for r in records for label in r["ie"]["labels"]]
        assert len(asked) == len(set(asked))
        assert {"type0", "type5"} <= set(asked)
        kept.update(set(asked) - {"type0", "type5"})
        # batches of 6 with the leftover merged, every record parses back to its gold
        assert [len(r["ie"]["labels"]) for r in records] == [
            len(b) for b in label_batches(asked, 6)
        ]
        for r in records:
            assert (
                parse("ner", r["ie"]["format"], r["messages"][-1]["content"], r["ie"]["labels"])
                == r["ie"]["gold"]
            )
            assert r["meta"]["negatives"] == sum(
                lab not in ("type0", "type5") for lab in r["ie"]["labels"]
            )
    rate = sum(kept.values()) / (11 * n)
    assert 0.26 < rate < 0.34, rate  # 4400 Bernoulli(0.3) draws: 5 sigma is ±0.035
    assert set(kept) == set(SCHEMA.labels) - {"type0", "type5"}


def test_a_sentence_with_nothing_to_find_still_asks_one_label():
    sample = _ner_sample(1, [])
    records = training_records(sample, SCHEMA, SynthSettings(negative_rate=0.0))
    assert len(records) == 1 and len(records[0]["ie"]["labels"]) == 1
    assert records[0]["ie"]["gold"] == []
    fmt = records[0]["ie"]["format"]
    assert records[0]["messages"][-1]["content"] == render(
        "ner", fmt, [], records[0]["ie"]["labels"]
    )


def test_records_follow_the_contract_and_use_the_chat_user_turn():
    sample = _ner_sample(3, [("Ada", "type0")])
    for r in training_records(sample, SCHEMA, SynthSettings()):
        assert set(r) == {"id", "task", "lang", "source", "messages", "meta", "ie"}
        assert r["id"].startswith("demo/0/3#b") and r["ie"]["group"] == "demo/0/3"
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        instruction = fill("ner", "en", r["meta"]["template"], r["ie"]["format"], r["ie"]["labels"])
        assert r["messages"][0]["content"] == user_content(instruction, sample.text)
        assert set(r["ie"]) == {"text", "labels", "format", "gold", "group"}


def test_order_depends_on_seed_and_record_only():
    s1, s2 = _ner_sample(1, [("Ada", "type0")]), _ner_sample(2, [("Ada", "type0")])
    a = training_records(s1, SCHEMA, SynthSettings(seed=1))
    assert a == training_records(s1, SCHEMA, SynthSettings(seed=1))
    orders = {
        tuple(
            lab
            for r in training_records(s, SCHEMA, SynthSettings(seed=k))
            for lab in r["ie"]["labels"]
        )
        for s in (s1, s2)
        for k in (1, 2)
    }
    assert len(orders) == 4


_PRINT_ORDER = """
from cama.instruct.ie import Sample, Schema, SynthSettings, training_records
import json
schema = Schema("ner", ["person", "location", "organisation", "date", "work", "event", "product", "law"])
out = []
for i in range(20):
    s = Sample("Ada met Bob in Paris", "ner", "en", [["Ada", "person"], ["Paris", "location"]], f"x/0/{i}", "x")
    out.append([(r["ie"]["labels"], r["ie"]["format"], r["meta"]["template"]) for r in training_records(s, schema, SynthSettings(seed=3))])
print(json.dumps(out))
"""


def test_order_does_not_depend_on_pythonhashseed():
    outs = set()
    for hashseed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run(
            [sys.executable, "-c", _PRINT_ORDER],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outs.add(proc.stdout)
    assert len(outs) == 1


def test_evaluation_asks_every_label_in_the_same_fixed_batches():
    settings = SynthSettings(seed=5)
    seen = set()
    for i in range(30):
        records = evaluation_records(_ner_sample(i, [("Ada", "type3")]), SCHEMA, settings, "json")
        batches = tuple(tuple(r["ie"]["labels"]) for r in records)
        seen.add(batches)
        assert all(r["ie"]["format"] == "json" for r in records)
        assert [g for r in records for g in r["ie"]["gold"]] == [["Ada", "type3"]]
    assert seen == {(tuple(SCHEMA.labels[:6]), tuple(SCHEMA.labels[6:]))}


def test_schema_builder_sorts_found_labels_and_keeps_a_fixed_order():
    b = SchemaBuilder("ee")
    b.add(
        Sample(
            "x y",
            "ee",
            "en",
            [{"type": "b", "trigger": "x", "arguments": [["y", "r2"], ["y", "r1"]]}],
            "g",
            "s",
        )
    )
    b.add(Sample("x", "ee", "en", [{"type": "a", "trigger": "x", "arguments": []}], "g2", "s"))
    schema = b.build()
    assert schema.labels == ["a", "b"] and schema.roles == {"a": [], "b": ["r1", "r2"]}
    assert schema.describe(["b"]) == {"b": ["r1", "r2"]}
    assert SchemaBuilder("ner", ["z", "a"]).build().labels == ["z", "a"]


@pytest.mark.parametrize(
    "gold,labels,reason",
    [
        ([["Ada", "person"]], None, None),
        ([["Bob", "person"]], None, "span_not_in_text"),
        ([["Ada ", "person"]], None, "span_whitespace"),
        ([["Ada", "per|son"]], None, "bad_label"),
        ([["Ada", "person"]], ["location"], "unknown_label"),
    ],
)
def test_check_sample_names_what_is_wrong(gold, labels, reason):
    assert check_sample(Sample("Ada was here.", "ner", "en", gold, "g", "s"), labels) == reason
