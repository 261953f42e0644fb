"""The example configs for real runs: each validates, and Snakemake plans the whole run from it.

``config/llama-13b.yaml`` (the seed's run, 3 nodes × 8 GPUs through ``profiles/llama-13b``) is
planned against a tiny fake LLaMA folder standing in for the 13B; ``config/gpu-1.yaml`` (the
demo corpus, a TinyLlama-shape model, one GPU) is read after the demo config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LLAMA = ROOT / "config" / "llama-13b.yaml"
GPU1 = ROOT / "config" / "gpu-1.yaml"
DEMO = ROOT / "config" / "config.yaml"


def _env() -> dict:
    return {**os.environ, "CAMA_CODE_TREE": str(ROOT / "src"),  # a real code tree stands in for the site's
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip


def validate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cama", "validate", *args], capture_output=True, text=True,
                          cwd=cwd, env=_env())  # fmt: skip


def dry_run(workdir: Path, *args: str) -> tuple[dict[str, int], str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "-n", "-p", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout
    print(out.split("Job stats:")[-1].split("\n\n")[0])  # the planned jobs, for the log (pytest -s)
    jobs = {}
    for line in out.split("Job stats:")[-1].splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs, out


@pytest.fixture
def fake_llama(tmp_path, tiny_base) -> Path:
    """A tiny LLaMA folder in the shape of a real one: config.json, safetensors, tokenizer.model."""
    folder = tmp_path / "llama-13b"
    shutil.copytree(tiny_base, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["max_position_embeddings"] = 2048  # LLaMA's; the seed's samples are 1024 tokens
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_llama_13b_validate_names_the_missing_base_model(tmp_path):
    proc = validate("--configfile", str(LLAMA), "--profile", str(ROOT / "profiles" / "llama-13b"), cwd=tmp_path)
    assert proc.returncode == 1
    problems = [line for line in proc.stderr.splitlines() if line.startswith("  - ")]
    assert problems == ["  - model.base: /models/llama-13b does not exist (a local HF LLaMA folder: config.json, "
                        "weights, tokenizer)"], proc.stderr  # fmt: skip


def test_llama_13b_plans_the_seeds_run_against_a_model_folder(tmp_path, fake_llama):
    config = yaml.safe_load(LLAMA.read_text())
    config["model"]["base"] = str(fake_llama)
    configfile = tmp_path / "llama-13b.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    profile = ROOT / "profiles" / "llama-13b"
    proc = validate("--configfile", str(configfile), "--profile", str(profile), cwd=tmp_path)
    assert proc.returncode == 0 and "24 training processes" in proc.stdout, proc.stderr
    jobs, out = dry_run(tmp_path / "run", "--configfile", str(configfile), "--workflow-profile", str(profile))
    n = len(config["sources"])
    corpus_to_pretraining = {"download_source": n, "normalise_source": n, "filter_source": n, "dedup_corpus": 1,
                             "corpus_report": 1, "heldout_split": 1, "train_tokenizer": 1, "pack_shards": 1,
                             "pack_report": 1, "pretrain": 1, "eval_bpb": 1}  # fmt: skip
    assert {k: jobs.get(k) for k in corpus_to_pretraining} == corpus_to_pretraining  # (later stages add theirs)
    assert "init_base_model" not in jobs  # a real base model: nothing is initialised
    launch = next(line for line in out.splitlines() if "cama pretrain" in line)
    assert "--gpus 8" in launch and f"--base-model {fake_llama}" in launch  # 24 GPUs over 3 nodes
    settings = json.loads(re.search(r"--settings '(\{.*\})'", launch).group(1))
    assert settings["global_batch_size"] == 1440 and settings["zero"]["offload_param"] == "cpu"


def test_llama_13b_global_batch_is_checked_against_the_profiles_gpus(tmp_path, fake_llama):
    config = yaml.safe_load(LLAMA.read_text())
    config["model"]["base"] = str(fake_llama)
    config["pretrain"]["global_batch_size"] = 1000
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(config, allow_unicode=True))
    proc = validate("--configfile", str(configfile), "--profile", str(ROOT / "profiles" / "llama-13b"), cwd=tmp_path)
    assert proc.returncode == 1 and "pretrain.global_batch_size: 1000 is not divisible" in proc.stderr
    assert "× 24 processes = 480" in proc.stderr


def test_gpu_1_plans_a_tinyllama_on_one_gpu(tmp_path):
    proc = validate("--configfile", str(DEMO), str(GPU1), "--processes", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    jobs, out = dry_run(tmp_path / "run", "--configfile", str(DEMO), str(GPU1),
                        "--set-resources", "pretrain:gpu=1", "eval_bpb:gpu=1")  # fmt: skip
    assert jobs["init_base_model"] == 1 and jobs["pretrain"] == 1 and jobs["eval_bpb"] == 1
    launch = next(line for line in out.splitlines() if "cama pretrain" in line)
    settings = json.loads(re.search(r"--settings '(\{.*\})'", launch).group(1))
    assert "--gpus 1" in launch
    assert settings["torch_compile"] is True and settings["seq_length"] == 2048 and settings["zero"]["stage"] == "auto"
    assert settings["save_total_limit"] == 2  # the demo's keys not in gpu-1.yaml still hold
