"""The tokenizer folder: byte-identical when trained twice, and the base model's own when there is one."""

from __future__ import annotations

import json

from cama.pack.tokenizer import Tokenizer, train_or_link, train_tokenizer

SETTINGS = {"path": None, "vocab_size": 3000, "character_coverage": 0.995, "max_lines": 100_000}


def test_same_texts_give_a_byte_identical_tokenizer(tmp_path, demo_docs):
    texts = [d for docs in demo_docs.values() for d in docs[:60]]
    for name in ("a", "b"):
        train_tokenizer(texts, tmp_path / name, vocab_size=2000, character_coverage=0.995, num_threads=2)
    for file in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file
    # no temporary path anywhere in the model (the trainer spec used to name one)
    assert b"/tmp" not in (tmp_path / "a" / "tokenizer.model").read_bytes()


def test_a_base_model_gives_its_own_tokenizer_and_nothing_else(tmp_path, tokenizer_dir):
    base = tmp_path / "llama"
    base.mkdir()
    for f in tokenizer_dir.iterdir():
        (base / f.name).write_bytes(f.read_bytes())
    (base / "model.safetensors").write_bytes(b"\0" * 1024)  # weights that must not be copied
    out = tmp_path / "tokenizer"
    stats = train_or_link(docs=[], heldout=[], out_dir=out, out_stats=tmp_path / "stats.json",
                          settings=SETTINGS, base_model=base)  # fmt: skip
    assert stats["trained"] is False and stats["source"] == str(base)
    assert not (out / "model.safetensors").exists()
    assert (out / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
    assert Tokenizer(out).vocab_size == Tokenizer(base).vocab_size
    assert json.loads((tmp_path / "stats.json").read_text())["trained"] is False


def test_pack_tokenizer_path_wins_over_the_base_model(tmp_path, tokenizer_dir):
    out = tmp_path / "tokenizer"
    stats = train_or_link(docs=[], heldout=[], out_dir=out, out_stats=tmp_path / "stats.json",
                          settings={**SETTINGS, "path": str(tokenizer_dir / "tokenizer.model")},
                          base_model=tmp_path / "unused")  # fmt: skip
    assert stats["source"].endswith("tokenizer.model") and (out / "tokenizer_config.json").is_file()
