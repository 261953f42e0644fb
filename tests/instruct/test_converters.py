"""Converters, one format at a time: what a record of each format becomes, and what is refused.

Formats the demo ships are also converted from the real files in test_convert.py; the ones
whose data cannot be redistributed (sharegpt, CLUENER, MSRA, DuEE, FinRE) are checked here on
records written in their published layouts.
"""

from __future__ import annotations

import pytest

from cama.errors import RecordError
from cama.instruct.converters import FORMATS, Context
from cama.instruct.converters.base import Raw, read_blocks
from cama.instruct.converters.relation import read_finre


def ctx(task: str, lang: str = "en", **options) -> Context:
    return Context("s", lang, task, {**FORMATS[next(f for f in FORMATS if task in FORMATS[f].tasks)].options, **options})


def convert(fmt: str, obj, task: str, lang: str = "en", **options):
    c = Context("s", lang, task, {**FORMATS[fmt].options, **options})
    return FORMATS[fmt].convert(obj, c)


def test_alpaca_with_system_and_history_becomes_a_multi_turn_conversation():
    [conv] = convert(
        "alpaca",
        {"instruction": "And in French?", "input": "", "output": "Bonjour", "system": "Be brief.",
         "history": [["Say hello", "Hello"]]},
        "general",
    )
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert conv.messages[1]["content"] == "Say hello" and conv.messages[-1]["content"] == "Bonjour"


def test_alpaca_field_names_can_be_mapped():
    [conv] = convert("alpaca", {"query": "1+1?", "response": "2"}, "general",
                     fields={"instruction": "query", "output": "response"})
    assert conv.messages == [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]


@pytest.mark.parametrize(
    "obj",
    [
        {"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "q1"},
                           {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                           {"from": "gpt", "value": "a2"}]},
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
                      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a2"}]},
    ],
)
def test_sharegpt_reads_both_layouts_with_every_turn(obj):
    [conv] = convert("sharegpt", obj, "general")
    assert [(m["role"], m["content"]) for m in conv.messages] == [
        ("system", "sys"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]


def test_sharegpt_unknown_speaker_is_a_malformed_turn():
    with pytest.raises(RecordError, match="malformed_turn"):
        convert("sharegpt", {"conversations": [{"from": "narrator", "value": "x"}]}, "general")


def test_self_instruct_makes_one_record_per_instance():
    convs = convert("self_instruct", {"instruction": "Antonym?", "name": "ant", "instances": [
        {"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}]}, "general")
    assert [c.messages[0]["content"] for c in convs] == ["Antonym?\n\nhot", "Antonym?\n\nup"]


def test_gsm8k_keeps_the_rationale_drops_calculator_marks_and_normalises_the_answer():
    [conv] = convert("gsm8k", {"question": "How many?", "answer": "2 x 500 = <<2*500=1000>>1000 items.\n#### 1,000"}, "cot")
    assert conv.messages[-1]["content"] == "2 x 500 = 1000 items.\nThe answer is 1000."
    assert conv.meta["answer"] == "1000"
    [zh] = convert("gsm8k", {"question": "多少？", "answer": "3+4=7\n#### 7"}, "cot", "zh")
    assert zh.messages[-1]["content"].endswith("答案是 7。")
    with pytest.raises(RecordError, match="missing_final_answer"):
        convert("gsm8k", {"question": "q", "answer": "no final line"}, "cot")


def test_tal_scq_lists_the_options_and_ends_with_the_choice():
    obj = {"problem": "1+1=?", "answer_option_list": [[{"aoVal": "A", "content": "1"}], [{"aoVal": "B", "content": "2"}]],
           "answer_analysis": ["1+1=2"], "answer_value": "B"}
    [conv] = convert("tal_scq", obj, "cot", "zh")
    assert conv.messages[0]["content"].endswith("1+1=?\nA. 1\nB. 2")
    assert conv.messages[-1]["content"] == "1+1=2\n答案：B"
    with pytest.raises(RecordError, match="missing_rationale"):
        convert("tal_scq", {**obj, "answer_analysis": []}, "cot")


def test_mbpp_and_humaneval_fence_the_code():
    [m] = convert("mbpp", {"text": "Add.", "code": "def add(a, b):\r\n\treturn a + b", "test_list": ["assert add(1, 2) == 3"]}, "code")
    assert m.messages[0]["content"].endswith("assert add(1, 2) == 3")
    assert m.messages[-1]["content"] == "```python\ndef add(a, b):\n\treturn a + b\n```"
    [h] = convert("humaneval", {"task_id": "CPP/1", "prompt": "int f(){\n", "canonical_solution": "return 1;}\n"}, "code")
    assert h.messages[0]["content"].startswith("Complete the following C++ function.")
    assert h.messages[-1]["content"] == "```cpp\nint f(){\nreturn 1;}\n```"


# --- NER -------------------------------------------------------------------------------------------


def test_conll_bio_iob1_and_bioes_become_spans_of_the_joined_text():
    lines = ["New\tB-LOC", "York\tI-LOC", "is\tO", "big\tO", "Ada\tI-PER", "Lovelace\tE-PER", "IBM\tS-ORG"]
    [item] = convert("conll", lines, "ner")
    assert item.text == "New York is big Ada Lovelace IBM"
    assert item.gold == [["New York", "LOC"], ["Ada Lovelace", "PER"], ["IBM", "ORG"]]


def test_conll_characters_joined_without_spaces_comments_and_columns():
    lines = ["# sent_id = 1", "# text = 张三在北京。", "1\t张三\tB-PER\t-\t-", "2\t在\tO\t-\t-",
             "3\t北\tB-LOC\t-\t-", "4\t京\tI-LOC\t-\t-", "5\t。\tO\t-\t-"]
    [item] = convert("conll", lines, "ner", "zh", token_column=1, tag_column=2)
    assert item.text == "张三在北京。" and item.gold == [["张三", "PER"], ["北京", "LOC"]]
    # Weibo NER: a character and its position in the word, which token_strip removes
    [w] = convert("conll", ["张0\tB-PER.NAM", "三1\tI-PER.NAM", "好0\tO"], "ner", "zh", token_strip=r"\d$")
    assert w.text == "张三好" and w.gold == [["张三", "PER.NAM"]]


def test_conll_hashtag_token_is_not_a_comment_and_a_bad_tag_is_refused():
    [item] = convert("conll", ["#\tO", "love\tO", "Paris\tB-location"], "ner")
    assert item.text == "# love Paris" and item.gold == [["Paris", "location"]]
    with pytest.raises(RecordError, match="bad_tag"):
        convert("conll", ["Paris\tLOCATION"], "ner")


def test_conll_blocks_are_split_on_whitespace_only_lines(tmp_path):
    # WNUT-17's training file separates some sentences with a line holding only a tab
    path = tmp_path / "x.conll"
    path.write_bytes(b"a\tO\nb\tB-person\n\t\nc\tO\n\nd\tO\n")
    blocks = list(read_blocks(path, "x.conll", {}))
    assert [(b.number, b.obj) for b in blocks] == [(1, ["a\tO", "b\tB-person"]), (4, ["c\tO"]), (6, ["d\tO"])]


def test_cluener_checks_closed_interval_offsets():
    obj = {"text": "浙商银行企业信贷部叶老桂博士", "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}}
    [item] = convert("cluener", obj, "ner", "zh")
    assert item.gold == [["浙商银行", "company"], ["叶老桂", "name"]]
    with pytest.raises(RecordError, match="span_mismatch"):
        convert("cluener", {**obj, "label": {"name": {"叶老桂": [[8, 10]]}}}, "ner", "zh")


def test_msra_word_tag_pairs():
    [item] = convert("msra", "我/o 爱/o 北京/ns 天安门/ns 和/o 毛泽东/nr", "ner", "zh")
    assert item.text == "我爱北京天安门和毛泽东"
    assert item.gold == [["北京", "ns"], ["天安门", "ns"], ["毛泽东", "nr"]]


# --- RE --------------------------------------------------------------------------------------------


def test_duie_reads_1_0_and_2_0_objects():
    obj = {"text": "《清穿》的作者是青玉", "spo_list": [
        {"predicate": "作者", "subject": "清穿", "object": "青玉"},
        {"predicate": "作者", "subject": "清穿", "object": {"@value": "青玉"}}]}
    [item] = convert("duie", obj, "re", "zh")
    assert item.gold == [["清穿", "作者", "青玉"], ["清穿", "作者", "青玉"]]


def test_fewrel_uses_token_positions_and_relation_names():
    inst = {"tokens": ["Wilton", "Bridge", " ", "crosses", "the", "River", "Wye", "."],
            "h": ["wilton bridge", "Q1", [[0, 1]]], "t": ["river wye", "Q2", [[5, 6]]]}
    c = Context("s", "en", "re", {"relation_names": "x"}, {"relation_names": {"P177": ["crosses", "obstacle"]}})
    [item] = FORMATS["fewrel"].convert(("P177", inst), c)
    assert item.text == "Wilton Bridge crosses the River Wye ."
    assert item.gold == [["Wilton Bridge", "crosses", "River Wye"]]
    c.aux = {}
    assert FORMATS["fewrel"].convert(("P177", inst), c)[0].gold[0][1] == "P177"


def test_docred_names_entities_by_their_first_mention():
    doc = {"title": "t", "sents": [["Ada", "was", "born", "in", "London", "."], ["She", "wrote", "."]],
           "vertexSet": [[{"name": "Ada", "pos": [0, 1], "sent_id": 0}], [{"name": "London", "pos": [4, 5], "sent_id": 0}]],
           "labels": [{"h": 0, "t": 1, "r": "P19"}]}
    c = Context("s", "en", "re", {}, {"relation_names": {"P19": ["place of birth", ""]}})
    [item] = FORMATS["docred"].convert(doc, c)
    assert item.text == "Ada was born in London . She wrote ."
    assert item.gold == [["Ada", "place of birth", "London"]]


def test_finre_groups_the_lines_of_one_sentence_and_skips_unknown(tmp_path):
    path = tmp_path / "finre.txt"
    s1, s2 = "东方航空与上航合并", "甲公司收购乙公司"
    path.write_text(f"东方航空\t上航\tunknown\t{s1}\n\n东方航空\t上航\t合并\t{s1}\n\n甲公司\t乙公司\t收购\t{s2}\n\nbad line\n")
    items = list(read_finre(path, "finre.txt", {}))
    assert [i.number for i in items if isinstance(i, Raw)] == [1, 5]
    assert items[-1].reason == "malformed_line" and items[-1].line == 7
    [first] = FORMATS["finre"].convert(items[0].obj, ctx("re", "zh"))
    assert first.text == s1 and first.gold == [["东方航空", "合并", "上航"]]


# --- EE --------------------------------------------------------------------------------------------


def test_duee_checks_trigger_and_argument_offsets():
    text = "雀巢裁员4000人"
    obj = {"text": text, "event_list": [{"event_type": "组织关系-裁员", "trigger": "裁员", "trigger_start_index": 2,
                                          "arguments": [{"role": "裁员方", "argument": "雀巢", "argument_start_index": 0},
                                                        {"role": "裁员人数", "argument": "4000人", "argument_start_index": 4}]}]}
    [item] = convert("duee", obj, "ee", "zh")
    assert item.gold == [{"type": "组织关系-裁员", "trigger": "裁员", "arguments": [["雀巢", "裁员方"], ["4000人", "裁员人数"]]}]
    obj["event_list"][0]["arguments"][0]["argument_start_index"] = 1
    with pytest.raises(RecordError, match="span_mismatch"):
        convert("duee", obj, "ee", "zh")


def test_fewfc_needs_a_trigger():
    obj = {"content": "甲收购乙", "events": [{"type": "收购", "mentions": [{"word": "甲", "span": [0, 1], "role": "sub-org"}]}]}
    with pytest.raises(RecordError, match="missing_trigger"):
        convert("fewfc", obj, "ee", "zh")


def test_phee_sub_arguments_are_dotted_roles_and_attributes_are_not_arguments():
    text = "Insulin-induced lipoatrophy in a diabetic patient."
    obj = {"context": text, "annotations": [{"events": [{
        "event_type": "Adverse_event",
        "Trigger": {"text": [["induced"]], "start": [[8]]},
        "Treatment": {"text": [["Insulin"]], "start": [[0]], "Drug": {"text": [["Insulin"]], "start": [[0]]}},
        "Effect": {"text": [["lipoatrophy"]], "start": [[16]]},
        "Speculated": {"text": [["may"]], "start": [[0]], "value": True}}]}]}
    [item] = convert("phee", obj, "ee")
    assert item.gold == [{"type": "Adverse_event", "trigger": "induced",
                          "arguments": [["Insulin", "Treatment"], ["Insulin", "Treatment.Drug"], ["lipoatrophy", "Effect"]]}]


def test_every_format_is_documented_and_feeds_a_task():
    for name, fmt in FORMATS.items():
        assert fmt.tasks and fmt.name == name
        assert name in (fmt.convert.__module__ and __import__(fmt.convert.__module__, fromlist=["x"]).__doc__)
