"""The core as a second stage uses it: a peft LoRA over the tiny base, epochs of a fixed set,
a prompt masked out of the loss, validation loss every N steps, the adapter saved."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytestmark = pytest.mark.slow


def _records(data: dict) -> list[dict]:
    """Tiny instruction-like items: a prompt (no loss) and an answer (loss), from real demo text."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(data["tokenizer"] / "tokenizer.model"))
    texts = [json.loads(line)["text"] for path in data["heldout"].values() for line in path.read_text().splitlines()]
    items = []
    for t in texts:
        ids = sp.encode(t)[:40]
        prompt, answer = [sp.bos_id(), *ids[:20]], [*ids[20:], sp.eos_id()]
        items.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    return items


def test_lora_stage_on_the_core(tmp_path, demo_data, tiny_base, monkeypatch):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from cama.train.data import Epochs, PackedCollator
    from cama.train.run import ModelInfo, _free_port, fit
    from cama.train.settings import from_dict

    for var, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}.items():  # fmt: skip
        monkeypatch.setenv(var, value)  # one process, as the launcher would start it; restored afterwards
    items = _records(demo_data)
    assert len(items) == 24
    train, val = items[:20], items[20:]
    settings = from_dict({"max_steps": 6, "micro_batch_size": 2, "global_batch_size": 4, "lr": 1e-3,
                          "warmup_steps": 1, "save_steps": 3, "logging_steps": 1, "dataloader_workers": 0,
                          "zero": {"stage": 0}, "gradient_checkpointing": False})  # fmt: skip
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")

    def model():
        return get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32), lora)

    n_adapter = sum(p.numel() for p in model().parameters() if p.requires_grad)
    info = dataclasses.replace(ModelInfo.of(tiny_base), trainable=n_adapter)
    out = tmp_path / "adapter"
    result = fit(
        key="lora", settings=settings, model_info=info, model=model,
        data=lambda n: Epochs(train, n, seed=settings.seed), collator=PackedCollator(info.pad_id),
        eval_data=val, eval_steps=2, checkpoint_dir=tmp_path / "ckpt", out_dir=out,
        tokenizer_dir=tiny_base, config_name="lora_config.json", extra={"lora": {"r": 4}},
    )  # fmt: skip
    stats = result.stats
    assert stats["steps"] == 6 and stats["samples"] == 24 and stats["trainable_params"] == n_adapter
    assert [e["step"] for e in stats["eval_curve"]] == [2, 4, 6]
    assert stats["zero_stage"] == 0 and stats["final_loss"] is not None
    # the adapter: peft's own files, loadable with plain PeftModel.from_pretrained on the base
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert json.loads((out / "lora_config.json").read_text())["lora"] == {"r": 4}
    assert (out / "tokenizer.model").is_file()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base)), str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    ids = torch.tensor([train[0]["input_ids"]])
    assert not torch.allclose(tuned(input_ids=ids).logits, base(input_ids=ids).logits)
    # complete checkpoints only, each with the resolved config
    marker = json.loads((tmp_path / "ckpt" / "checkpoint-6" / "cama_config.json").read_text())
    assert marker["lora"] == {"r": 4} and marker["samples_consumed"] == 24
    torch.distributed.destroy_process_group()  # fit started one in this (pytest's) process


def test_epochs_are_seeded_permutations():
    from cama.train.data import Epochs

    data = list(range(10))
    a, b = Epochs(data, 25, seed=1), Epochs(data, 25, seed=1)
    first = [a[i] for i in range(25)]
    assert first == [b[i] for i in range(25)]
    assert sorted(first[:10]) == data and sorted(first[10:20]) == data and first[:10] != first[10:20]
    assert first[:10] != [Epochs(data, 10, seed=2)[i] for i in range(10)]


def test_collator_keeps_an_items_own_labels():
    from cama.train.data import PackedCollator

    out = PackedCollator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9]}])
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, 9, -100]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
