"""Test data for the pretraining and evaluation tests: a tokenizer, shards, a blend, held-out docs.

Built from the real demo documents, the way the pack stage lays them out (blend.json with
``sources`` and ``datasets`` relative to its folder, Megatron .bin/.idx shards written with
``cama.pack.indexed.IndexedWriter``, held-out ``{lang}.jsonl`` with a "text" field), but
with plain fixed-length cutting instead of sentence packing: these tests are about training.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def demo_docs(per_lang: dict[str, int]) -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "benchmarks" / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {lang: mod.load(lang)[:n] for lang, n in per_lang.items()}


def build(out: Path, per_lang: dict[str, int], heldout: int = 8, max_length: int = 128, vocab: int = 3000) -> dict:
    """Write tokenizer/, shards/blend.json (+ shards), heldout/{lang}.jsonl under ``out``."""
    from cama.pack.indexed import IndexedWriter
    from cama.pack.tokenizer import train_tokenizer

    docs = demo_docs({lang: n + heldout for lang, n in per_lang.items()})
    held = {lang: d[:heldout] for lang, d in docs.items()}
    train = {lang: d[heldout:] for lang, d in docs.items()}
    tok_dir = out / "tokenizer"
    train_tokenizer([t for d in train.values() for t in d], tok_dir, vocab_size=vocab, character_coverage=0.995)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model"))
    shards = out / "shards"
    datasets, sources = [], {}
    for lang, texts in train.items():
        prefix = shards / f"demo_{lang}_0"
        n_samples = n_tokens = 0
        with IndexedWriter(prefix, np.uint16) as w:
            for ids in sp.encode(texts):
                full = [sp.bos_id(), *ids, sp.eos_id()]
                for i in range(0, len(full), max_length):
                    piece = full[i : i + max_length]
                    if len(piece) > 20:  # as the seed: drop tiny samples
                        w.add_sequence(piece)
                        n_samples += 1
                        n_tokens += len(piece)
                w.end_document()
        datasets.append({"prefix": prefix.name, "source": f"demo_{lang}", "lang": lang,
                         "samples": n_samples, "tokens": n_tokens, "weight": 1.0})  # fmt: skip
        sources[f"demo_{lang}"] = {"lang": lang, "weight": 1.0, "samples": n_samples, "tokens": n_tokens}
    total = sum(s["samples"] for s in sources.values())
    for s in sources.values():
        s["weight"] = s["samples"] / total
    blend = {"format": "megatron-mmidx-v1", "dtype": "uint16", "vocab_size": sp.get_piece_size(),
             "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "max_length": max_length, "seed": 0,
             "sources": sources, "datasets": datasets}  # fmt: skip
    (shards / "blend.json").write_text(json.dumps(blend, indent=1))
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    for lang, texts in held.items():
        with open(out / "heldout" / f"{lang}.jsonl", "w", encoding="utf-8") as f:
            for i, t in enumerate(texts):
                f.write(json.dumps({"id": f"demo_{lang}/{i}", "text": t, "lang": lang}, ensure_ascii=False) + "\n")
    return {"tokenizer": tok_dir, "blend": shards / "blend.json", "heldout": {lang: out / "heldout" / f"{lang}.jsonl" for lang in held}}
