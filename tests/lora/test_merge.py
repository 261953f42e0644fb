"""cama merge: the merged model is base + adapter, its weights are merge_and_unload's, its tokenizer prompts as training did."""

from __future__ import annotations

import json

import pytest
import torch
from _records import cmrc, humaneval

from cama.chat import CHAT_TEMPLATE
from cama.errors import ConfigError
from cama.lora.merge import merge, merged_model

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_base):
    """A saved adapter whose weights are all non-zero (as after training)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cama.lora.data import load_tokenizer

    torch.manual_seed(1)
    m = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_base)),
                       LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, task_type="CAUSAL_LM"))  # fmt: skip
    for name, p in m.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    m.save_pretrained(str(out))
    load_tokenizer(tiny_base).save_pretrained(str(out))
    return out


def _prompts(tok) -> list[torch.Tensor]:
    recs = cmrc(3) + humaneval(2)
    return [tok.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, return_tensors="pt",
                                    return_dict=True)["input_ids"] for r in recs]  # fmt: skip


def test_merged_logits_equal_base_plus_adapter(tmp_path, tiny_base, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = merge(base=tiny_base, adapter=adapter, out=tmp_path / "merged", dtype="fp32", max_shard_size="5GB")
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "merged"))
    assert tok.chat_template == CHAT_TEMPLATE  # vLLM and apply_chat_template prompt as training did
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_base)), str(adapter)).eval()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    with torch.no_grad():
        for ids in _prompts(tok):
            want, got = tuned(input_ids=ids).logits, merged(input_ids=ids).logits
            torch.testing.assert_close(got, want, rtol=0, atol=1e-4)  # fp32: the order of two adds
            assert (want - base(input_ids=ids).logits).abs().max() > 1e-2  # the adapter matters
    assert info["dtype"] == "fp32" and json.loads((tmp_path / "merged" / "merge_config.json").read_text())["lora"]["r"] == 4


def test_merged_weights_are_merge_and_unloads(tmp_path, tiny_base, adapter):
    from safetensors.torch import load_file

    merge(base=tiny_base, adapter=adapter, out=tmp_path / "m", dtype="bf16", max_shard_size="200KB")
    shards = sorted((tmp_path / "m").glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "m" / "model.safetensors.index.json").is_file()  # sharded when large
    saved = {k: v for s in shards for k, v in load_file(str(s)).items()}
    want = {k: v.to(torch.bfloat16) for k, v in merged_model(tiny_base, adapter).state_dict().items()}
    assert saved.keys() == want.keys() and not any("lora" in k for k in saved)
    for k, v in want.items():
        assert saved[k].dtype == torch.bfloat16 and torch.equal(saved[k], v), k
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == "bfloat16"


def test_merge_names_what_is_missing(tmp_path, tiny_base):
    with pytest.raises(ConfigError, match="adapter_config.json"):
        merge(base=tiny_base, adapter=tiny_base, out=tmp_path / "x", dtype="bf16", max_shard_size="5GB")
    with pytest.raises(ConfigError, match="does not exist"):
        merge(base=tiny_base, adapter=tmp_path / "nope", out=tmp_path / "x", dtype="bf16", max_shard_size="5GB")
    assert not (tmp_path / "x").exists()


def test_an_unknown_target_module_is_a_clear_error(tiny_base):
    from cama.lora.model import lora_model

    with pytest.raises(ConfigError, match=r"lora.target_modules: 'query_key_value' not in LlamaForCausalLM \(its linear layers: .*q_proj"):
        lora_model(tiny_base, r=4, alpha=8, dropout=0.0, targets=["q_proj", "query_key_value"], dtype=torch.float32)


@pytest.mark.parametrize(("setting", "want"), [("fp32", torch.float32), ("base", torch.bfloat16)])
def test_adapter_dtype_keeps_the_adapters_in_fp32_or_the_bases_dtype(tiny_base, setting, want):
    from cama.lora.model import lora_model

    m = lora_model(tiny_base, r=4, alpha=8, dropout=0.0, targets=["q_proj"], dtype=torch.bfloat16, adapter_dtype=setting)
    assert {p.dtype for p in m.parameters() if p.requires_grad} == {want}
    assert {p.dtype for p in m.parameters() if not p.requires_grad} == {torch.bfloat16}  # the frozen base
