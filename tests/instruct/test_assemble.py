"""assemble: decontamination, dedup, the stratified split, the mixture, and counts that add up."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import convert, source_spec

from cama.instruct.assemble import assemble, mixture_targets, val_quota
from cama.instruct.records import iter_jsonl, write_jsonl


@pytest.fixture(scope="module")
def converted(tmp_path_factory, demo_config) -> dict[str, Path]:
    """Records of four demo sources (cot en, ner en, re zh, cot zh), converted once."""
    tmp = tmp_path_factory.mktemp("converted")
    out = {}
    for name, n in [("gsm8k_en", 120), ("wnut17_en", 150), ("duie_zh", None), ("tal_scq_zh", 80)]:
        spec = source_spec(demo_config, name, max_records=n)
        out[name] = convert(tmp, name, spec, demo_config)["paths"]["records"]
    return out


def run(tmp: Path, config: dict, inputs: dict, eval_sets=None, heldout=None, **changes) -> dict:
    settings = copy.deepcopy(config["instruct"])
    settings.update(changes)
    out = {k: tmp / f"{k}.jsonl" for k in ("train", "val", "rejected")}
    stats = assemble(
        inputs={k: [v] for k, v in inputs.items()},
        eval_sets=eval_sets or {},
        heldout=heldout or {},
        out_train=out["train"],
        out_val=out["val"],
        out_rejected=out["rejected"],
        out_stats=tmp / "stats.json",
        settings=settings,
        dedup_settings=config["dedup"],
    )
    return {"stats": stats, **{k: list(iter_jsonl(p)) for k, p in out.items()}}


def check_counts(result: dict) -> None:
    stats = result["stats"]
    for src, s in stats["sources"].items():
        parts = ["decontaminated", "duplicate_exact", "duplicate_near", "mixture_dropped", "val", "train"]
        assert s["records_in"] == sum(s[k] for k in parts), src
    assert len(result["train"]) == stats["train"]["records"]
    assert len(result["val"]) == stats["val"]["records"]
    assert len(result["rejected"]) == stats["rejected"]
    ids = [r["id"] for r in result["train"] + result["val"]]
    assert len(ids) == len(set(ids))


def test_a_plain_run_keeps_everything_splits_by_task_and_adds_up(tmp_path, demo_config, converted):
    res = run(tmp_path, demo_config, converted, val_records=40)
    check_counts(res)
    stats = res["stats"]
    n_in = sum(s["records_in"] for s in stats["sources"].values())
    assert len(res["val"]) == 40
    by_task = Counter(r["task"] for r in res["val"])
    train_by_task = Counter(r["task"] for r in res["train"]) + by_task
    for task, n in train_by_task.items():  # proportional to each task's records, ±1 unit of records
        assert abs(by_task[task] - 40 * n / sum(train_by_task.values())) <= 6, (task, by_task)
    # an IE sentence is never split between train and val
    groups = lambda rs: {r["ie"]["group"] for r in rs if "ie" in r}  # noqa: E731
    assert not groups(res["train"]) & groups(res["val"])
    assert stats["missing_cells"] == [c for c in stats["cells"] if c not in ("cot.en", "cot.zh", "ner.en", "re.zh")]
    assert len(res["train"]) + len(res["val"]) + len(res["rejected"]) == n_in


def test_evaluation_overlap_is_removed_by_the_ngrams_of_its_language(tmp_path, demo_config, converted):
    gsm = list(iter_jsonl(converted["gsm8k_en"]))
    wnut = list(iter_jsonl(converted["wnut17_en"]))
    tal = list(iter_jsonl(converted["tal_scq_zh"]))
    # an IE evaluation set holding one training sentence: all its label batches go
    target = next(r for r in wnut if len(r["ie"]["text"]) > 40)
    eval_rec = {**target, "id": "evalset/0/1#b0", "ie": {**target["ie"], "group": "evalset/0/1"}}
    write_jsonl(tmp_path / "evalset.jsonl", [eval_rec])
    # held-out documents: one quotes 13 words of a GSM8K question, one only 12 of another;
    # a Chinese one holds 20 characters of a TAL-SCQ analysis
    q13 = " ".join(gsm[3]["messages"][0]["content"].split()[:13])
    q12 = " ".join(gsm[5]["messages"][0]["content"].split()[:12])
    analysis = tal[2]["messages"][-1]["content"].replace(" ", "").replace("\n", "")
    zh20 = next(analysis[i : i + 20] for i in range(len(analysis)) if len(analysis[i : i + 20]) == 20)
    (tmp_path / "en.jsonl").write_text(
        json.dumps({"text": f"Some page. {q13} And more."}) + "\n" + json.dumps({"text": f"Other. {q12} end."}) + "\n"
    )
    (tmp_path / "zh.jsonl").write_text(json.dumps({"text": f"前文。{zh20}后文。", "lang": "zh"}, ensure_ascii=False) + "\n")
    res = run(
        tmp_path,
        demo_config,
        converted,
        eval_sets={"evalset": tmp_path / "evalset.jsonl"},
        heldout={"en": tmp_path / "en.jsonl", "zh": tmp_path / "zh.jsonl"},
        val_records=0,
    )
    check_counts(res)
    gone = {r["id"]: r["detail"] for r in res["rejected"] if r["reason"] == "decontaminated"}
    batches = {r["id"] for r in wnut if r["ie"]["group"] == target["ie"]["group"]}
    assert {i for i, d in gone.items() if d == "eval:evalset"} == batches
    assert gone[gsm[3]["id"]] == "heldout:en"
    assert gsm[5]["id"] not in gone  # 12 words are not enough
    assert gone[tal[2]["id"]] == "heldout:zh"
    assert res["stats"]["decontamination"]["records_by_origin"]["eval:evalset"] == len(batches)


def test_decontamination_files_are_read_too(tmp_path, demo_config, converted):
    gsm = list(iter_jsonl(converted["gsm8k_en"]))
    gallery = tmp_path / "cases.jsonl"
    gallery.write_text(json.dumps({"category": "reasoning", "prompt": gsm[0]["messages"][0]["content"]}) + "\n")
    settings = copy.deepcopy(demo_config["instruct"]["decontaminate"])
    settings["files"] = [str(gallery)]
    res = run(tmp_path, demo_config, {"gsm8k_en": converted["gsm8k_en"]}, decontaminate=settings, val_records=0)
    assert [(r["id"], r["detail"]) for r in res["rejected"]] == [(gsm[0]["id"], "file:cases.jsonl")]


def test_exact_and_near_duplicates_go_and_name_what_stays(tmp_path, demo_config, converted):
    gsm = list(iter_jsonl(converted["gsm8k_en"]))[:40]
    copy_exact = [{**r, "id": r["id"].replace("gsm8k_en", "copy"), "source": "copy"} for r in gsm[:10]]
    near = copy.deepcopy(gsm[20])
    words = near["messages"][1]["content"].split(" ")
    words[len(words) // 2] = "different"
    near["messages"][1]["content"] = " ".join(words)
    near["id"], near["source"] = "copy/0/99", "copy"
    write_jsonl(tmp_path / "gsm.jsonl", gsm)
    write_jsonl(tmp_path / "copy.jsonl", copy_exact + [near])
    res = run(tmp_path, demo_config, {"gsm8k_en": tmp_path / "gsm.jsonl", "copy": tmp_path / "copy.jsonl"}, val_records=0)
    check_counts(res)
    rej = {r["id"]: r for r in res["rejected"]}
    assert set(rej) == {r["id"] for r in copy_exact} | {"copy/0/99"}
    assert all(rej[r["id"]]["reason"] == "duplicate_exact" for r in copy_exact)
    assert rej[copy_exact[0]["id"]]["detail"] == f"duplicate of {gsm[0]['id']}"
    assert rej["copy/0/99"]["reason"] == "duplicate_near"
    assert rej["copy/0/99"]["detail"].startswith(f"duplicate of {gsm[20]['id']}, jaccard 0.")
    assert res["stats"]["sources"]["gsm8k_en"]["train"] == 40


def test_mixture_reweights_cells_and_source_weights_repeat(tmp_path, demo_config, converted):
    inputs = {k: converted[k] for k in ("gsm8k_en", "wnut17_en")}
    res = run(tmp_path, demo_config, inputs, val_records=0, mixture={"cot": 1, "ner": 3})
    check_counts(res)
    by_task = Counter(r["task"] for r in res["train"])
    total = by_task["cot"] + by_task["ner"]
    st = res["stats"]["sources"]
    before = sum(s["records_in"] - s["duplicate_exact"] - s["duplicate_near"] for s in st.values())
    assert total == before and by_task["cot"] == round(total / 4)
    # cot was sampled down (mixture_dropped), ner repeated (#r ids)
    assert st["gsm8k_en"]["mixture_dropped"] == 120 - by_task["cot"]
    assert sum("#r1" in r["id"] for r in res["train"]) == res["stats"]["sources"]["wnut17_en"]["train_repeats"] > 0
    # a source weight of 2 with no mixture: every record twice
    settings = copy.deepcopy(demo_config["instruct"]["sources"])
    settings["gsm8k_en"]["weight"] = 2.0
    res = run(tmp_path, demo_config, {"gsm8k_en": converted["gsm8k_en"]}, val_records=0, sources=settings)
    assert len(res["train"]) == 240 and res["stats"]["sources"]["gsm8k_en"]["train_repeats"] == 120


def test_mixture_targets_and_val_quota():
    counts = {"ner.en": {"a": 300, "b": 100}, "ner.zh": {"c": 100}, "cot.en": {"d": 500}}
    t = mixture_targets(counts, {"a": 1, "b": 1, "c": 1, "d": 1}, {"ie": 1, "cot": 1})
    assert sum(t["cot.en"].values()) == pytest.approx(500)
    assert sum(t["ner.en"].values()) + sum(t["ner.zh"].values()) == pytest.approx(500)
    assert t["ner.en"]["a"] == pytest.approx(3 * t["ner.en"]["b"])
    t = mixture_targets(counts, {"a": 1, "b": 1, "c": 1, "d": 1}, {"ner.zh": 1, "ie": 1})  # ner.zh beats ie
    assert sum(t["ner.zh"].values()) == pytest.approx(sum(t["ner.en"].values()))
    assert mixture_targets(counts, {"a": 0.5}, None)["ner.en"] == {"a": 150, "b": 100}
    assert val_quota({"ner": 900, "cot": 90, "code": 10}, 100) == {"ner": 90, "cot": 9, "code": 1}
    assert val_quota({"ner": 990, "cot": 9, "code": 1}, 10) == {"ner": 8, "cot": 1, "code": 1}
    assert sum(val_quota({"a": 5, "b": 7}, 100).values()) == 12


def test_translations_follow_their_originals_out_and_into_val(tmp_path, demo_config, converted):
    from cama.instruct.translate.stage import regenerate_ie, translated_record

    gsm = list(iter_jsonl(converted["gsm8k_en"]))[:30]
    wnut = list(iter_jsonl(converted["wnut17_en"]))[:40]
    dup = {**gsm[1], "id": gsm[1]["id"] + "x"}  # an exact duplicate of gsm[1], later in the file
    write_jsonl(tmp_path / "gsm.jsonl", gsm + [dup])
    zh = [translated_record(r, [{**m, "content": "译文" + str(i) + m["content"]} for m in r["messages"]], "zh", "both", "m")
          for i, r in enumerate(gsm + [dup])]
    write_jsonl(tmp_path / "gsm_zh.jsonl", zh)
    write_jsonl(tmp_path / "wnut_zh.jsonl", [regenerate_ie(r, "zh") for r in wnut])
    write_jsonl(tmp_path / "wnut.jsonl", wnut)
    settings = copy.deepcopy(demo_config["instruct"])
    settings.update(val_records=20)
    res = assemble(
        inputs={"gsm": [tmp_path / "gsm.jsonl", tmp_path / "gsm_zh.jsonl"], "wnut": [tmp_path / "wnut.jsonl", tmp_path / "wnut_zh.jsonl"]},
        eval_sets={}, heldout={}, out_train=tmp_path / "t.jsonl", out_val=tmp_path / "v.jsonl",
        out_rejected=tmp_path / "r.jsonl", out_stats=tmp_path / "s.json", settings=settings, dedup_settings=demo_config["dedup"],
    )
    val = {r["id"] for r in iter_jsonl(tmp_path / "v.jsonl")}
    train = {r["id"] for r in iter_jsonl(tmp_path / "t.jsonl")}
    rejected = {r["id"]: r for r in iter_jsonl(tmp_path / "r.jsonl")}
    # the duplicate goes, and so does its translation, which is no duplicate by its own text
    assert set(rejected) == {dup["id"], dup["id"] + "@zh"}
    assert rejected[dup["id"] + "@zh"]["reason"] == "duplicate_exact"
    # a translation is in val exactly when its original is
    for r in gsm + wnut:
        if r["id"] in val:
            assert r["id"] + "@zh" in val
        elif r["id"] in train:
            assert r["id"] + "@zh" in train
    assert any(i.endswith("@zh") for i in val) and res["val"]["records"] > 20
