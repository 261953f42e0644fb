"""``cama eval lm-eval``: lm-evaluation-harness on our tiny model, on our own local multiple-choice task.

The harness's accuracy must equal the accuracy we compute ourselves from the model's
log-likelihood of each choice (context "question\\nAnswer:", continuation " choice").
"""

from __future__ import annotations

import json

import pytest

from cama.cli import main
from cama.evaluate.cli import TASKS_DIR

pytest.importorskip("lm_eval")
pytestmark = pytest.mark.slow  # importing the harness and indexing its tasks takes tens of seconds


def our_accuracy(model_dir) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    docs = [json.loads(line) for line in (TASKS_DIR / "cama_mc" / "cama_mc.jsonl").read_text().splitlines()]
    right = 0
    for d in docs:
        context = f"{d['question']}\nAnswer:"
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        scores = []
        for choice in d["choices"]:
            whole = tok(context + " " + choice, add_special_tokens=False)["input_ids"]
            cont = whole[len(ctx) :]
            ids = torch.tensor([whole])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            scores.append(sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)))
        right += max(range(len(scores)), key=scores.__getitem__) == d["answer"]
    return right / len(docs)


def test_lm_eval_runs_our_task_on_our_model(tmp_path, tiny_base):
    out = tmp_path / "lm_eval.json"
    assert main(["eval", "lm-eval", "--model", str(tiny_base), "--tasks", "cama_mc", "--out", str(out),
                 "--device", "cpu", "--batch-size", "4"]) == 0  # fmt: skip
    res = json.loads(out.read_text())
    assert res["n_samples"]["cama_mc"]["effective"] == 12
    assert res["results"]["cama_mc"]["acc,none"] == pytest.approx(our_accuracy(tiny_base))


def test_unknown_task_is_named(tmp_path, tiny_base):
    from cama.errors import CamaError
    from cama.evaluate.cli import lm_eval

    with pytest.raises(CamaError, match="no_such_task"):
        lm_eval(model=str(tiny_base), tasks=["no_such_task"], out_json=str(tmp_path / "x.json"))
