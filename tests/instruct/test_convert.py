"""The convert stage on the demo's real sources, and on bad input: counts add up, nothing is lost."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest
from conftest import convert, source_spec

from cama.errors import ConfigError
from cama.instruct.ie import parse
from cama.instruct.records import check_messages, iter_jsonl

# every demo source: (name, expected task, at least this many records)
DEMO = [
    ("self_instruct_en", "general", 175),
    ("identity", "general", 91),
    ("gsm8k_en", "cot", 300),
    ("tal_scq_zh", "cot", 300),
    ("tal_scq_en", "cot", 300),
    ("mbpp_en", "code", 200),
    ("humaneval_en", "code", 100),
    ("wnut17_en", "ner", 400),
    ("crossner_ai_en", "ner", 100),
    ("uner_zh", "ner", 300),
    ("fewrel_en", "re", 320),
    ("redocred_en", "re", 15),
    ("duie_zh", "re", 49),
    ("phee_en", "ee", 200),
    ("fewfc_zh", "ee", 350),
]


@pytest.mark.parametrize("name,task,at_least", DEMO)
def test_demo_source_converts_with_counts_that_add_up(tmp_path, demo_config, name, task, at_least):
    stats = convert(tmp_path, name, source_spec(demo_config, name), demo_config)
    assert stats["read"] == stats["kept"] + sum(stats["quarantined"].values())
    assert stats["kept"] >= 0.95 * stats["read"]
    records = list(iter_jsonl(stats["paths"]["records"]))
    assert len(records) == stats["records"] >= at_least
    assert pq.ParquetFile(stats["paths"]["quarantine"]).metadata.num_rows == sum(stats["quarantined"].values())
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        assert r["task"] == task and r["source"] == name and r["lang"] in ("zh", "en")
        assert check_messages(r["messages"]) is None
        if task in ("ner", "re", "ee"):
            ie = r["ie"]
            answer = r["messages"][-1]["content"]
            assert parse(task, ie["format"], answer, ie["labels"]) == ie["gold"]
            assert ie["text"] in r["messages"][0]["content"]
            assert r["id"].startswith(ie["group"] + "#b")


def test_demo_details_placeholders_opencc_langs(tmp_path, demo_config):
    ident = list(iter_jsonl(convert(tmp_path, "identity", source_spec(demo_config, "identity"), demo_config)["paths"]["records"]))
    assert {r["lang"] for r in ident} == {"zh", "en"}
    assert sum(r["lang"] == "zh" for r in ident) == 75
    assert not any("{{" in m["content"] for r in ident for m in r["messages"])
    assert sum("CaMA" in r["messages"][-1]["content"] for r in ident) > 60
    uner = list(iter_jsonl(convert(tmp_path, "uner_zh", source_spec(demo_config, "uner_zh"), demo_config)["paths"]["records"]))
    text = "".join(r["ie"]["text"] for r in uner)
    assert "这" in text and "這" not in text  # traditional characters were simplified, spans with them
    assert {lab for r in uner for lab in r["ie"]["labels"]} == {"人物", "地点", "机构"}


def test_an_unfilled_placeholder_is_quarantined(tmp_path, demo_config):
    stats = convert(tmp_path, "identity", source_spec(demo_config, "identity", fill={"name": "CaMA"}), demo_config)
    assert stats["quarantined"] == {"unfilled_placeholder": stats["read"] - stats["kept"]}
    assert stats["quarantined"]["unfilled_placeholder"] > 50  # most mention {{author}}


def test_bad_records_are_quarantined_with_file_line_and_reason(tmp_path, demo_config):
    rows = [
        {"text": "张三出生于北京", "spo_list": [{"predicate": "出生地", "subject": "张三", "object": "北京"}]},
        "{not json",
        {"text": "李四是演员", "spo_list": [{"predicate": "职业", "subject": "李四", "object": "歌手"}]},
        {"text": "王五的父亲是王六", "spo_list": [{"predicate": "父亲", "subject": "王五", "object": "王六"}]},
        {"spo_list": []},
    ]
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    data = ("\n".join(lines) + "\n").encode() + b"\xff\xfe bad utf-8\n"
    path = tmp_path / "data" / "duie_bad.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(data))
    spec = source_spec(demo_config, "duie_zh", uri=str(path), labels=["出生地", "职业"])
    stats = convert(tmp_path, "duie_bad", spec, demo_config)
    q = pq.read_table(stats["paths"]["quarantine"]).to_pylist()
    assert [(r["file"], r["line"], r["reason"]) for r in q] == [
        ("duie_bad.jsonl.gz", 2, "malformed_json"),
        ("duie_bad.jsonl.gz", 3, "span_not_in_text"),
        ("duie_bad.jsonl.gz", 4, "unknown_label"),
        ("duie_bad.jsonl.gz", 5, "missing_text"),
        ("duie_bad.jsonl.gz", 6, "invalid_utf8"),
    ]
    assert q[0]["raw"] == b"{not json"
    assert stats["read"] == 6 and stats["kept"] == 1
    assert stats["ie"]["schema"] == ["出生地", "职业"]


def test_offset_errors_are_quarantined_not_guessed(tmp_path, demo_config):
    good = {"id": "1", "content": "甲公司收购乙公司", "events": [{"type": "收购", "mentions": [
        {"word": "收购", "span": [3, 5], "role": "trigger"}, {"word": "乙公司", "span": [5, 8], "role": "obj-org"}]}]}
    off = json.loads(json.dumps(good))
    off["events"][0]["mentions"][1]["span"] = [4, 7]  # one off, as real data sometimes is
    path = tmp_path / "fewfc.jsonl"
    path.write_text(json.dumps(good, ensure_ascii=False) + "\n" + json.dumps(off, ensure_ascii=False) + "\n")
    stats = convert(tmp_path, "fewfc_bad", source_spec(demo_config, "fewfc_zh", uri=str(path)), demo_config)
    assert stats["kept"] == 1 and stats["quarantined"] == {"span_mismatch": 1}


def test_max_records_reads_no_more(tmp_path, demo_config):
    stats = convert(tmp_path, "gsm8k_en", source_spec(demo_config, "gsm8k_en", max_records=7), demo_config)
    assert stats["read"] == 7 and stats["records"] == 7


def test_a_wrong_format_task_or_option_names_the_key(tmp_path, demo_config):
    with pytest.raises(ConfigError, match="gsm8k_en.task: format gsm8k makes cot records, not ner"):
        convert(tmp_path, "gsm8k_en", source_spec(demo_config, "gsm8k_en", task="ner"), demo_config)
    with pytest.raises(ConfigError, match="wnut17_en.options.token_col: unknown option of format conll"):
        convert(tmp_path, "wnut17_en", source_spec(demo_config, "wnut17_en", options={"token_col": 1}), demo_config)


@pytest.mark.parametrize("name", ["wnut17_dev", "uner_zh_dev", "fewrel_dev", "duie_dev", "phee_dev", "fewfc_dev"])
def test_eval_sets_ask_every_label_in_fixed_batches(tmp_path, demo_config, name):
    spec = source_spec(demo_config, name)
    stats = convert(tmp_path, name, spec, demo_config, eval_set=True)
    records = list(iter_jsonl(stats["paths"]["records"]))
    schema, batches = stats["ie"]["schema"], stats["ie"]["batches"]
    assert sum(batches, []) == schema
    by_group: dict[str, list] = {}
    for r in records:
        assert r["ie"]["format"] == spec["ie_format"]
        by_group.setdefault(r["ie"]["group"], []).append(r["ie"]["labels"])
    assert len(by_group) == stats["kept"]
    assert all(b == batches for b in by_group.values())
    # the gold of all batches of a sentence is the sentence's whole gold
    assert sum(len(r["ie"]["gold"]) for r in records) > 0


def test_config_validation_names_every_bad_instruct_key(demo_config):
    import copy

    from cama.config import validate_config

    bad = copy.deepcopy(demo_config)
    bad["instruct"]["sources"]["gsm8k_en"]["task"] = "ner"
    bad["instruct"]["sources"]["wnut17_en"]["options"] = {"token_col": 1}
    bad["evaluate"]["ie"]["sets"]["gsm8k_en"] = copy.deepcopy(bad["evaluate"]["ie"]["sets"]["duie_dev"])
    with pytest.raises(ConfigError) as e:
        validate_config(bad)
    assert sorted(e.value.problems) == [
        "evaluate.ie.sets.gsm8k_en: also an instruct source; both are fetched to raw/instruct/gsm8k_en",
        "instruct.sources.gsm8k_en.task: format gsm8k makes cot records, not ner",
        "instruct.sources.wnut17_en.options.token_col: unknown option of format conll (known: join, sep, tag_column, token_column, token_strip)",
    ]
