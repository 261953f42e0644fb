"""Fixtures for the pack tests: real demo documents and a small tokenizer trained on them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cama.io import DOC_SCHEMA, ParquetSink
from cama.pack.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def _demo_corpus():
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "benchmarks" / "corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def demo_docs() -> dict[str, list[str]]:
    """A few hundred real documents per language from data/demo."""
    corpus = _demo_corpus()
    return {"zh": corpus.load("zh")[:300], "en": corpus.load("en")[:120], "code": corpus.load("code")[:80]}


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, demo_docs) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    texts = [d for docs in demo_docs.values() for d in docs]
    train_tokenizer(texts, out, vocab_size=3000, character_coverage=0.995, num_threads=1)
    return out


def write_docs(path: Path, source: str, lang: str, texts: list[str]) -> Path:
    with ParquetSink(path, DOC_SCHEMA) as sink:
        for i, text in enumerate(texts):
            sink.write({"id": f"{source}/0/{i}", "text": text, "lang": lang, "source": source, "meta": "{}"})
    return path


@pytest.fixture
def demo_sources(tmp_path, demo_docs) -> tuple[dict, dict]:
    """(inputs, langs): one Parquet file per language, as results/dedup would hold."""
    inputs, langs = {}, {}
    for lang, texts in demo_docs.items():
        source = f"demo_{lang}"
        inputs[source] = write_docs(tmp_path / "dedup" / f"{source}.parquet", source, lang, texts)
        langs[source] = lang
    return inputs, langs


@pytest.fixture
def doc_writer():
    """``write_docs(path, source, lang, texts)`` for tests that build their own sources."""
    return write_docs
