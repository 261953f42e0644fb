"""The filter protocol, the shared per-document feature cache, and the chain.

A filter is a small class with one method, ``filter(doc) -> Reject | None``
(``None`` keeps the document). ``doc`` is a :class:`Doc`: the text plus lazily
computed, cached features (lines, words, word statistics, n-grams). In datatrove
each filter splits the text into words again (spaCy, or spaCy + jieba); that split
is most of its cost. Here every feature is computed at most once per document and
shared by every filter of the chain.

Words
    en   a regex that follows spaCy's English tokenizer rules closely enough that the
         Gopher and C4 decisions agree with datatrove's (``EN_WORD_RE``; measured by
         benchmarks/filter_throughput.py);
    zh   rjieba (jieba-rs), re-split where Python jieba would split a non-Han run
         (``1-2`` -> ``1 - 2``, ``2.4km`` -> ``2.4 km``), so words match jieba's
         ``cut`` (HMM on), which is what datatrove's cmn_Hani tokenizer calls;
    code whitespace-separated tokens.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

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


def zh_words(text: str) -> list[str]:
    """jieba words (HMM on), whitespace dropped, as datatrove's cmn_Hani tokenizer gives them."""
    out: list[str] = []
    for w in _jieba().cut(text):
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

    def set_text(self, text: str) -> None:
        lang = self.lang
        self.__dict__.clear()
        self.__init__(text, lang)

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
        return self._split(self.text)

    @cached_property
    def word_counts(self) -> Counter:
        return Counter(self.words)

    @cached_property
    def word_stats(self) -> WordStats:
        n_sym = sym_chars = n_alpha = total_chars = 0
        for w, c in self.word_counts.items():
            total_chars += len(w) * c
            if all(ch in PUNCTUATION_SET for ch in w):
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


class Filter:
    """One heuristic. Subclasses set ``name`` and implement :meth:`filter`.

    ``settings`` is the validated config block for this filter; each threshold is
    an attribute, so ``self.min_words`` reads ``settings['min_words']``.
    """

    name = "filter"

    def __init__(self, **settings: Any):
        settings.pop("enabled", None)
        self.settings = settings
        for k, v in settings.items():
            setattr(self, k, v)

    def filter(self, doc: Doc) -> Reject | None:  # pragma: no cover - interface
        raise NotImplementedError

    def reject(self, threshold: str, value: float | None, detail: str) -> Reject:
        return Reject(f"{self.name}.{threshold}", None if value is None else float(value), detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"


class FilterChain:
    """Filters applied in order; the first rejection wins. Counts per rule."""

    def __init__(self, filters: list[Filter], lang: str):
        self.filters = filters
        self.lang = lang
        self.rejected: Counter = Counter()
        self.kept = 0

    def __call__(self, text: str) -> tuple[Reject | None, str]:
        """Return (rejection or None, the text to keep: a filter may have rewritten it)."""
        doc = Doc(text, self.lang)
        for f in self.filters:
            r = f.filter(doc)
            if r is not None:
                self.rejected[r.rule] += 1
                return r, doc.text
        self.kept += 1
        return None, doc.text


def empty_reject(doc: Doc, name: str) -> Reject | None:
    """Every chain rejects empty and whitespace-only documents the same way."""
    if not doc.text.strip():
        return Reject(f"{name}.empty", 0.0, "empty or whitespace-only document")
    return None
