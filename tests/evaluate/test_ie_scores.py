"""IE scoring on hand-made answers whose P/R/F1 are worked out by hand.

One sentence asked in two label batches (人名 + 地名, then 机构), gold 张三/人名, 北京/地名,
华为/机构; the second batch is always answered exactly, the first as each case says.
"""

from __future__ import annotations

import json

import pytest

from cama.errors import CamaError
from cama.evaluate.ie import ie_table, read_eval_set, score_model, score_set, tuples
from cama.instruct.ie import render

LABELS0, LABELS1 = ["人名", "地名"], ["机构"]
GOLD0, GOLD1 = [["张三", "人名"], ["北京", "地名"]], [["华为", "机构"]]


def record(rid, task, fmt, labels, gold, group, lang="zh"):
    return {"id": rid, "task": task, "lang": lang, "source": "hand",
            "messages": [{"role": "user", "content": "?"}, {"role": "assistant", "content": render(task, fmt, gold, labels)}],
            "ie": {"text": "张三在北京的华为工作", "labels": labels, "format": fmt, "gold": gold, "group": group}}  # fmt: skip


NER = [record("s1#b0", "ner", "json", LABELS0, GOLD0, "s1"), record("s1#b1", "ner", "json", LABELS1, GOLD1, "s1")]
EXACT1 = render("ner", "json", GOLD1, LABELS1)


@pytest.mark.parametrize(
    "answer0,tp,pred,gold,f1,errors",
    [
        ('{"人名": ["张三"], "地名": ["北京"]}', 3, 3, 3, 1.0, 0),  # exact
        ('{"人名": ["张三"], "地名": []}', 2, 2, 3, 0.8, 0),  # partial: P 1, R 2/3
        ('{"人名": ["张三", "张三"], "地名": ["北京"]}', 3, 4, 3, 0.8571, 0),  # duplicated: P 3/4, R 1
        ('{"人名": ["北京"], "地名": ["张三"]}', 1, 3, 3, 0.3333, 0),  # wrong types: only 华为 matches
        ("人名: 张三, 地名: 北京", 1, 1, 3, 0.5, 1),  # unparseable: its gold are misses, P 1, R 1/3
        ("", 1, 1, 3, 0.5, 1),  # empty
        ('{"人名": ["张三"], "公司": ["华为"]}', 1, 1, 3, 0.5, 1),  # a label that was not asked
        (' ```json\n{"人名": [" 张三 "], \'地名\': ["北京"]}\n``` ', 3, 3, 3, 1.0, 0),  # lenient: fence, spaces, quotes
    ],
)
def test_ner_micro_scores_of_known_answers(answer0, tp, pred, gold, f1, errors):
    res = score_set(NER, {"s1#b0": answer0, "s1#b1": EXACT1})
    s = res["scores"]["ner"]
    assert (s["tp"], s["pred"], s["gold"]) == (tp, pred, gold)
    assert s["f1"] == pytest.approx(f1, abs=1e-4)
    assert res["format_errors"] == errors and res["records"] == 2 and res["sentences"] == 1


def test_ee_triggers_and_arguments_are_scored_apart():
    gold = [{"type": "袭击", "trigger": "打", "arguments": [["甲", "袭击者"], ["乙", "目标"]]}]
    recs = [record("e#b0", "ee", "lines", ["袭击"], gold, "e")]
    res = score_set(recs, {"e#b0": "袭击: 打 | 袭击者: 甲 | 目标: 丙"})
    assert res["scores"]["ee_trigger"]["f1"] == 1.0
    a = res["scores"]["ee_argument"]
    assert (a["tp"], a["pred"], a["gold"], a["f1"]) == (1, 2, 2, 0.5)


def test_re_tuples_and_empty_answers():
    gold = [["张三", "就职于", "华为"]]
    recs = [record("r#b0", "re", "tuple", ["就职于", "出生地"], gold, "r"),
            record("q#b0", "re", "tuple", ["就职于"], [], "q")]  # fmt: skip
    res = score_set(recs, {"r#b0": "(张三, 就职于, 华为)\n(张三, 出生地, 北京)", "q#b0": "NAN"})
    s = res["scores"]["re"]
    assert (s["tp"], s["pred"], s["gold"], s["f1"]) == (1, 2, 1, 0.6667)
    assert res["format_errors"] == 0 and res["sentences"] == 2


def test_duplicate_gold_tuples_count_as_a_multiset():
    ev = [{"type": "t", "trigger": "a", "arguments": [["x", "r"]]}, {"type": "t", "trigger": "b", "arguments": [["x", "r"]]}]
    assert tuples("ee", ev)["ee_argument"][("t", "x", "r")] == 2


def test_model_scores_per_set_task_and_language(tmp_path):
    en = [record("w#b0", "ner", "tuple", ["person"], [["Ann", "person"]], "w", lang="en")]
    sets = {"zh_set": NER, "en_set": en}
    gens = [{"set": "zh_set", "id": "s1#b0", "text": "oops", "finish_reason": "length"},
            {"set": "zh_set", "id": "s1#b1", "text": EXACT1, "finish_reason": "eos"},
            {"set": "en_set", "id": "w#b0", "text": "(Ann, person)", "finish_reason": "eos"}]  # fmt: skip
    res = score_model(sets, gens)
    assert res["by_lang"]["zh"]["scores"]["ner"]["f1"] == 0.5
    assert res["by_lang"]["en"]["scores"]["ner"]["f1"] == 1.0
    ner = res["by_task"]["ner"]["scores"]["ner"]
    assert (ner["tp"], ner["pred"], ner["gold"]) == (2, 2, 4)
    assert res["overall"]["format_errors"] == 1 and res["overall"]["format_error_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert res["overall"]["finish"] == {"length": 1, "eos": 2}
    with pytest.raises(CamaError, match="no generation"):
        score_model(sets, gens[1:])
    table = ie_table({"sets": {"zh_set": {"task": "ner", "lang": "zh", "gold": {"ner": 3}}},
                      "models": {"m": res}})  # fmt: skip
    assert "| zh_set | ner | zh | ner | 3 | 50.0 (100/33) |" in table


def test_eval_sets_in_an_unknown_format_are_named(tmp_path):
    bad = tmp_path / "set.csv"
    bad.write_text("a,b\n")
    with pytest.raises(CamaError, match="set.csv"):
        read_eval_set(bad)
    bad = tmp_path / "set.jsonl"
    bad.write_text(json.dumps(NER[0]) + "\n" + json.dumps({"task": "ner", "messages": []}) + "\n")
    with pytest.raises(CamaError, match=r"set.jsonl:2: not an IE record"):
        read_eval_set(bad)
