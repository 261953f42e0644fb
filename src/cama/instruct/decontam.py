"""Decontamination: drop training records that share a long n-gram with evaluation data.

What counts as evaluation data (``assemble`` gathers it): the IE evaluation sets
(``instruct/eval/{set}.jsonl``, their sentences), the held-out bits-per-byte documents
(``heldout/{lang}.jsonl``), and every file under ``instruct.decontaminate.files`` (the case
gallery, benchmark questions; JSON/JSONL: every string in it; other files: each paragraph).

The n-grams, as in the GPT-3 and Llama-2 contamination studies but per language:

- English (and code): 13-grams of words (lower-cased, split on whitespace);
- Chinese: 20-grams of characters (lower-cased, whitespace removed), about as much text.

A text shorter than n units is one n-gram of all its units, so a short evaluation sentence
matches a training text that is exactly it (IE sentences are compared as sentences).
Evaluation strings under 20 characters (a label, a category name) are not indexed.
N-grams are 64-bit hashes from ``cama.clean.minhash.shingle_hashes``, the dedup stage's
vectorised shingling, held in one sorted array per kind: 8 bytes per evaluation n-gram.
An evaluation text is indexed by the kind of its language; a training text is looked up by
the kind of its record's language (Chinese records by characters, the rest by words).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cama.clean.minhash import shingle_hashes
from cama.corpus.langid import mostly_han

log = logging.getLogger(__name__)

SEED = 0x13  # the hash seed of the n-grams (any fixed value; index and lookup share it)
BATCH = 2048
MIN_CHARS = 20  # shorter evaluation strings (a label, a category name) are no evidence


def ngram_kind(lang: str) -> str:
    return "char" if lang == "zh" else "word"


class NgramIndex:
    """Sorted 64-bit n-gram hashes of evaluation texts, each with the name of its origin."""

    def __init__(self, word_n: int = 13, char_n: int = 20):
        self.n = {"word": word_n, "char": char_n}
        self.origins: list[str] = []
        self._parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"word": [], "char": []}
        self.hashes: dict[str, np.ndarray] = {}
        self.origin_of: dict[str, np.ndarray] = {}
        self.texts = 0

    def add(self, texts: Iterable[tuple[str, str]], origin: str) -> None:
        """Index ``(text, lang)`` pairs that come from ``origin`` (a file or set name)."""
        if origin not in self.origins:
            self.origins.append(origin)
        code = self.origins.index(origin)
        buf: dict[str, list[str]] = {"word": [], "char": []}
        for text, lang in texts:
            if text and len(text.strip()) >= MIN_CHARS:
                buf[ngram_kind(lang)].append(text)
                self.texts += 1
        for kind, batch in buf.items():
            for i in range(0, len(batch), BATCH):
                h, _ = shingle_hashes(batch[i : i + BATCH], kind, self.n[kind], SEED)
                self._parts[kind].append((h, np.full(len(h), code, dtype=np.int32)))

    def freeze(self) -> NgramIndex:
        for kind, parts in self._parts.items():
            h = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
            o = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
            h, first = np.unique(h, return_index=True)
            self.hashes[kind], self.origin_of[kind] = h, o[first]
        self._parts = {"word": [], "char": []}
        return self

    def sizes(self) -> dict[str, int]:
        return {f"{kind}_{self.n[kind]}grams": int(len(h)) for kind, h in self.hashes.items()}

    def match(self, texts: list[str], lang: str) -> list[str | None]:
        """For each text, the origin of an evaluation n-gram it contains, or None."""
        kind = ngram_kind(lang)
        index, origin = self.hashes[kind], self.origin_of[kind]
        out: list[str | None] = [None] * len(texts)
        if not len(index) or not texts:
            return out
        h, offsets = shingle_hashes(texts, kind, self.n[kind], SEED)
        pos = np.minimum(np.searchsorted(index, h), len(index) - 1)
        hit = index[pos] == h
        if not hit.any():
            return out
        doc = np.repeat(np.arange(len(texts)), np.diff(offsets))
        for d, p in zip(doc[hit].tolist(), pos[hit].tolist(), strict=True):
            if out[d] is None:
                out[d] = self.origins[int(origin[p])]
        return out


def _strings(obj) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def file_texts(path: str | Path) -> Iterator[tuple[str, str]]:
    """(text, lang) of a file to decontaminate against: JSON strings, or paragraphs of text."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"instruct.decontaminate.files: {path} does not exist")
    raw = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".json"):
        docs = (
            [json.loads(line) for line in raw.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else [json.loads(raw)]
        )
        texts = [s for d in docs for s in _strings(d)]
    else:
        texts = [p for p in raw.split("\n\n")]
    for t in texts:
        if t.strip():
            yield t, "zh" if mostly_han(t) else "en"
