"""The hub-ready folder: diff, adapter, tokenizer with the chat template, model card, SHA256SUMS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cama.chat import CHAT_TEMPLATE
from cama.publish.errors import ChecksumError, MissingFileError
from cama.publish.folder import build_publish_folder, verify_sums, write_card_html

SETTINGS = {
    "repo_id": None,
    "card": {
        "model_name": "cama-tiny",
        "license": "apache-2.0",
        "base_model": None,
        "language": ["zh", "en"],
        "tags": ["llama", "weight-diff"],
        "datasets": [],
        "data_licenses": {"wiki_zh": "CC BY-SA 3.0"},
    },
}


@pytest.fixture(scope="module")
def evals(tiny_base, tuned_tiny, demo_data, tmp_path_factory) -> Path:
    """eval/bpb.json as the eval_bpb rule writes it, for the base and the tuned model."""
    from cama.evaluate.bpb import evaluate_bpb

    out = tmp_path_factory.mktemp("eval") / "bpb.json"
    evaluate_bpb(
        models={"base": tiny_base, "pretrained": tuned_tiny},
        heldout={"zh": demo_data["heldout"]["zh"], "en": demo_data["heldout"]["en"]},
        out_json=out,
        settings={"max_docs": 3, "max_length": 64},
    )
    return out


def corpus_stats(tmp: Path) -> dict:
    """The stats files of the corpus stages, in their formats, for two sources."""
    tmp.mkdir(parents=True, exist_ok=True)
    norm = {"wiki_zh": (120, 110), "c4_en": (200, 190)}
    paths = {"sources": list(norm), "normalise": [], "filter": []}
    for s, (read, out) in norm.items():
        (tmp / f"{s}.n.json").write_text(json.dumps({"records_in": read, "docs_out": out, "bytes_out": out * 1000}))
        (tmp / f"{s}.f.json").write_text(json.dumps({"docs_in": out, "kept": out - 30, "bytes_kept": (out - 30) * 900}))
        paths["normalise"].append(tmp / f"{s}.n.json")
        paths["filter"].append(tmp / f"{s}.f.json")
    dedup = {"per_source": {"wiki_zh": {"kept": 70, "bytes_kept": 70_000}, "c4_en": {"kept": 150, "bytes_kept": 1_500_000}}}
    (tmp / "dedup.json").write_text(json.dumps(dedup))
    blend = {"datasets": [{"source": "wiki_zh", "lang": "zh", "tokens": 12345}, {"source": "c4_en", "lang": "en", "tokens": 54321}]}
    (tmp / "blend.json").write_text(json.dumps(blend))
    return {**paths, "dedup": tmp / "dedup.json", "blend": tmp / "blend.json"}


@pytest.fixture(scope="module")
def folder(tiny_diff, tuned_tiny, evals, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pub")
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 16}))
    (adapter / "adapter_model.safetensors").write_bytes(b"not really weights")
    out = tmp / "publish"
    build_publish_folder(
        diff=tiny_diff, tuned=tuned_tiny, out=out, settings=SETTINGS, adapter=adapter,
        evals=[evals], corpus=corpus_stats(tmp / "stats"),
    )  # fmt: skip
    return out


def test_folder_layout_and_hard_linked_diff(folder, tiny_diff):
    assert (folder / "README.md").is_file() and (folder / "SHA256SUMS").is_file()
    assert (folder / "lora" / "adapter_config.json").is_file()
    for p in tiny_diff.iterdir():
        assert (folder / "diff" / p.name).stat().st_ino == p.stat().st_ino  # no second copy of the weights
    assert not list(folder.parent.glob("publish.tmp-*"))


def test_sha256sums_checks_with_the_real_tool(folder):
    proc = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    on_disk = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    assert listed == on_disk


def test_tokenizer_carries_the_chat_template(folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.chat_template == CHAT_TEMPLATE
    text = tok.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("### Assistant:\n")


def test_card_metadata_and_text(folder, evals):
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.license == "apache-2.0" and data.language == ["zh", "en"]
    assert data.pipeline_tag == "text-generation" and "weight-diff" in data.tags
    bpb = json.loads(evals.read_text())["models"]["pretrained"]  # the published model's scores
    got = {r.dataset_name: r.metric_value for r in data.eval_results}
    assert got == {f"held-out {lang}": round(bpb[lang]["bpb"], 4) for lang in ("en", "zh")}
    assert {r.metric_type for r in data.eval_results} == {"bits_per_byte"}
    text = card.text
    assert "**These weights are a diff, not a model.**" in text
    assert "cama download --repo-id <org>/cama-tiny --recover --base /path/to/base --out cama-tiny" in text
    assert "cama chat cama-tiny" in text and "vllm serve" in text
    assert "`lora/`: the LoRA adapter" in text
    # the data it saw, with the funnel and the licences
    assert "| wiki_zh | zh | 120 | 110 | 80 | 70 | 0.1 | 12,345 | CC BY-SA 3.0 |" in text
    assert "| c4_en | en | 200 | 190 | 160 | 150 | 1.5 | 54,321 | unknown (see the source) |" in text
    assert "| **all** |  | 320 | 300 | 240 | 220 | 1.6 | 66,666 |  |" in text


def test_card_without_adapter_says_so(tiny_diff, tuned_tiny, tmp_path):
    build_publish_folder(diff=tiny_diff, tuned=tuned_tiny, out=tmp_path / "p", settings=SETTINGS)
    text = (tmp_path / "p" / "README.md").read_text()
    assert "No LoRA adapter in this release." in text and not (tmp_path / "p" / "lora").exists()
    assert "No evaluation results were given" in text


def test_card_shows_the_instruction_data_with_licences(tiny_diff, tuned_tiny, tmp_path):
    """The instruct stage's stats.json, in the shape assemble writes it."""
    counts = {"records_in": 100, "decontaminated": 2, "duplicate_exact": 3, "duplicate_near": 1,
              "mixture_dropped": 4, "val": 10, "train": 80}  # fmt: skip
    stats = {
        "train": {"records": 95, "tokens": 12000, "unique_records": 80},
        "val": {"records": 10},
        "table": [{"task": "ner", "lang": "zh", "source": "wiki_zh", "records": 95, "tokens": 12000}],
        "sources": {"wiki_zh": counts},
    }
    (tmp_path / "instruct.json").write_text(json.dumps(stats))
    build_publish_folder(diff=tiny_diff, tuned=tuned_tiny, out=tmp_path / "p", settings=SETTINGS,
                         instruct_stats=tmp_path / "instruct.json")  # fmt: skip
    text = (tmp_path / "p" / "README.md").read_text()
    assert "| wiki_zh | ner | zh | 100 | 2 | 4 | 4 | 10 | 80 | 12,000 | CC BY-SA 3.0 |" in text
    assert "Training set: 95 records (12,000 tokens" in text


def test_card_html_for_the_report(folder, tmp_path):
    write_card_html(folder, tmp_path / "card.html")
    page = (tmp_path / "card.html").read_text()
    assert "These weights are a diff" in page and "diff/manifest.json" in page


def test_verify_sums_names_and_removes_a_damaged_file(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "README.md").write_text("tampered")
    with pytest.raises(ChecksumError, match="README.md"):
        verify_sums(copy)
    assert not (copy / "README.md").exists()  # the next download fetches it again
    with pytest.raises(MissingFileError, match="README.md"):
        verify_sums(copy)


def test_scores_are_the_published_models_only(tmp_path, monkeypatch):
    from cama.publish.card import eval_metrics, published_model_name

    monkeypatch.chdir(tmp_path)
    result = {"models": {"base": {"zh": {"bpb": 5.0}}, "pretrained": {"zh": {"bpb": 4.0}}},
              "paths": {"base": {"model": "results/pretrain/base", "adapter": None},
                        "pretrained": {"model": "results/pretrain/model", "adapter": None}}}  # fmt: skip
    assert published_model_name(result, "results/pretrain/model") == "pretrained"
    assert published_model_name(result, tmp_path / "results/pretrain/model") == "pretrained"
    assert published_model_name(result, "results/lora/merged") is None
    (tmp_path / "bpb.json").write_text(json.dumps(result))
    meta, tables = eval_metrics([tmp_path / "bpb.json"], "results/lora/merged")
    assert meta == [] and tables[0][2] == [["zh / bpb", "5.0000", "4.0000"]]  # shown, not claimed


def test_ie_scores_name_the_merged_model_not_the_adapter_on_its_base(tmp_path, monkeypatch):
    """eval/ie.json records each model as {model, adapter}: the merged folder is the published one;
    'lora' (the pretrained folder plus an adapter) is not, though its model path differs."""
    from cama.publish.card import eval_metrics, published_model_name

    monkeypatch.chdir(tmp_path)
    result = {"models": {"lora": {"ner": {"f1": 0.5}}, "merged": {"ner": {"f1": 0.6}}},
              "paths": {"lora": {"model": "results/lora/merged", "adapter": "results/lora/adapter"},
                        "merged": {"model": "results/lora/merged", "adapter": None}}}  # fmt: skip
    assert published_model_name(result, "results/lora/merged") == "merged"
    (tmp_path / "ie.json").write_text(json.dumps(result))
    meta, _ = eval_metrics([tmp_path / "ie.json"], "results/lora/merged")
    assert [m["metric_value"] for m in meta] == [0.6]
