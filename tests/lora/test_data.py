"""Records -> token ids + the answer mask through the one chat template; bad records counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _records import cmrc, humaneval, write_jsonl

from cama.errors import ConfigError
from cama.lora.data import (
    assistant_runs,
    load_tokenizer,
    prepare,
    read_examples,
    tokenize,
    tokenize_splits,
)


@pytest.fixture(scope="module")
def tok(tiny_base):
    return load_tokenizer(tiny_base)


def test_the_mask_covers_each_answer_and_its_eos(tok):
    for rec in cmrc(5) + humaneval(4):
        ids, mask = tokenize(tok, rec["messages"])
        answers = [m["content"] for m in rec["messages"] if m["role"] == "assistant"]
        runs = assistant_runs(mask)
        assert len(runs) == len(answers)  # one run per assistant turn, multi-turn included
        for (a, b), answer in zip(runs, answers, strict=True):
            assert ids[b - 1] == tok.eos_token_id  # the label sequence ends every answer with EOS
            assert tok.decode(ids[a : b - 1]).strip() == answer.strip()
        assert not mask[0] and ids[0] == tok.bos_token_id  # the prompt carries no loss
        # generation formats the prompt exactly as training did
        prompt = tok.apply_chat_template(rec["messages"][:-1], add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"]  # fmt: skip
        assert list(ids[: len(prompt)]) == list(prompt)


def test_bad_records_are_counted_with_their_reason(tmp_path, tok):
    good = cmrc(6)
    raw = (
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "x/1", "messages": "hello"}),
        json.dumps({"id": "x/2", "messages": [{"role": "robot", "content": "hi"}]}),
        json.dumps({"id": "x/3", "messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps({"id": "x/4", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]}),
    )
    path = write_jsonl(tmp_path / "train.jsonl", good, raw)
    rejected: list[dict] = []
    examples, stats = prepare(path, tok, cutoff_len=512, rejected=rejected)
    assert stats["records_in"] == 12 and len(examples) == stats["examples"] == 6
    assert stats["rejected"] == {"bad_json": 2, "no_messages": 1, "malformed_turn": 2, "bad_turn_order": 1}
    assert stats["records_in"] == stats["examples"] + sum(stats["rejected"].values())
    assert [(r["line"], r["reason"]) for r in rejected][:3] == [(7, "bad_json"), (8, "bad_json"), (9, "no_messages")]
    assert rejected[3]["id"] == "x/2" and all(r["file"] == str(path) for r in rejected)


def test_a_template_that_cannot_render_a_record_is_counted(tmp_path, tiny_base):
    tok = load_tokenizer(tiny_base)
    tok.chat_template = tok.chat_template.replace(
        "{%- if message['role'] == 'system' -%}", "{%- if message['role'] == 'system' -%}{{ raise_exception('no system turns') }}"
    )
    path = write_jsonl(tmp_path / "t.jsonl", cmrc(3) + humaneval(2))  # cmrc records have a system turn
    rejected: list[dict] = []
    examples, stats = prepare(path, tok, cutoff_len=512, rejected=rejected)
    assert stats["rejected"] == {"template_error": 3} and len(examples) == 2
    assert "no system turns" in rejected[0]["detail"]


def test_a_template_without_eos_stops_the_run(tmp_path, tiny_base):
    tok = load_tokenizer(tiny_base)
    tok.chat_template = tok.chat_template.replace("message['content'] + eos_token", "message['content']")
    path = write_jsonl(tmp_path / "t.jsonl", cmrc(2))
    with pytest.raises(ConfigError, match="does not end with EOS"):
        prepare(path, tok, cutoff_len=512)


def test_cutoff_policy_drop_or_truncate(tmp_path, tok):
    records = cmrc(20, context_chars=400)
    path = write_jsonl(tmp_path / "t.jsonl", records)
    lengths = [len(tokenize(tok, r["messages"])[0]) for r in records]
    cutoff = int(np.median(lengths))
    longer = sum(n > cutoff for n in lengths)
    assert 0 < longer < len(records)
    kept, s = prepare(path, tok, cutoff_len=cutoff, overlong="drop")
    assert s["rejected"] == {"overlong": longer} and len(kept) == len(records) - longer
    assert all(len(e) <= cutoff and e.input_ids[-1] == tok.eos_token_id for e in kept)
    cut, s = prepare(path, tok, cutoff_len=cutoff, overlong="truncate")
    # a truncation that leaves no answer token is dropped as no_target; the rest are kept, cut
    assert s["truncated"] + s["rejected"].get("no_target", 0) == longer and len(cut) == len(records) - s["rejected"].get("no_target", 0)
    assert all(len(e) <= cutoff for e in cut) and sum(e.truncated for e in cut) == s["truncated"]
    with pytest.raises(ConfigError, match="lora.overlong"):
        prepare(path, tok, cutoff_len=cutoff, overlong="wrap")


def test_tokenize_splits_writes_both_and_refuses_an_empty_validation_split(tmp_path, tiny_base):
    train = write_jsonl(tmp_path / "train.jsonl", cmrc(8) + humaneval(3))
    val = write_jsonl(tmp_path / "val.jsonl", cmrc(3, start=500), ("{broken",))
    stats = tokenize_splits(model_dir=tiny_base, train=train, val=val, out_dir=tmp_path / "data", cutoff_len=512)
    assert stats["train"]["examples"] == 11 and stats["val"]["examples"] == 3
    assert len(read_examples(tmp_path / "data" / "train.parquet")) == 11
    assert [json.loads(x)["reason"] for x in (tmp_path / "data" / "rejected.jsonl").read_text().splitlines()] == ["bad_json"]
    empty = write_jsonl(tmp_path / "empty.jsonl", [], ("{broken",))
    with pytest.raises(ConfigError, match=r"empty\.jsonl: no usable val example"):
        tokenize_splits(model_dir=tiny_base, train=train, val=empty, out_dir=tmp_path / "d2", cutoff_len=512)
    assert not (tmp_path / "d2" / "stats.json").exists()
