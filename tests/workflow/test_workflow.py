"""The demo workflow end to end: lint, DAG, a real run, no-op rerun, targeted rerun, report.

These run Snakemake as a user would, in a temporary working directory, so that
results/ in the checkout is never touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from cama.config import validate_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
validate_config(DEMO)  # with the schema's defaults filled in
SOURCES = list(DEMO["sources"])
INSTRUCT_SOURCES = list(DEMO["instruct"]["sources"])
IE_SETS = list(DEMO["evaluate"]["ie"]["sets"])
EVAL_MODELS = ["base", "pretrained", "lora", "merged"]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    # shell rules call `python`: make it this interpreter, as an activated venv would
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """The rules a dry run would run, with their job counts (from Snakemake's job stats table)."""
    out = snakemake(workdir, "-n", *targets).stdout
    jobs = {}
    for line in out.split("Job stats:")[-1].splitlines() if "Job stats:" in out else []:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    snakemake(workdir, "--cores", "2")
    return workdir


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_dag_draws_every_stage(tmp_path):
    dot = snakemake(tmp_path, "--dag").stdout
    assert dot.lstrip().startswith("digraph")
    for rule in ("download_source", "normalise_source", "filter_source", "dedup_corpus", "pack_shards", "pretrain", "eval_bpb",
                 "convert_instruct_source", "build_ie_eval_set", "assemble_instruct", "lora_data", "lora", "merge_lora"):
        assert rule in dot


def test_dry_run_plans_one_job_per_source_and_stage(tmp_path):
    jobs = planned_jobs(tmp_path)
    n = len(SOURCES)
    assert jobs == {
        "all": 1,
        "download_source": n,
        "normalise_source": n,
        "filter_source": n,
        "dedup_corpus": 1,
        "corpus_report": 1,
        "heldout_split": 1,
        "train_tokenizer": 1,
        "pack_shards": 1,
        "pack_report": 1,
        "init_base_model": 1,
        "pretrain": 1,
        "eval_bpb": 1,
        # instruct: one download per instruction source and per IE evaluation set
        "download_instruct_source": len(INSTRUCT_SOURCES) + len(IE_SETS),
        "convert_instruct_source": len(INSTRUCT_SOURCES),
        "build_ie_eval_set": len(IE_SETS),
        "translate_instruct_source": sum(bool(s.get("translate")) for s in DEMO["instruct"]["sources"].values()),
        "assemble_instruct": 1,
        "instruct_report": 1,
        # lora: tokenize, tune, merge
        "lora_data": 1,
        "lora": 1,
        "merge_lora": 1,
        # evaluate: one generation job per model, then the scores and the gallery
        "eval_ie_generate": len([m for m in DEMO["evaluate"]["ie"]["models"] if m in EVAL_MODELS]),
        "eval_ie": 1,
        "eval_cases": 1,
        "weight_diff": 1,
        "publish_folder": 1,
    }


def test_demo_run_accounts_for_every_document(demo_run):
    results = demo_run / "results"
    dedup = json.loads((results / "dedup/stats.json").read_text())
    total_in = 0
    for source in SOURCES:
        manifest = json.loads((results / "raw" / source / "manifest.json").read_text())
        assert manifest["files"], source
        norm = json.loads((results / f"docs/{source}.stats.json").read_text())
        filt = json.loads((results / f"clean/{source}.stats.json").read_text())
        # normalise: every record read is a document, a rejection or a quarantine entry
        assert norm["records_in"] == norm["docs_out"] + sum(norm["rejected"].values()) + sum(norm["quarantined"].values())
        assert pq.ParquetFile(results / f"docs/{source}.parquet").metadata.num_rows == norm["docs_out"]
        scope = pq.read_table(results / f"docs/{source}.rejected.parquet", columns=["scope"]).column(0).to_pylist()
        assert scope.count("doc") == sum(norm["rejected"].values())
        assert scope.count("line") == sum(v["lines"] for v in norm["layout"]["removed"].values())
        assert pq.ParquetFile(results / f"docs/{source}.quarantine.parquet").metadata.num_rows == sum(norm["quarantined"].values())
        # filter: every document is kept or rejected with a rule
        assert filt["docs_in"] == norm["docs_out"]
        assert filt["docs_in"] == filt["kept"] + sum(filt["rejected"].values())
        assert pq.ParquetFile(results / f"clean/{source}.parquet").metadata.num_rows == filt["kept"]
        scope = pq.read_table(results / f"clean/{source}.rejected.parquet", columns=["scope"]).column(0).to_pylist()
        assert scope.count("doc") == sum(filt["rejected"].values())
        assert scope.count("line") == sum(v["sampled"] for v in filt["lines_removed"].values())
        # bytes too: rejected documents + lines removed from kept ones + what was kept
        removed = sum(v["bytes"] for v in filt["lines_removed"].values())
        assert filt["bytes_in"] == filt["bytes_rejected"] + removed + filt["bytes_filtered"]
        assert pq.ParquetFile(results / f"clean/{source}.scores.parquet").metadata.num_rows == filt["docs_in"]
        # dedup: every kept document is kept again or recorded as a duplicate
        per = dedup["per_source"][source]
        assert per["in"] == filt["kept"] == per["kept"] + per["exact"] + per["near"]
        assert pq.ParquetFile(results / f"dedup/{source}.parquet").metadata.num_rows == per["kept"]
        assert per["kept"] > 0, f"{source}: nothing survived the demo"
        total_in += norm["records_in"]
    assert dedup["docs_in"] == dedup["kept"] + dedup["exact_duplicates"] + dedup["near_duplicates"]
    assert total_in > 4000  # a few thousand real documents


def test_demo_curated_sources_keep_their_text_and_books_are_paragraphs(demo_run):
    """Issue 10: filters made for the web keep what a curated source is made of."""
    results = demo_run / "results"
    kinds = {s: spec.get("kind", "web") for s, spec in yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["sources"].items()}
    for source, kind in kinds.items():
        filt = json.loads((results / f"clean/{source}.stats.json").read_text())
        if kind != "web":
            assert filt["loss"]["docs"] <= 0.03 and filt["loss"]["bytes"] <= 0.05, (source, filt["loss"])
    norm = json.loads((results / "docs/gutenberg_en.stats.json").read_text())
    assert norm["rejected"] == {"layout.gutenberg_footer": 2, "layout.gutenberg_header": 2}
    docs = pq.read_table(results / "clean/gutenberg_en.parquet", columns=["text"]).column(0).to_pylist()
    assert not any("Project Gutenberg" in d for d in docs)
    lines = [line for d in docs for line in d.split("\n") if line.strip()]
    assert sum(len(line) > 300 for line in lines) > 300  # whole paragraphs, not 70-character lines
    heldout = json.loads((results / "heldout/stats.json").read_text())
    assert all("decontamination" in heldout["langs"][lang] for lang in ("zh", "en", "code"))


def test_demo_languages_and_opencc(demo_run):
    docs = pq.read_table(demo_run / "results/dedup/drcd_zh.parquet").to_pylist()
    assert docs and all(d["lang"] == "zh" for d in docs)
    text = "".join(d["text"] for d in docs)
    assert "台湾" in text and "臺灣" not in text  # DRCD's traditional characters were simplified


def test_demo_packs_every_language_into_shards_megatron_can_name(demo_run):
    blend = json.loads((demo_run / "results/shards/blend.json").read_text())
    by_lang = {}
    for d in blend["datasets"]:
        by_lang[d["lang"]] = by_lang.get(d["lang"], 0) + d["tokens"]
        prefix = demo_run / "results/shards" / d["prefix"]
        assert prefix.with_suffix(".bin").stat().st_size > 0 or d["tokens"] == 0
    assert set(by_lang) == {"zh", "en", "code"} and all(v > 10_000 for v in by_lang.values())
    heldout = {lang: (demo_run / f"results/heldout/{lang}.jsonl").read_text().splitlines() for lang in by_lang}
    assert all(len(lines) >= 20 for lines in heldout.values())


def test_demo_pretraining_lowers_bits_per_byte_in_every_language(demo_run):
    bpb = json.loads((demo_run / "results/eval/bpb.json").read_text())["models"]
    for lang in ("zh", "en", "code"):
        assert bpb["pretrained"][lang]["bpb"] < 0.95 * bpb["base"][lang]["bpb"], lang


def test_demo_model_loads_with_plain_transformers(demo_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = demo_run / "results/pretrain/model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok("北京是", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_second_run_does_nothing(demo_run):
    assert planned_jobs(demo_run) == {}


def test_deleting_one_output_reruns_only_what_depends_on_it(demo_run):
    target = "results/clean/c4_en.parquet"
    (demo_run / target).unlink()
    # asking for it reruns its own job only
    assert planned_jobs(demo_run, target) == {"filter_source": 1}
    snakemake(demo_run, "--cores", "2", target)
    # then at most what reads it is out of date, and nothing upstream. (Snakemake skips
    # dedup_corpus when the rewritten Parquet file has the same checksum, as it should:
    # the filter is deterministic. The stats differ in their timings, so the report reruns.)
    plan = planned_jobs(demo_run)
    downstream = {"dedup_corpus", "corpus_report", "heldout_split", "train_tokenizer", "pack_shards", "pack_report",
                  "init_base_model", "pretrain", "eval_bpb", "assemble_instruct", "instruct_report",
                  "lora_data", "lora", "merge_lora", "eval_ie_generate", "eval_ie", "eval_cases",
                  "weight_diff", "publish_folder"}
    assert {"corpus_report", "all"} <= set(plan) <= downstream | {"all"}
    snakemake(demo_run, "--cores", "2")
    assert planned_jobs(demo_run) == {}


def test_report_has_funnel_rejections_and_clusters(demo_run):
    snakemake(demo_run, "--report", "report.html")
    page = (demo_run / "report.html").read_text(errors="replace")
    for name in ("funnel.png", "rejections.html", "dedup_clusters.png", "instruct_table.html", "instruct_mix.png",
                 "loss.png"):
        assert name in page


# --- instruct ---------------------------------------------------------------------------------------


def test_demo_instruction_set_follows_the_record_contract_and_adds_up(demo_run):
    from cama.instruct.ie import parse
    from cama.instruct.records import check_messages

    results = demo_run / "results" / "instruct"
    stats = json.loads((results / "stats.json").read_text())
    n_in = 0
    for source in INSTRUCT_SOURCES:
        conv = json.loads((results / f"sources/{source}.stats.json").read_text())
        assert conv["read"] == conv["kept"] + sum(conv["quarantined"].values())
        assert pq.ParquetFile(results / f"sources/{source}.quarantine.parquet").metadata.num_rows == sum(conv["quarantined"].values())
        s = stats["sources"][source]
        assert s["records_in"] == conv["records"] == sum(
            s[k] for k in ("decontaminated", "duplicate_exact", "duplicate_near", "mixture_dropped", "val", "train"))
        assert s["train"] > 0, source
        n_in += s["records_in"]
    train = [json.loads(line) for line in (results / "train.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (results / "val.jsonl").read_text().splitlines()]
    rejected = (results / "rejected.jsonl").read_text().splitlines()
    assert len(train) == stats["train"]["records"] and len(val) == DEMO["instruct"]["val_records"]
    assert stats["train"]["unique_records"] + len(val) + len(rejected) == n_in
    for r in train + val:
        assert check_messages(r["messages"]) is None
        if "ie" in r:
            assert parse(r["task"], r["ie"]["format"], r["messages"][-1]["content"], r["ie"]["labels"]) == r["ie"]["gold"]
    cells = {(r["task"], r["lang"]) for r in train}
    # all six tasks in both languages, except zh code: the demo has no redistributable zh code set
    assert cells == {(t, lang) for t in ("general", "cot", "code", "ner", "re", "ee") for lang in ("zh", "en")} - {("code", "zh")}
    assert stats["missing_cells"] == ["code.zh"]
    assert {r["task"] for r in val} == {"general", "cot", "code", "ner", "re", "ee"}
    # the held-out HumanEval documents are not trained on
    assert stats["decontamination"]["records_by_origin"].get("heldout:code", 0) > 0
    # provider none: the sources set to be translated stay untranslated, and the stats say why
    for source, t in stats["translation"].items():
        assert t["provider"] == "none" and t["untranslated"] == {"provider_none": t["records_in"]}
        assert t["records_in"] == stats["sources"][source]["records_in"]
    if stats["translation"]:
        assert "Provider none: nothing was sent" in (demo_run / "results/report/instruct_table.html").read_text()


def test_demo_ie_eval_sets_ask_every_label(demo_run):
    for name in IE_SETS:
        stats = json.loads((demo_run / f"results/instruct/eval/{name}.stats.json").read_text())
        records = [json.loads(line) for line in (demo_run / f"results/instruct/eval/{name}.jsonl").read_text().splitlines()]
        assert records and stats["kept"] > 0
        groups: dict[str, list] = {}
        for r in records:
            groups.setdefault(r["ie"]["group"], []).append(r["ie"]["labels"])
        assert all(b == stats["ie"]["batches"] for b in groups.values())


# --- lora -------------------------------------------------------------------------------------------


def test_demo_lora_tunes_merges_and_accounts_for_every_record(demo_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cama.chat import CHAT_TEMPLATE

    results = demo_run / "results"
    data = json.loads((results / "lora/data/stats.json").read_text())
    rejected = (results / "lora/data/rejected.jsonl").read_text().splitlines()
    for split in ("train", "val"):
        s = data[split]
        n = len((results / f"instruct/{split}.jsonl").read_text().splitlines())
        assert s["records_in"] == n == s["examples"] + sum(s["rejected"].values()), split
    assert len(rejected) == sum(sum(data[s]["rejected"].values()) for s in ("train", "val"))
    stats = json.loads((results / "lora/stats.json").read_text())
    evals = [e["eval_loss"] for e in stats["eval_curve"]]
    assert stats["eval_curve"][0]["step"] == 0 and evals[-1] < evals[0]  # validation loss falls from the base's
    assert stats["world_size"] == 2 and stats["attention"] == "sdpa"
    for key in ("tokens_per_s", "real_tokens_per_s", "peak_memory_gb"):
        assert stats[key] > 0, key
    # the merged model: a full HF folder with the template; it answers in the template's format
    merged = results / "lora/merged"
    tok = AutoTokenizer.from_pretrained(str(merged))
    assert tok.chat_template == CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(str(merged))
    prompt = tok.apply_chat_template([{"role": "user", "content": "北京是哪个国家的首都？"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]

# --- evaluate ---------------------------------------------------------------------------------------


def test_demo_ie_scores_every_model_on_every_set(demo_run):
    ie = json.loads((demo_run / "results/eval/ie.json").read_text())
    assert set(ie["models"]) == set(EVAL_MODELS) and set(ie["sets"]) == set(IE_SETS)
    generations = {m: (demo_run / f"results/eval/ie/{m}.jsonl").read_text().splitlines() for m in EVAL_MODELS}
    for m, res in ie["models"].items():
        records = sum(s["records"] for s in ie["sets"].values())
        assert res["overall"]["records"] == records == len(generations[m])
        assert sum(res["overall"]["finish"].values()) == records  # every answer ended somehow, and counted
        for name, meta in ie["sets"].items():
            for kind, gold in meta["gold"].items():
                s = res["by_set"][name]["scores"][kind]
                assert s["gold"] == gold > 0 and 0 <= s["tp"] <= min(s["pred"], s["gold"])
    # the demo's base model is random: it never writes a well-formed answer
    assert ie["models"]["base"]["overall"]["format_error_rate"] > 0.9


@pytest.mark.xfail(
    strict=True,  # the day the demo teaches, this fails as XPASS and the marker goes
    reason="issue 13, open: the demo's 2-layer model cannot copy the asked labels into its "
    "answer (100 % format errors even on a base pretrained 25x longer, 5.3-5.6 nats); see "
    "README, Generation and evaluation, 'Does the pipeline teach?'",
)
def test_demo_lora_learns_the_answer_formats(demo_run):
    """Does the pipeline teach? The tuned model writes parseable answers far more often than the
    pretrained one (F1 of a 2-layer model is reported, not tested)."""
    overall = {m: r["overall"] for m, r in json.loads((demo_run / "results/eval/ie.json").read_text())["models"].items()}
    assert overall["lora"]["format_error_rate"] < 0.5 * overall["pretrained"]["format_error_rate"]
    assert overall["merged"]["format_error_rate"] < 0.5 * overall["pretrained"]["format_error_rate"]


def test_demo_case_gallery_marks_every_output(demo_run):
    rows = [json.loads(line) for line in (demo_run / "results/eval/cases.jsonl").read_text().splitlines()]
    models = {m for m in DEMO["evaluate"]["cases"]["models"] if m in EVAL_MODELS}
    assert {r["model"] for r in rows} == models
    assert {r["finish_reason"] for r in rows} <= {"eos", "length", "stop"}
    page = (demo_run / "results/eval/cases.md").read_text()
    categories = {r["category"] for r in rows}
    assert {"translation", "code", "reasoning", "harmlessness", "ie"} <= categories
    assert all(f"## {c}" in page for c in categories)
    assert page.count("cut at length") + page.count("— EOS") >= len(rows)


def test_report_has_every_stage_on_one_page(demo_run):
    snakemake(demo_run, "--report", "report_all.html")
    page = (demo_run / "report_all.html").read_text(errors="replace")
    wanted = ["funnel.png", "rejections.html", "dedup_clusters.png", "sample_lengths.png", "loss.png", "bpb.png",
              "ie_table.html", "ie_f1.png", "instruct_table.html", "instruct_mix.png", "cases.html"]
    for name in wanted:
        assert name in page, name
    assert page.count("loss.png") >= 2 and "LoRA" in page  # the LoRA stage's loss curve beside pretraining's


# ----------------------------------------------------------------------------- publish (issue 14)


def test_demo_publishes_a_diff_a_card_and_sums(demo_run):
    from huggingface_hub import ModelCard

    pub = demo_run / "results/publish"
    proc = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=pub, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((pub / "diff/manifest.json").read_text())
    assert manifest["format"] == "cama-weight-diff" and manifest["stats"]["tensors"] > 0
    card = ModelCard.load(pub / "README.md")
    assert "**These weights are a diff, not a model.**" in card.text
    assert "`lora/`: the LoRA adapter" in card.text and (pub / "lora/adapter_config.json").is_file()
    # the card claims the published (merged) model's scores only: its bits per byte and IE F1
    bpb = json.loads((demo_run / "results/eval/bpb.json").read_text())["models"]["merged"]
    ie = json.loads((demo_run / "results/eval/ie.json").read_text())["models"]["merged"]
    claimed = {(r.metric_type, r.dataset_config): r.metric_value for r in card.data.eval_results}
    assert {c: v for (t, c), v in claimed.items() if t == "bits_per_byte"} == {
        lang: round(v["bpb"], 4) for lang, v in bpb.items()
    }
    assert claimed[("f1", "overall / all_tuples")] == round(ie["overall"]["all_tuples"]["f1"], 4)
    for source in SOURCES:  # every corpus, with its licence, in the data table
        assert f"| {source} |" in card.text
    assert "unknown (see the source)" not in card.text
    assert not (demo_run / "results/publish.upload.json").exists()  # no repo id: no upload


def test_demo_model_recovers_bit_exactly_from_base_and_diff(demo_run, tmp_path):
    out = tmp_path / "recovered"
    cmd = [sys.executable, "-m", "cama.cli", "recover", "--base", "results/pretrain/base", "--diff", "results/publish/diff", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=demo_run, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    model = demo_run / "results/lora/merged"  # the published model: the LoRA merged into the pretrained one
    files = sorted(p.name for p in model.iterdir() if not p.name.startswith("."))  # not Snakemake's timestamp
    assert sorted(p.name for p in out.iterdir()) == files
    for name in files:
        assert (model / name).read_bytes() == (out / name).read_bytes(), name
