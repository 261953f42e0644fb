"""The demo's base model: seeded, untied, safetensors, loads with plain transformers and generates."""

import hashlib

from cama.pretrain.config import model_init_from_dict
from cama.pretrain.model import init_model

TINY = dict(layers=2, hidden_size=64, heads=4, kv_heads=2, intermediate_size=172, max_position_embeddings=256)


def test_tiny_model_loads_and_generates(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (tiny_base / "model.safetensors").is_file() and not (tiny_base / "pytorch_model.bin").exists()
    assert (tiny_base / "model.safetensors").stat().st_mode & 0o004  # loadable by anyone
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base))
    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    assert model.config.tie_word_embeddings is False
    assert model.get_input_embeddings().weight.data_ptr() != model.get_output_embeddings().weight.data_ptr()
    assert model.config.num_hidden_layers == TINY["layers"] and model.config.vocab_size == len(tok)
    ids = tok("天下大事", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.eos_token_id)  # fmt: skip
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tok.decode(out[0]), str)
    assert torch.isfinite(model(**ids).logits).all()


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_same_seed_same_weights(tmp_path, demo_data, tiny_base):
    init_model(tokenizer_dir=demo_data["tokenizer"], out_dir=tmp_path / "again", init=model_init_from_dict(TINY))
    assert _digest(tmp_path / "again") == _digest(tiny_base)
    init_model(tokenizer_dir=demo_data["tokenizer"], out_dir=tmp_path / "other", init=model_init_from_dict({**TINY, "seed": 1}))
    assert _digest(tmp_path / "other") != _digest(tiny_base)
