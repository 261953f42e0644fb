"""Bits per byte: the windows, the formula on a model of known probabilities, and its direction."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cama.evaluate.bpb import BpbSettings, bpb_table, evaluate_bpb, score_texts, windows


@pytest.mark.parametrize("n,max_length,stride", [(1, 8, 4), (2, 8, 4), (8, 8, 4), (9, 8, 4), (50, 8, 3), (50, 8, 8)])
def test_windows_score_every_position_once(n, max_length, stride):
    scored = []
    for begin, end, k in windows(n, max_length, stride):
        assert 0 <= begin < end <= n and end - begin <= max_length and 1 <= k <= end - begin - (begin == 0)
        scored += list(range(end - k, end))
    assert scored == list(range(1, n))


class _Uniform:
    """A 'model' whose next-token distribution is uniform over V: bpb = tokens·log2(V)/bytes."""

    def __init__(self, vocab: int):
        import torch

        self.vocab = vocab
        self.config = type("C", (), {"max_position_embeddings": 16})()
        self._p = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self._p])

    def __call__(self, input_ids, attention_mask):
        import torch

        return type("O", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


class _Tok:
    bos_token_id = 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + (b % 50) for b in text.encode("utf-8")]}  # one token per byte


def test_formula_on_a_uniform_model():
    texts = ["hello world", "天下大事，分久必合" * 5]  # the second is longer than a window
    res = score_texts(_Uniform(64), _Tok(), texts, BpbSettings(max_length=16, stride=5, batch_size=3))
    n_bytes = sum(len(t.encode()) for t in texts)
    assert res["bytes"] == n_bytes and res["tokens"] == n_bytes
    assert res["bpb"] == pytest.approx(math.log2(64))  # one token per byte, each log2(64) bits


@pytest.mark.slow
def test_bpb_drops_after_training(tmp_path, demo_data, tiny_base):
    """Direction, not a magic number: trained on demo-like text, every language gets cheaper."""
    settings = {"max_steps": 40, "micro_batch_size": 4, "global_batch_size": 8, "lr": 3e-3, "warmup_steps": 4,
                "save_steps": 100, "logging_steps": 10, "dataloader_workers": 0, "zero": {"stage": 3}}  # fmt: skip
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "cama", "pretrain", "--tasks", "2", "--threads", "2", "--",
           "--blend", str(demo_data["blend"]), "--base-model", str(tiny_base), "--out-model", str(tmp_path / "model"),
           "--checkpoint-dir", str(tmp_path / "ckpt"), "--settings", json.dumps(settings)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = tmp_path / "bpb.json"
    res = evaluate_bpb(models={"base": tiny_base, "pretrained": tmp_path / "model"}, heldout=demo_data["heldout"],
                       out_json=out, settings={"max_docs": 8})  # fmt: skip
    assert json.loads(out.read_text())["delta_of"] == "pretrained - base"
    for lang in ("zh", "en", "code"):
        base, trained = res["models"]["base"][lang]["bpb"], res["models"]["pretrained"][lang]["bpb"]
        assert trained < 0.9 * base, (lang, base, trained)
        assert res["delta"][lang] < 0
    assert "| pretrained |" in bpb_table(res)
