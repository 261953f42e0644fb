"""Word-list toxicity: the share of a document that is listed bad words.

Sources
    Word list: LDNOOBW, "List of Dirty, Naughty, Obscene, and Otherwise Bad Words" (CC BY 4.0),
    shipped in cama/resources/wordlists/ (en, zh). C4 (Raffel et al. 2020) dropped any page
    with one listed word; that is ``max_count: 0`` here, and it over-filters medical and
    sexual-health text, so the defaults use ratios instead.
    ChineseWebText (Chen et al. 2023, https://arxiv.org/abs/2311.01149, section 3.1):
    drop a document with more than 0.5 sensitive words per line.

Rule ``toxicity.<key>``

    ==============  ========  ===========================================================
    key             default   rejects when
    ==============  ========  ===========================================================
    max_ratio       0.01 en   listed-word matches / words > ratio (en: whole words, case-
                    0.01 zh   insensitive; zh: substrings, per jieba word)
    max_count       null      matches > count (null: off; 0: any match, as C4)
    max_per_line    null en   matches / non-blank lines > this (ChineseWebText: 0.5)
                    0.5 zh
    ==============  ========  ===========================================================

``match: segmented`` (the zh default) counts jieba words that are listed terms. Substring
matching is wrong for Chinese word lists: LDNOOBW zh lists single characters such as 性, which
sits inside 可能性 ("possibility") and 性质 ("nature"); on the demo's Wikipedia paragraphs,
substring matching rejected 398 of 1,848 for toxicity, nearly all through 性. Segmented
matching still counts 性, 卵 or 逼 where jieba leaves them alone (逼近, "approach", splits), so
single-character terms are skipped by default (``min_term_chars: 2``): 81 rejections fall to
about 30, which are texts on sexuality, prostitution and the like, as the list intends.

Matching compiles the list into one trie-shaped regex (shared prefixes factored out), so a
scan is one pass of the regex engine whatever the list length, close to Aho–Corasick in cost.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from cama.clean.filters.base import Doc, Filter, Reject

WORDLIST_DIR = files("cama") / "resources" / "wordlists"


def load_wordlist(name: str) -> list[str]:
    """A shipped list by name (``ldnoobw_en``, ``ldnoobw_zh``) or a path to a file, one term a line."""
    path = WORDLIST_DIR / f"{name}.txt"
    text = (
        path.read_text(encoding="utf-8")
        if path.is_file()
        else Path(name).read_text(encoding="utf-8")
    )
    return sorted({w.strip().lower() for w in text.splitlines() if w.strip()})


def trie_pattern(words: list[str]) -> str:
    """A regex alternation in trie form: ``a(?:b|c)`` for ``ab``, ``ac``; longest match first."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        end = "" in node
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if end:  # the word may also stop here
            body = "(?:" + body + ")?"
        return body

    return emit(trie)


@lru_cache(maxsize=8)
def compile_wordlist(name: str, whole_words: bool) -> re.Pattern:
    words = load_wordlist(name)
    if whole_words:
        return re.compile(r"(?<!\w)" + trie_pattern(words) + r"(?!\w)", re.IGNORECASE)
    # substrings; terms that start or end with a letter or digit (ASCII) must not sit inside
    # an ASCII word or number ("13." must not match in "2013.")
    ascii_terms = [
        w
        for w in words
        if w[:1].isascii() and w[:1].isalnum() or w[-1:].isascii() and w[-1:].isalnum()
    ]
    other = [w for w in words if w not in set(ascii_terms)]
    parts = []
    if other:
        parts.append(trie_pattern(other))
    if ascii_terms:
        parts.append(r"(?<![A-Za-z0-9])" + trie_pattern(ascii_terms) + r"(?![A-Za-z0-9])")
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


class Toxicity(Filter):
    name = "toxicity"

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.match == "segmented":
            terms = load_wordlist(self.wordlist)
            self.terms = frozenset(t for t in terms if len(t) >= self.min_term_chars)
        else:
            self.pattern = compile_wordlist(self.wordlist, self.match == "word")

    def count(self, text: str) -> int:
        return len(self.pattern.findall(text))

    def count_words(self, doc: Doc) -> int:
        return sum(w.lower() in self.terms for w in doc.words)

    def filter(self, doc: Doc) -> Reject | None:
        k = self.count_words(doc) if self.match == "segmented" else self.count(doc.text)
        if not k:
            return None
        if self.max_count is not None and k > self.max_count:
            return self.reject("max_count", k, f"{k} listed words > {self.max_count}")
        if self.max_ratio is not None:
            r = k / max(1, doc.word_stats.n_words)
            if r > self.max_ratio:
                return self.reject(
                    "max_ratio", r, f"listed words per word {r:.4f} > {self.max_ratio}"
                )
        if self.max_per_line is not None:
            r = k / max(1, len(doc.nonblank_lines))
            if r > self.max_per_line:
                return self.reject(
                    "max_per_line", r, f"listed words per line {r:.2f} > {self.max_per_line}"
                )
        return None


FILTERS = {"toxicity": Toxicity}
