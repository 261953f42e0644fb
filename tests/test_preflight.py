"""``cama validate``: each planted mistake of a real run is named, all of them at once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cama.config import validate_config
from cama.preflight import Context, check_blend, preflight

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def real_run(tmp_path, tiny_base) -> dict:
    """The demo's config turned into a real run on the tiny base model (256 positions)."""
    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["model"]["base"] = str(base)
    config["pack"]["max_length"] = 128
    config["pretrain"].update(micro_batch_size=4, global_batch_size=16)
    return config


def check(config: dict, processes: int | None = 2, directory: Path | None = None) -> list[str]:
    config = validate_config(config)
    return preflight(config, Context(directory=directory or Path.cwd(), workflow=ROOT, processes=processes))


def test_a_real_run_on_a_good_base_model_passes(real_run):
    assert check(real_run) == []


def test_the_demo_config_passes():
    assert check(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())) == []


def test_a_missing_base_model_is_named(real_run, tmp_path):
    real_run["model"]["base"] = str(tmp_path / "llama-13b")
    problems = check(real_run)
    assert any(p.startswith("model.base: ") and "llama-13b does not exist" in p for p in problems), problems


def test_a_base_model_without_weights_or_tokenizer(real_run):
    base = Path(real_run["model"]["base"])
    (base / "model.safetensors").unlink()
    (base / "tokenizer.model").unlink()
    problems = check(real_run)
    assert any(p.startswith("model.base: ") and "no weights" in p for p in problems), problems
    assert any(p.startswith("model.base: ") and "no tokenizer.model" in p for p in problems), problems


def test_a_folder_transformers_cannot_read(real_run):
    (Path(real_run["model"]["base"]) / "config.json").write_text("{not json")
    problems = check(real_run)
    assert any(p.startswith("model.base: transformers cannot read") for p in problems), problems


def test_a_tokenizer_with_a_different_vocabulary_is_named(real_run, tmp_path, demo_data):
    from cama.pack.tokenizer import train_tokenizer

    texts = [json.loads(line)["text"] for p in demo_data["heldout"].values() for line in p.read_text().splitlines()]
    train_tokenizer(texts, tmp_path / "other", vocab_size=1000, character_coverage=0.995)
    real_run["pack"]["tokenizer"]["path"] = str(tmp_path / "other")
    problems = check(real_run)
    assert any(p.startswith("pack.tokenizer.path: ") and "is not model.base's tokenizer" in p for p in problems), problems


def test_a_missing_tokenizer_path_is_named(real_run, tmp_path):
    real_run["pack"]["tokenizer"]["path"] = str(tmp_path / "no-tokenizer")
    problems = check(real_run)
    assert any(p.startswith("pack.tokenizer.path: ") and "no-tokenizer does not exist" in p for p in problems), problems


def test_a_vocabulary_larger_than_the_embedding_rows(real_run):
    cfg = Path(real_run["model"]["base"]) / "config.json"
    data = json.loads(cfg.read_text())
    data["vocab_size"] = 100
    cfg.write_text(json.dumps(data))
    problems = check(real_run)
    assert any("more than the 100 embedding rows of model.base" in p for p in problems), problems


def test_max_length_over_the_models_positions_is_named(real_run):
    real_run["pack"]["max_length"] = 512
    problems = check(real_run)
    assert any(p.startswith("pack.max_length: 512 exceeds") and "max_position_embeddings 256" in p for p in problems), problems


def test_a_global_batch_that_does_not_divide_is_named(real_run):
    real_run["pretrain"].update(micro_batch_size=4, global_batch_size=20)
    problems = check(real_run, processes=2)
    assert any(p.startswith("pretrain.global_batch_size: 20 is not divisible") and "2 processes" in p for p in problems)
    assert check(real_run, processes=5) == []  # 20 = 4 × 5


def test_a_missing_source_file_is_named(real_run):
    real_run["sources"]["c4_en"]["uri"] = "data/demo/en/no_such_file.jsonl.gz"
    problems = check(real_run)
    assert any(p.startswith("sources.c4_en.uri: no file at") for p in problems), problems


def test_urls_and_hub_ids_are_left_to_the_download_stage(real_run):
    real_run["sources"]["c4_en"]["uri"] = "https://example.org/c4.jsonl.gz"
    real_run["sources"]["wikitext_en"]["uri"] = "hf://datasets/allenai/c4"
    assert check(real_run) == []


def test_every_problem_is_reported_at_once(real_run, tmp_path):
    real_run["pack"]["tokenizer"]["path"] = str(tmp_path / "no-tokenizer")
    real_run["pack"]["max_length"] = 512
    real_run["pretrain"]["global_batch_size"] = 18
    real_run["sources"]["c4_en"]["uri"] = "nowhere/*.jsonl"
    keys = {p.split(":")[0] for p in check(real_run)}
    assert {"pack.tokenizer.path", "pack.max_length", "pretrain.global_batch_size", "sources.c4_en.uri"} <= keys


def test_the_blend_is_checked_against_the_model_at_pretraining_start(tmp_path, tiny_base, demo_data):
    blend = json.loads(demo_data["blend"].read_text())
    assert check_blend(demo_data["blend"], tiny_base) == []
    wrong = tmp_path / "blend.json"
    wrong.write_text(json.dumps({**blend, "vocab_size": 32000, "eos_id": 7}))
    problems = check_blend(wrong, tiny_base)
    assert any("vocab_size 32000" in p and f"{blend['vocab_size']}" in p for p in problems), problems
    assert any("eos_id 7 differs from" in p and "eos_token_id 2" in p for p in problems), problems


def test_cama_validate_names_each_problem_and_exits_1(real_run, tmp_path):
    real_run["pack"]["tokenizer"]["path"] = str(tmp_path / "no-tokenizer")
    real_run["pretrain"]["global_batch_size"] = 18
    configfile = tmp_path / "run.yaml"
    configfile.write_text(yaml.safe_dump(real_run, allow_unicode=True))
    cmd = [sys.executable, "-m", "cama", "validate", "--configfile", str(configfile), "--workflow", str(ROOT),
           "--processes", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "pack.tokenizer.path:" in proc.stderr and "pretrain.global_batch_size: 18" in proc.stderr
    good = subprocess.run([*cmd[:5], str(ROOT / "config" / "config.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert good.returncode == 0 and "valid" in good.stdout, good.stderr
