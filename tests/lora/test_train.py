"""Real LoRA runs through ``cama lora`` on CPU: the outputs, and kill -9 then resume.

The resume test runs the same job twice: straight through, and killed (SIGKILL to the whole
process group, launcher included) right after a checkpoint is complete, then rerun. The rerun
must start at the step after that checkpoint, train on exactly the rows the uninterrupted run
trained at each step, and log the same losses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _records import cmrc, humaneval, write_jsonl

pytestmark = pytest.mark.slow

SETTINGS = {
    "r": 8, "alpha": 16, "cutoff_len": 256, "pack_length": 512, "eval_steps": 3,
    "train": {"max_steps": 9, "global_batch_size": 2, "lr": 3e-3, "warmup_steps": 1, "save_steps": 3,
              "logging_steps": 1, "dataloader_workers": 0, "log_sample_ids": True},
}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_base) -> Path:
    from cama.lora.data import tokenize_splits

    d = tmp_path_factory.mktemp("lora_data")
    train = write_jsonl(d / "train.jsonl", cmrc(40) + humaneval(12))
    val = write_jsonl(d / "val.jsonl", cmrc(8, start=600) + humaneval(2, start=80))
    tokenize_splits(model_dir=tiny_base, train=train, val=val, out_dir=d / "data", cutoff_len=256)
    return d / "data"


def _cmd(run: Path, data: Path, base: Path) -> list[str]:
    return [
        sys.executable, "-m", "cama", "lora", "--tasks", "1", "--threads", "2", "--",
        "--data", str(data), "--base-model", str(base), "--out-adapter", str(run / "adapter"),
        "--checkpoint-dir", str(run / "ckpt"), "--stats", str(run / "stats.json"), "--curve", str(run / "loss.png"),
        "--tensorboard", str(run / "tb"), "--log-file", str(run / "train.log"), "--settings", json.dumps(SETTINGS),
    ]  # fmt: skip


def _env() -> dict:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(run: Path, data: Path, base: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(_cmd(run, data, base), capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _rows(run: Path) -> dict[tuple[int, int], list[int]]:
    out = {}
    for line in (run / "ckpt" / "samples.rank0.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[(rec["step"], rec["micro"])] = rec["ids"]  # one logged twice (before the kill, redone) keeps the last
    return out


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data, tiny_base) -> Path:
    run = tmp_path_factory.mktemp("straight")
    _run(run, data, tiny_base)
    return run


def test_a_run_writes_a_plain_peft_adapter_and_its_numbers(straight, tiny_base):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cama.chat import CHAT_TEMPLATE

    stats = json.loads((straight / "stats.json").read_text())
    assert stats["steps"] == 9 and stats["attention"] == "sdpa" and stats["zero_stage"] == 0
    assert [e["step"] for e in stats["eval_curve"]] == [0, 3, 6, 9]  # step 0: the untuned model
    assert stats["eval_curve"][-1]["eval_loss"] < stats["eval_curve"][0]["eval_loss"]  # validation loss falls
    for key in ("tokens_per_s", "real_tokens_per_s", "peak_memory_gb", "flops_per_token"):
        assert stats[key] > 0, key
    assert 0.5 < stats["packing"]["fill"] <= 1 and stats["packing"]["examples_per_row"] > 1
    assert (straight / "loss.png").stat().st_size > 1000 and any((straight / "tb").rglob("events.out.tfevents*"))
    assert "validation loss" in (straight / "train.log").read_text()
    # the adapter: peft's files, the resolved config, the tokenizer with the chat template
    adapter = straight / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    resolved = json.loads((adapter / "lora_config.json").read_text())
    assert resolved["lora"]["r"] == 8 and resolved["lora.train"]["max_steps"] == 9
    tok = AutoTokenizer.from_pretrained(str(adapter))
    assert tok.chat_template == CHAT_TEMPLATE
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base)), str(adapter))
    prompt = tok.apply_chat_template([{"role": "user", "content": "北京是哪个国家的首都？"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False, pad_token_id=tok.eos_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    with torch.no_grad():
        assert not torch.allclose(model(**prompt).logits, base(**prompt).logits)


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path, data, tiny_base, straight):
    run = tmp_path / "killed"
    run.mkdir()
    marker = run / "ckpt" / "checkpoint-3" / "cama_config.json"
    proc = subprocess.Popen(_cmd(run, data, tiny_base), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=_env())  # fmt: skip
    deadline = time.time() + 400
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the job's process group: the launcher; its worker dies with it
    proc.wait()
    assert marker.exists(), "no checkpoint was completed before the kill"
    assert not (run / "adapter").exists(), "the run finished before it could be killed"
    time.sleep(1)
    lines_before = len((run / "ckpt" / "samples.rank0.jsonl").read_text().splitlines())

    _run(run, data, tiny_base)
    stats = json.loads((run / "stats.json").read_text())
    resumed = stats["resumed_from_step"]
    assert resumed is not None and resumed % 3 == 0 and stats["session_steps"] == 9 - resumed
    lines = (run / "ckpt" / "samples.rank0.jsonl").read_text().splitlines()
    first = json.loads(lines[lines_before])
    assert (first["step"], first["micro"]) == (resumed + 1, 0)  # the rerun starts right after the checkpoint
    assert _rows(run) == _rows(straight)  # the same rows at every step: nothing repeated, nothing skipped
    ref = {r["step"]: r for r in json.loads((straight / "stats.json").read_text())["loss_curve"]}
    for r in stats["loss_curve"]:
        if r["step"] > resumed:
            assert r["loss"] == pytest.approx(ref[r["step"]]["loss"], rel=1e-4), r["step"]
            assert r["learning_rate"] == pytest.approx(ref[r["step"]]["learning_rate"], rel=1e-6)
