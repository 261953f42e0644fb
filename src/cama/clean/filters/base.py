"""The filter protocol, the shared per-document feature cache, and the chain.

Scoring is kept apart from selection, as in dolma: a filter has ``score(doc)``, which
measures the document (a dict of named values, every measure of the filter, computed
without looking at a threshold), and ``select(scores)``, which compares those values with
the thresholds and returns keep (``None``) or a :class:`Reject` naming the threshold that
tripped. The chain scores every document with every filter, also after one has rejected
it, so the filter stage can store all scores (``clean/{source}.scores.parquet``) and a
threshold can change later without recomputing them (:func:`cama.clean.filter.reselect`).
A filter that rewrites the text (C4 drops lines) does so in ``rewrite(doc)``, only when it
keeps the document, and records every line it removes with the rule that removed it.

``doc`` is a :class:`Doc`: the text plus lazily computed, cached features (lines, words,
word statistics, n-grams). In datatrove each filter splits the text into words again
(spaCy, or spaCy + jieba); that split is most of its cost. Here every feature is computed
at most once per document and shared by every filter of the chain.

Words
    en   a regex that follows spaCy's English tokenizer rules closely enough that the
         Gopher and C4 decisions agree with datatrove's (``EN_WORD_RE``; measured by
         benchmarks/filter_throughput.py);
    zh   rjieba (jieba-rs), re-split where Python jieba would split a non-Han run
         (``1-2`` -> ``1 - 2``, ``2.4km`` -> ``2.4 km``), so words match jieba's
         ``cut`` (HMM on), which is what datatrove's cmn_Hani tokenizer calls;
    code whitespace-separated tokens.

``Doc.plain_words`` are words as the papers count them (Gopher: "words" split on
whitespace): whitespace-delimited tokens for en and code, jieba words for zh, in both
cases without the tokens made only of punctuation. datatrove counts spaCy's punctuation
tokens as words, which is what ``datatrove_compat`` reproduces.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

# ---------------------------------------------------------------- punctuation
# The punctuation set of datatrove.utils.text (PUNCTUATION + TERMINAL_PUNCTUATION),
# copied so that "symbol words" mean the same thing without importing datatrove.
_PUNCTUATION = (
    "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»"
    + "".join(
        map(chr, (x for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b)))
    )
)
# Sentence-final marks (datatrove's TERMINAL_PUNCTUATION, the Unicode STerm property).
TERMINAL_PUNCTUATION = frozenset(
    "᪩？⁈𑩂．꩞𑅃﹗𑂾\u1b7d፧𑅂꡶꘎⁉࠾᪨𑊩𑱂᱿𖩮᥅\U00011f43\U00011f44﹒𑈹𑈸።܂؞꛳\U00010f88𑗍𐩖𑙂\u061d꩟᠉\u1b7e𑗗᰼𑻸؟𑪜꧉𑗉𐽙𖫵𖬷"
    "܀꓿᜵𑗏𑁇𑗓𑥄៖𑥆𑗑𑗒꯫۔𐩗\U00010f86꡷\u2e54｡៕߹⸮.𑇅࠹𛲟꫰꤯𐽗᭞𑜼፨𑃁꣏𑇟𖬸𑪛𑜾࠷𝪈?𑃀𑗃！։꣎॥𑗖᭛᠃!၊𖺘⁇𑗌𑑋𖭄"
    "᭟𑅁𑙁⸼꩝𑗋。꧈꫱𑜽𐽖𑂿᙮។꛷\U00010f89៚᥄𑗕𑗎᪪᭚࠽𑇞𑗊𐽘\u2e53𑗔𖩯𑇍𑻷𐽕𑩃।𑗂𑇆𑁈။᱾𑱁꘏܁᜶‼𑈻‽᪫﹖𑑌𑈼\U00010f87𑗐៙᰻"
)
PUNCTUATION_SET = frozenset(_PUNCTUATION) | TERMINAL_PUNCTUATION

# ---------------------------------------------------------------- word splitting
# spaCy's English tokenizer exceptions that end in a period (title and state abbreviations).
_EN_ABBREVIATIONS = (
    "Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp Dec Del Dr Feb Fla Ga Gen Gov Ia Id Ill Inc Ind "
    "Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs Ms Mt Neb Nebr Nev Nov "
    "Oct Okla Ore Pa Prof Rep Rev Sen Sep Sept St Tenn Va Wash Wis co vs"
).split()
_CLITIC = r"['’](?:[sSdDmM]|re|ll|ve|RE|LL|VE)\b"
_INFIX = (  # where spaCy splits inside a whitespace-separated chunk (its English infix rules)
    r"(?:(?<=[^\W\d_])-+(?=[^\W\d_])|(?<=[^\W_])[:<>=/](?=[^\W\d_])|(?<=[^\W\d_]),(?=[^\W\d_])"
    r"|(?<=[a-z])\.(?=[A-Z])|\.\.+|(?<=\d)[+\-*^](?=\d))"
)
EN_WORD_RE = re.compile(
    rf"""
     https?://[^\s]+?(?=[.,;:!?)\]"']*(?:\s|$))          # a URL, without trailing punctuation
    |(?:{"|".join(_EN_ABBREVIATIONS)})\.(?!\w)          # Mr. Dr. Jan. ...
    |(?:e\.g|i\.e|a\.m|p\.m|E\.g|I\.e)\.(?!\w)          # exceptions
    |(?:[A-Za-z]\.)*[A-Z]\.(?!\w)                       # U.S.  J.
    |[a-z]\.(?=\s|$)                                    # a. b.
    |[^\W_]+?(?=n['’]t\b) | n['’]t\b                     # do n't, ca n't
    |{_CLITIC}                                           # 's 're 'll 've 'd 'm
    |@[-.,]@                                             # WikiText's escaped separators
    |can(?=not\b) | (?<=can)not\b                        # can not
    |[^\W_]+(?:[.’'][^\W_]+)*?(?={_CLITIC})              # John ('s)
    |[^\W_]+(?:(?!{_INFIX})(?:[^\w\s]|_)+[^\W_]+)*(?:-+(?=\s|$))?   # words, inner punctuation kept
    |\.\.+ | … | --+ | [^\w\s] | _                       # punctuation, one mark a token
    """,
    re.X,
)

_ZH_RESPLIT = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")  # jieba.finalseg's re_skip
_JIEBA = None


def _jieba():
    global _JIEBA
    if _JIEBA is None:
        import rjieba  # imported where used: only zh needs it

        _JIEBA = rjieba
    return _JIEBA


def en_words(text: str) -> list[str]:
    return EN_WORD_RE.findall(text)


def zh_tokens(text: str) -> list[str]:
    """jieba's cut of the whole text (HMM on), whitespace runs included: they add up to it."""
    return _jieba().cut(text)


def zh_words(text: str, tokens: list[str] | None = None) -> list[str]:
    """jieba words (HMM on), whitespace dropped, as datatrove's cmn_Hani tokenizer gives them."""
    out: list[str] = []
    for w in tokens if tokens is not None else zh_tokens(text):
        w = w.strip()
        if not w:
            continue
        if len(w) > 1 and w.isascii() and not w.isalnum():
            out.extend(p for p in _ZH_RESPLIT.split(w) if p)
        else:
            out.append(w)
    return out


def code_words(text: str) -> list[str]:
    return text.split()


WORD_SPLITTERS = {"en": en_words, "zh": zh_words, "code": code_words}


# ---------------------------------------------------------------- the document
class Doc:
    """A document's text and its features, each computed once, on first use.

    A filter that rewrites the text (C4 drops lines) calls :meth:`set_text`,
    which forgets every cached feature.
    """

    def __init__(self, text: str, lang: str):
        self.text = text
        self.lang = lang
        self._split = WORD_SPLITTERS[lang]
        self.removed: list[Removed] = []  # lines a filter cut out of a document it kept

    def set_text(self, text: str) -> None:
        lang, removed = self.lang, self.removed
        self.__dict__.clear()
        self.__init__(text, lang)
        self.removed = removed

    # -- lines and paragraphs
    @cached_property
    def lines(self) -> list[str]:
        """``str.splitlines()``: what Gopher quality and C4 iterate over."""
        return self.text.splitlines()

    @cached_property
    def nonblank_lines(self) -> list[str]:
        """``text.split('\\n')`` without blank lines, unstripped (FineWeb quality)."""
        return [line for line in self.text.split("\n") if line.strip()]

    @cached_property
    def n_chars(self) -> int:
        return len(self.text)

    # -- words
    @cached_property
    def words(self) -> list[str]:
        if self.lang == "zh":
            return zh_words(self.text, self.tokens)
        return self._split(self.text)

    @cached_property
    def tokens(self) -> list[str]:
        """zh only: jieba's cut, whose pieces add up to the text (for word boundaries)."""
        return zh_tokens(self.text)

    @cached_property
    def word_counts(self) -> Counter:
        return Counter(self.words)

    @cached_property
    def punctuation(self) -> dict[str, bool]:
        """For each distinct word: is it made only of punctuation (a "symbol word")?"""
        return {w: _all_punctuation(w) for w in self.word_counts}

    @cached_property
    def word_stats(self) -> WordStats:
        n_sym = sym_chars = n_alpha = total_chars = 0
        punct = self.punctuation
        for w, c in self.word_counts.items():
            total_chars += len(w) * c
            if punct[w]:
                n_sym += c
                sym_chars += len(w) * c
            if any(ch.isalpha() for ch in w):
                n_alpha += c
        n = len(self.words)
        return WordStats(
            n_words=n,
            n_non_symbol=n - n_sym,
            non_symbol_chars=total_chars - sym_chars,
            n_alpha=n_alpha,
        )

    @cached_property
    def plain_words(self) -> list[str]:
        """Words as the Gopher paper counts them: see the module docstring."""
        if self.lang == "zh":
            punct = self.punctuation
            return [w for w in self.words if not punct[w]]
        return [w for w in self.text.split() if not _all_punctuation(w)]

    @cached_property
    def word_lengths(self) -> list[int]:
        return list(map(len, self.words))

    def ngrams(self, n: int) -> list[tuple[str, ...]]:
        """The word n-grams in order (cached per n)."""
        cache = self.__dict__.setdefault("_ngrams", {})
        if n not in cache:
            w = self.words
            cache[n] = (
                list(zip(*(w[i:] for i in range(n)), strict=False)) if n > 1 else [(x,) for x in w]
            )
        return cache[n]

    @cached_property
    def word_keys(self) -> np.ndarray:
        """A random-looking 64-bit value per distinct word, one per word in order."""
        index: dict[str, int] = {}
        ids = np.fromiter(
            (index.setdefault(w, len(index)) for w in self.words), np.uint64, len(self.words)
        )
        return mix64(ids + np.uint64(1))

    def gram_keys(self, n: int) -> np.ndarray:
        """A 64-bit key per word n-gram, in order (cached per n): equal n-grams, equal keys;
        distinct ones collide with probability ~2^-64 per pair."""
        cache = self.__dict__.setdefault("_gram_keys", {})
        if n not in cache:
            ids = self.word_keys
            if n == 1 or len(ids) < n:
                cache[n] = ids if n == 1 else ids[:0]
            else:
                prev = self.gram_keys(n - 1)
                cache[n] = prev[:-1] * _GRAM_BASE + ids[n - 1 :]
        return cache[n]

    @cached_property
    def word_ends(self) -> np.ndarray:
        """Cumulative word lengths: the words i..j-1 hold ``word_ends[j] - word_ends[i]`` chars."""
        out = np.zeros(len(self.words) + 1, dtype=np.int64)
        np.cumsum(self.word_lengths, out=out[1:])
        return out

    @cached_property
    def punctuation_words(self) -> np.ndarray:
        """True for each word made only of punctuation."""
        punct = self.punctuation
        return np.fromiter((punct[w] for w in self.words), bool, len(self.words))


_GRAM_BASE = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (as cama.clean.minhash), on a copy."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def zh_boundaries(doc: Doc) -> set[int]:
    """Character offsets where jieba cuts ``doc.text`` (0 and the end included)."""
    out, pos = {0}, 0
    for t in doc.tokens:
        pos += len(t)
        out.add(pos)
    return out


def _all_punctuation(word: str) -> bool:
    return all(ch in PUNCTUATION_SET for ch in word)


@dataclass(frozen=True, slots=True)
class WordStats:
    n_words: int  # every word, symbols included
    n_non_symbol: int  # words with at least one character outside PUNCTUATION_SET
    non_symbol_chars: int  # their total length
    n_alpha: int  # words with at least one alphabetic character


# ---------------------------------------------------------------- filters
@dataclass(frozen=True, slots=True)
class Reject:
    """Why a document was dropped: ``rule`` is ``<filter>.<threshold>``."""

    rule: str
    value: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class Removed:
    """A line (or part of one) that a filter cut out of a document it kept."""

    rule: str  # e.g. "c4_quality.terminal_punctuation"
    text: str  # what was removed
    nbytes: int  # its UTF-8 bytes, with the line end that went with it
    detail: str


Scores = dict[str, float | None]


class Filter:
    """One heuristic. Subclasses set ``name`` and ``SCORES`` and implement :meth:`score`
    and :meth:`select`.

    ``settings`` is the validated config block for this filter; each threshold is
    an attribute, so ``self.min_words`` reads ``settings['min_words']``.
    """

    name = "filter"
    SCORES: tuple[str, ...] = ()  # the keys score() returns, in a fixed order

    def __init__(self, **settings: Any):
        settings.pop("enabled", None)
        self.settings = settings
        for k, v in settings.items():
            setattr(self, k, v)

    def score_names(self) -> tuple[str, ...]:
        return self.SCORES

    def score(self, doc: Doc) -> Scores:  # pragma: no cover - interface
        """Every measure of this filter, threshold-free; None where it is undefined."""
        raise NotImplementedError

    def select(self, s: Scores) -> Reject | None:  # pragma: no cover - interface
        """Keep (None) or the first threshold, in the filter's order, that the scores trip."""
        raise NotImplementedError

    def rewrite(self, doc: Doc) -> None:
        """Called when this filter keeps ``doc``; a filter that edits the text does it here."""

    def filter(self, doc: Doc) -> Reject | None:
        """Score and select in one call (and rewrite when kept)."""
        r = self.select(self.score(doc))
        if r is None:
            self.rewrite(doc)
        return r

    def reject(self, threshold: str, value: float | None, detail: str) -> Reject:
        return Reject(f"{self.name}.{threshold}", None if value is None else float(value), detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


@dataclass(slots=True)
class Judgement:
    """What the chain made of one document."""

    reject: Reject | None  # the first rejection in chain order, or None: kept
    text: str  # the text to keep (filters may have removed lines)
    scores: Scores  # "<filter>.<score>" -> value, for every filter of the chain
    removed: list[Removed]  # lines removed from a kept document, with their rules


EMPTY = Reject("empty", 0.0, "empty or whitespace-only document")


class FilterChain:
    """Filters applied in order; the first rejection wins. Counts per rule.

    Every filter scores every document (dolma's tagging), so the scores are complete
    whatever the decision; selection is then the thresholds, in chain order.
    """

    def __init__(self, filters: list[Filter], lang: str):
        self.filters = filters
        self.lang = lang
        self.rejected: Counter = Counter()
        self.kept = 0

    def score_names(self) -> list[str]:
        return [f"{f.name}.{k}" for f in self.filters for k in f.score_names()]

    def judge(self, text: str) -> Judgement:
        doc = Doc(text, self.lang)
        scores: Scores = {}
        reject = None
        for f in self.filters:
            s = f.score(doc)
            scores.update((f"{f.name}.{k}", v) for k, v in s.items())
            if reject is None:
                reject = f.select(s)
                if reject is None:
                    f.rewrite(doc)
        if reject is None and not doc.text.strip():
            reject = EMPTY  # every rule passed an empty text (a chain with nothing on)
        if reject is None:
            self.kept += 1
            return Judgement(None, doc.text, scores, doc.removed)
        self.rejected[reject.rule] += 1
        return Judgement(reject, text, scores, [])

    def __call__(self, text: str) -> tuple[Reject | None, str]:
        """Return (rejection or None, the text to keep: a filter may have rewritten it)."""
        j = self.judge(text)
        return j.reject, j.text

    def select(self, scores: Scores) -> Reject | None:
        """The decision from stored scores alone (no text): the chain's thresholds in order."""
        for f in self.filters:
            prefix = f.name + "."
            r = f.select({k: scores.get(prefix + k) for k in f.score_names()})
            if r is not None:
                return r
        return None


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None
