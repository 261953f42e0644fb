"""A tiny chat model (the tiny base with cama's chat template) and a LoRA adapter on it, built once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_chat(tiny_base, tmp_path_factory) -> Path:
    """The tiny LLaMA with cama's chat template saved in its tokenizer, as the LoRA stage saves it."""
    from transformers import AutoTokenizer

    from cama.chat import CHAT_TEMPLATE, with_chat_template

    out = tmp_path_factory.mktemp("chat") / "tiny"
    shutil.copytree(tiny_base, out)
    with_chat_template(AutoTokenizer.from_pretrained(str(tiny_base))).save_pretrained(str(out))
    assert AutoTokenizer.from_pretrained(str(out)).chat_template == CHAT_TEMPLATE
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tiny_chat, tmp_path_factory) -> Path:
    """A peft LoRA adapter on ``tiny_chat`` with random (non-zero) weights, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_chat))
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("adapter") / "lora"
    get_peft_model(model, config).save_pretrained(str(out))
    return out
