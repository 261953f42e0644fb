"""Word-list toxicity, per document: listed words of the counted categories, per word.

Sources
    LDNOOBW, "List of Dirty, Naughty, Obscene, and Otherwise Bad Words" (CC BY 4.0), en and zh.
    houbb/sensitive-word (Apache-2.0), its categorised files 色情类 (sexual) and 辱骂 (insults).
    Both are shipped in cama/resources/wordlists/ as categorised lists (``toxicity_en.tsv``,
    ``toxicity_zh.tsv``: term, category, source; README.md there says how they were made).
    C4 (Raffel et al. 2020) dropped any page with one listed word (``max_count: 0`` here); it
    over-filters medical text, books and history. ChineseWebText (Chen et al. 2023,
    https://arxiv.org/abs/2311.01149, section 3.1) drops documents with more than 0.5 sensitive
    words per line (``max_per_line: 0.5``), which rejects a one-line paragraph for one word.

Categories. A listed term belongs to one of ``sexual``, ``insult`` (profanity, insults,
slurs), ``medical`` (anatomy, reproduction, disease: 阴道, 精子, 月经, vagina, semen),
``crime`` (rape, prostitution as topics: news, law and history write about them) and
``ambiguous`` (a common, classical or figurative sense: 后庭 "rear palace", 花柳 "flowers and
willows", 吹箫 "to play the xiao", 老母 "old mother", 成人 "adult", 小姐 "Miss"; ``Dick`` as a
name, ``ass`` the donkey, ``tit`` the bird). Every category is counted and stored as a score
(``toxicity.hits_<category>``); only ``categories`` (default: sexual, insult) count towards
rejection, so the allowed senses never reject and a threshold or category change needs no
rescan.

Rule ``toxicity.<key>``

    ==============  ========  ===========================================================
    key             default   rejects when (k = counted hits)
    ==============  ========  ===========================================================
    max_ratio       0.01      k / words > ratio, once k ≥ min_count (words: Doc.plain_words,
                              whitespace words for en, jieba words for zh, no punctuation)
    min_count       2         fewer counted hits than this never reject by ratio
    max_count       null      k > count (null: off; 0: any hit rejects, as C4)
    max_per_line    null      k / non-blank lines > this (ChineseWebText's 0.5; off)
    ==============  ========  ===========================================================

Matching. ``match: word`` (en) finds whole words, case-insensitively. ``match: segmented``
(zh) counts a listed term only where jieba cuts the text at both of its ends, and only if it is
one jieba word or at least ``min_multiword_chars`` (3) characters long: 性 is not counted inside
可能性 ("possibility") or 性质 ("nature"), nor 干你 in 干|你|的|活. ``substring`` counts every
occurrence (it over-matches Chinese). The list is compiled into one trie-shaped regex (shared
prefixes factored out), so a scan is one pass of the regex engine, close to Aho–Corasick in
cost; jieba's boundaries are looked up only in documents where the regex found something.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from cama.clean.filters.base import Doc, Filter, Reject, Scores, ratio, zh_boundaries

WORDLIST_DIR = files("cama") / "resources" / "wordlists"
LISTED = "listed"  # the one category of a plain list (.txt: one term a line)


@lru_cache(maxsize=8)
def load_wordlist(name: str) -> dict[str, str]:
    """{term (lower case): category} of a shipped list by name (``toxicity_zh``,
    ``ldnoobw_en``, ...) or of a file: ``.tsv`` is term <TAB> category [<TAB> ...], anything else
    one term a line (category ``listed``). Lines starting with ``#`` are comments."""
    for suffix in (".tsv", ".txt"):
        path = WORDLIST_DIR / f"{name}{suffix}"
        if path.is_file():
            break
    else:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"toxicity word list {name!r}: no shipped list or file by that name")
    out: dict[str, str] = {}
    tsv = path.name.endswith(".tsv")
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if tsv:
            term, category = line.split("\t")[:2]
        else:
            term, category = line, LISTED
        out.setdefault(term.strip().lower(), category.strip())
    return out


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
def compile_wordlist(name: str, whole_words: bool, min_chars: int = 1) -> re.Pattern:
    words = sorted(t for t in load_wordlist(name) if len(t) >= min_chars)
    if whole_words:
        return re.compile(r"(?<!\w)" + trie_pattern(words) + r"(?!\w)", re.IGNORECASE)
    # substrings; terms that start or end with a letter or digit (ASCII) must not sit inside
    # an ASCII word or number ("13." must not match in "2013.")
    ascii_terms = [
        w
        for w in words
        if w[:1].isascii() and w[:1].isalnum() or w[-1:].isascii() and w[-1:].isalnum()
    ]
    ascii_set = set(ascii_terms)
    other = [w for w in words if w not in ascii_set]
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
        self.terms = load_wordlist(self.wordlist)
        self.all_categories = tuple(sorted(set(self.terms.values())))
        counted = self.categories if self.categories is not None else self.all_categories
        unknown = sorted(set(counted) - set(self.all_categories))
        if unknown:
            raise ValueError(
                f"toxicity.categories: {unknown} not in {self.wordlist} "
                f"(its categories: {', '.join(self.all_categories)})"
            )
        self.counted = tuple(counted)
        self.pattern = compile_wordlist(self.wordlist, self.match == "word", self.min_term_chars)

    def score_names(self) -> tuple[str, ...]:
        return ("words", "lines") + tuple(f"hits_{c}" for c in self.all_categories)

    def hits(self, doc: Doc) -> list[str]:
        """The listed terms found in ``doc`` (lower case), as the match mode counts them."""
        found = list(self.pattern.finditer(doc.text))
        if not found:
            return []
        if self.match != "segmented":
            return [m.group().lower() for m in found]
        bounds = zh_boundaries(doc)
        out = []
        for m in found:
            a, b = m.span()
            if a in bounds and b in bounds:
                one_word = not any(i in bounds for i in range(a + 1, b))
                if one_word or b - a >= self.min_multiword_chars:
                    out.append(m.group().lower())
        return out

    def score(self, doc: Doc) -> Scores:
        counts = dict.fromkeys(self.all_categories, 0)
        for term in self.hits(doc):
            counts[self.terms[term]] += 1
        return {
            "words": len(doc.plain_words),
            "lines": len(doc.nonblank_lines),
            **{f"hits_{c}": n for c, n in counts.items()},
        }

    def select(self, s: Scores) -> Reject | None:
        k = sum(s[f"hits_{c}"] for c in self.counted)
        if not k:
            return None
        if self.max_count is not None and k > self.max_count:
            return self.reject("max_count", k, f"{k:.0f} listed words > {self.max_count}")
        r = ratio(k, s["words"]) if s["words"] else float(k)
        if self.max_ratio is not None and k >= (self.min_count or 0) and r > self.max_ratio:
            return self.reject(
                "max_ratio", r, f"{k:.0f} listed words, {r:.4f} per word > {self.max_ratio}"
            )
        if self.max_per_line is not None:
            r = k / max(1, s["lines"])
            if r > self.max_per_line:
                return self.reject(
                    "max_per_line", r, f"listed words per line {r:.2f} > {self.max_per_line}"
                )
        return None


FILTERS = {"toxicity": Toxicity}
