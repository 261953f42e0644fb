"""English heuristics: Gopher quality, Gopher repetition, C4 quality.

Sources
    Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
    Training Gopher", appendix A.1.1 and table A1, https://arxiv.org/abs/2112.11446
    C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
    Text-to-Text Transformer", section 2.2, https://jmlr.org/papers/volume21/20-074/20-074.pdf
    Both as implemented by datatrove 0.10.1 (GopherQualityFilter, GopherRepetitionFilter,
    C4QualityFilter), whose decisions these agree with (benchmarks/filter_throughput.py).

Gopher quality (rule ``gopher_quality.<key>``)

    ========================  ========  ==============================================
    key                       default   rejects when
    ========================  ========  ==============================================
    min_words                 50        non-symbol words < 50
    max_words                 100000    non-symbol words > 100 000
    min_avg_word_length       3         mean length of non-symbol words < 3
    max_avg_word_length       10        ... > 10
    max_symbol_word_ratio     0.1       '#' per word, or '...'/'…' per word > 0.1
    max_bullet_lines_ratio    0.9       lines starting with '•' or '-' > 90 %
    max_ellipsis_lines_ratio  0.3       lines ending with '...' or '…' > 30 %
    min_alpha_words_ratio     0.8       words with an alphabetic character < 80 %
    min_stop_words            2         distinct stop words present < 2
    ========================  ========  ==============================================

``min_alpha_words_ratio`` and ``datatrove_compat``. The paper requires that "80% of words in a
document contain at least one alphabetic character", its words being split on whitespace.
datatrove counts spaCy's tokens, punctuation included, so every comma and full stop is a
"word" without a letter: clean prose and dialogue fall under 0.8 (median 0.78 among the
Gutenberg blocks it rejected; all of them are ≥ 0.96 over whitespace words). With
``datatrove_compat: false`` the ratio is over ``Doc.plain_words`` (whitespace words, tokens
made only of punctuation left out, so that pre-tokenised text such as WikiText's " , " does not
count commas either); with ``true`` it is datatrove's. The web kind keeps datatrove's
(FineWeb and FineWeb-2 ran it, and FineWeb-2's zh threshold 0.735 was fit to it); the curated
kinds use the paper's. Measured on the demo's normalised documents, rejected by this rule
datatrove's way → the paper's: C4 16 → 1 of 200, WikiText 17 → 0 of 62, Gutenberg 11 → 0 of 351, CMRC 2018
133 → 1 of 848.

Gopher repetition (rule ``gopher_repetition.<key>``), fractions of the document.
``datatrove_compat`` (the web kind): datatrove counts the most frequent n-gram even when it
occurs once, so in a short text one n-gram alone is over the fraction (a 20-character Tang
poem's 4 first words are 0.32 of it); the paper's "most frequent" n-gram is a repeated one,
which is what the curated kinds count (Tang poems rejected by ``top_4_gram``: 33 → 0 of 1,000).

    ===============================  =====================================================
    key                              default
    ===============================  =====================================================
    dup_para_frac / dup_line_frac    0.30 / 0.30   (duplicate paragraphs / lines, by count)
    dup_para_char_frac / _line_      0.20 / 0.20   (characters in duplicate paras / lines)
    top_ngrams                       2: 0.20, 3: 0.18, 4: 0.16 (chars in the top n-gram; the
                                     curated kinds add 1: 0.15, a keyword's share, punctuation
                                     left out: not in Gopher, it catches keyword stuffing)
    dup_ngrams                       5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10
    ===============================  =====================================================

C4 quality (rule ``c4_quality.<key>``): lines are kept only if they end in terminal
punctuation (. ? ! " ') and not '...', have ≥ 3 words, no word over 1000 characters,
no 'javascript', no cookie/terms-of-use phrase; citations ``[1]`` are removed. A document
is dropped if any kept line holds 'lorem ipsum' or '{', or if its kept lines hold fewer
than 5 sentences. With ``drop_lines`` (C4's and datatrove's behaviour) the kept document's
text is the kept lines; without it the text is left whole and only the decision is made.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from cama.clean.filters.base import (
    EN_WORD_RE,
    Doc,
    Filter,
    Reject,
    Removed,
    Scores,
    ratio,
)

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


def _find_duplicates(items: list[str]) -> tuple[int, int]:
    """(duplicate elements, their characters): every repeat after the first occurrence."""
    if len(set(items)) == len(items):
        return 0, 0
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _ngram_char_len(gram: tuple[str, ...]) -> int:
    return sum(map(len, gram))


class GopherQuality(Filter):
    name = "gopher_quality"
    SCORES = ("words", "avg_word_length", "hash_ratio", "ellipsis_ratio", "bullet_lines_ratio",
              "ellipsis_lines_ratio", "alpha_words_ratio", "stop_words")  # fmt: skip

    def __init__(self, **settings):
        super().__init__(**settings)
        self.stop_word_set = frozenset(
            self.stop_words if self.stop_words is not None else GOPHER_STOP_WORDS
        )

    def score(self, doc: Doc) -> Scores:
        ws = doc.word_stats
        n, n_words, text = ws.n_non_symbol, ws.n_words, doc.text
        lines = doc.lines
        if self.datatrove_compat:
            alpha = ratio(ws.n_alpha, n_words)
        else:
            plain = doc.plain_words
            alpha = ratio(sum(1 for w in plain if _has_alpha(w)), len(plain))
        return {
            "words": n,
            "avg_word_length": ratio(ws.non_symbol_chars, n),
            "hash_ratio": ratio(text.count("#"), n_words),
            "ellipsis_ratio": ratio(text.count("...") + text.count("…"), n_words),
            "bullet_lines_ratio": ratio(
                sum(s.lstrip().startswith(("•", "-")) for s in lines), len(lines)
            ),
            "ellipsis_lines_ratio": ratio(
                sum(s.rstrip().endswith(("...", "…")) for s in lines), len(lines)
            ),
            "alpha_words_ratio": alpha if n_words else None,
            "stop_words": len(self.stop_word_set.intersection(doc.word_counts)),
        }

    def select(self, s: Scores) -> Reject | None:
        n = s["words"]
        if self.min_words and n < self.min_words:
            return self.reject("min_words", n, f"{n:.0f} words < {self.min_words}")
        if self.max_words and n > self.max_words:
            return self.reject("max_words", n, f"{n:.0f} words > {self.max_words}")
        avg = s["avg_word_length"]
        if avg is not None:
            if self.min_avg_word_length and avg < self.min_avg_word_length:
                return self.reject(
                    "min_avg_word_length", avg,
                    f"mean word length {avg:.2f} < {self.min_avg_word_length}",
                )  # fmt: skip
            if self.max_avg_word_length and avg > self.max_avg_word_length:
                return self.reject(
                    "max_avg_word_length", avg,
                    f"mean word length {avg:.2f} > {self.max_avg_word_length}",
                )  # fmt: skip
        if s["hash_ratio"] is None:  # no word at all, symbols included: nothing more to check
            return None
        limit = self.max_symbol_word_ratio
        if limit and s["hash_ratio"] > limit:
            r = s["hash_ratio"]
            return self.reject("max_symbol_word_ratio", r, f"'#' per word {r:.3f} > {limit}")
        if limit and s["ellipsis_ratio"] > limit:
            r = s["ellipsis_ratio"]
            return self.reject("max_symbol_word_ratio", r, f"ellipses per word {r:.3f} > {limit}")
        r = s["bullet_lines_ratio"]
        if self.max_bullet_lines_ratio and r is not None and r > self.max_bullet_lines_ratio:
            return self.reject(
                "max_bullet_lines_ratio", r, f"bullet lines {r:.2f} > {self.max_bullet_lines_ratio}"
            )
        r = s["ellipsis_lines_ratio"]
        if self.max_ellipsis_lines_ratio and r is not None and r > self.max_ellipsis_lines_ratio:
            return self.reject(
                "max_ellipsis_lines_ratio", r,
                f"lines ending in an ellipsis {r:.2f} > {self.max_ellipsis_lines_ratio}",
            )  # fmt: skip
        r = s["alpha_words_ratio"]
        if self.min_alpha_words_ratio and r is not None and r < self.min_alpha_words_ratio:
            how = "spaCy tokens" if self.datatrove_compat else "words"
            return self.reject(
                "min_alpha_words_ratio", r,
                f"{how} with a letter {r:.2f} < {self.min_alpha_words_ratio}",
            )  # fmt: skip
        k = s["stop_words"]
        if self.min_stop_words and k < self.min_stop_words:
            return self.reject("min_stop_words", k, f"{k:.0f} stop words < {self.min_stop_words}")
        return None


def _has_alpha(word: str) -> bool:
    return any(ch.isalpha() for ch in word)


_PARAGRAPH_RE = re.compile(r"\n{2,}")
_LINES_RE = re.compile(r"\n+")


class GopherRepetition(Filter):
    name = "gopher_repetition"

    def __init__(self, **settings):
        super().__init__(**settings)
        # [[n, fraction], ...] as in the config; checked in order of n
        self.top = sorted((int(n), float(v)) for n, v in (self.top_ngrams or []))
        self.dup = sorted((int(n), float(v)) for n, v in (self.dup_ngrams or []))

    def score_names(self) -> tuple[str, ...]:
        return (
            ("chars", "dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")
            + tuple(f"top_{n}_gram" for n, _ in self.top)
            + tuple(f"dup_{n}_gram" for n, _ in self.dup)
        )

    def score(self, doc: Doc) -> Scores:
        text = doc.text
        size = len(text)
        out: Scores = {"chars": size}
        if not size:
            return out | dict.fromkeys(self.score_names()[1:])
        paragraphs = _PARAGRAPH_RE.split(text.strip())
        n_dup, chars = _find_duplicates(paragraphs)
        out["dup_para_frac"] = n_dup / len(paragraphs)
        out["dup_para_char_frac"] = chars / size
        lines = _LINES_RE.split(text)
        n_dup, chars = _find_duplicates(lines)
        out["dup_line_frac"] = n_dup / len(lines)
        out["dup_line_char_frac"] = chars / size
        for n, _ in self.top:
            out[f"top_{n}_gram"] = _top_ngram_chars(doc, n, self.datatrove_compat) / size
        repeats = bool(self.dup) and _has_repeat(doc, self.dup[0][0])
        for n, _ in self.dup:
            # no n-gram repeats at the smallest n, hence at none larger
            out[f"dup_{n}_gram"] = _dup_ngram_chars(doc, n) / size if repeats else 0.0
        return out

    def select(self, s: Scores) -> Reject | None:
        if not s["chars"]:
            return self.reject("empty", 0, "empty document")
        checks = (
            ("dup_para_frac", "duplicate paragraphs"),
            ("dup_para_char_frac", "chars in duplicate paragraphs"),
            ("dup_line_frac", "duplicate lines"),
            ("dup_line_char_frac", "chars in duplicate lines"),
        )
        for key, what in checks:
            limit, r = getattr(self, key), s[key]
            if limit and r > limit:
                return self.reject(key, r, f"{what} {r:.3f} > {limit}")
        for n, limit in self.top:
            r = s[f"top_{n}_gram"]
            if r > limit:
                return self.reject(f"top_{n}_gram", r, f"chars in the top {n}-gram {r:.3f} > {limit}")
        for n, limit in self.dup:
            r = s[f"dup_{n}_gram"]
            if r > limit:
                return self.reject(f"dup_{n}_gram", r, f"chars in duplicate {n}-grams {r:.3f} > {limit}")
        return None


SMALL_DOC_WORDS = 400  # below this, tuples and a set are faster than numpy's sorts


def _has_repeat(doc: Doc, n: int) -> bool:
    if len(doc.words) < SMALL_DOC_WORDS:
        grams = doc.ngrams(n)
        return len(set(grams)) != len(grams)
    keys = doc.gram_keys(n)
    return len(np.unique(keys)) != len(keys)


def _dup_ngram_chars_walk(doc: Doc, n: int) -> int:
    """Gopher's walk over every position, for small documents."""
    grams = doc.ngrams(n)
    if len(set(grams)) == len(grams):
        return 0
    ends = doc.word_ends.tolist()
    seen: set = set()
    idx, end, repeated = 0, len(grams), 0
    while idx < end:
        g = grams[idx]
        if g in seen:
            repeated += ends[idx + n] - ends[idx]
            idx += n
        else:
            seen.add(g)
            idx += 1
    return repeated


def _top_ngram_chars(doc: Doc, n: int, datatrove_compat: bool) -> float:
    """Characters covered by the most frequent word n-gram, as Gopher / datatrove count them:
    its length with the n-1 spaces datatrove joins it with, times its count (ties: the first
    to occur, as ``Counter.most_common``). n = 1 leaves out punctuation."""
    if len(doc.words) < SMALL_DOC_WORDS:
        grams = doc.ngrams(n)
        if n == 1:
            grams = [g for g in grams if not doc.punctuation[g[0]]]
        if not grams:
            return 0.0
        gram, c = Counter(grams).most_common(1)[0]
        if c < 2 and not datatrove_compat:
            return 0.0
        return float(sum(map(len, gram)) + n - 1) * c
    keys = doc.gram_keys(n)
    pos = np.arange(len(keys))
    if n == 1:
        keep = ~doc.punctuation_words
        keys, pos = keys[keep], pos[keep]
    if not len(keys):
        return 0.0
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    c = int(counts.max())
    if c < 2 and not datatrove_compat:
        return 0.0  # the paper's "most frequent" n-gram is a repeated one
    p = int(pos[first[counts == c].min()])
    ends = doc.word_ends
    return float((ends[p + n] - ends[p] + n - 1) * c)


def _dup_ngram_chars(doc: Doc, n: int) -> int:
    """Characters in repeated n-grams, counted greedily left to right without overlap (Gopher).

    Gopher's loop walks every position: a repeated n-gram is counted and jumped over, any other
    is remembered. Positions whose n-gram occurs once change nothing but the walk, so only the
    positions of n-grams that occur twice or more are visited here, in order (the same result,
    checked against the plain loop in tests/clean/test_filters.py).
    """
    if len(doc.words) < SMALL_DOC_WORDS:
        return _dup_ngram_chars_walk(doc, n)
    keys = doc.gram_keys(n)
    if not len(keys):
        return 0
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    positions = np.flatnonzero(counts[inverse] >= 2)
    if not len(positions):
        return 0
    ends = doc.word_ends
    seen: set[int] = set()
    next_idx = repeated = 0
    for p in positions.tolist():
        if p < next_idx:
            continue  # inside the last counted n-gram: the walk jumped over it
        g = int(inverse[p])
        if g in seen:
            repeated += int(ends[p + n] - ends[p])
            next_idx = p + n
        else:
            seen.add(g)
    return repeated


# ------------------------------------------------------------------------- C4
_CITATION_RE = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_END_PUNCTUATION = (".", "?", "!", '"', "'")
_POLICY = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# spaCy's sentencizer: a sentence ends after one of these tokens, at the next non-punctuation token
_SENT_END = frozenset(
    "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？｡。"
)


def _is_punct(tok: str) -> bool:
    import unicodedata

    return all(unicodedata.category(c).startswith("P") for c in tok)


def count_sentences(line: str) -> int:
    """Sentences in one line as spaCy's sentencizer counts them over spaCy's English tokens."""
    n = 1
    seen_end = False
    for tok in EN_WORD_RE.findall(line):
        if tok in _SENT_END:
            seen_end = True
        elif seen_end and (tok[0].isalnum() or not _is_punct(tok)):
            n += 1
            seen_end = False
    return n


class C4Quality(Filter):
    """C4's line rules. Lines that fail are counted and recorded (``Doc.removed``) with the
    rule that dropped them, when the document is kept and ``drop_lines`` is on."""

    name = "c4_quality"
    SCORES = ("sentences", "lorem_ipsum", "curly_bracket", "lines", "lines_dropped")

    def score(self, doc: Doc) -> Scores:
        n_sent = 0
        kept: list[str] = []
        dropped: list[tuple[str, str]] = []  # (reason, original line)
        cites: list[str] = []
        lorem = curly = False
        long_word = self.max_word_length
        cap = self.min_sentences or 0
        for raw in doc.lines:
            line = raw.strip()
            if not line:
                continue  # a blank line: a paragraph break, only whitespace is lost
            words = line.split()  # counted before citations are removed, as datatrove does
            if (
                long_word
                and long_word > 0
                and len(line) > long_word
                and any(len(w) > long_word for w in words)
            ):
                dropped.append(("max_word_length", raw))
                continue
            if self.remove_citations and "[" in line:
                found = _CITATION_RE.findall(line)
                if found:
                    line = _CITATION_RE.sub("", line)
                    cites += found
            if self.terminal_punctuation and (
                not line.endswith(_END_PUNCTUATION) or line.endswith("...")
            ):
                dropped.append(("terminal_punctuation", raw))
                continue
            if self.min_words_per_line and len(words) < self.min_words_per_line:
                dropped.append(("min_words_per_line", raw))
                continue
            low = line.lower()
            if self.lorem_ipsum and "lorem ipsum" in low:
                lorem = True
            if self.javascript and "javascript" in low:
                dropped.append(("javascript", raw))
                continue
            if self.curly_bracket and "{" in line:
                curly = True
            if self.policy and any(p in low for p in _POLICY):
                dropped.append(("policy", raw))
                continue
            if n_sent < cap:  # counted until the threshold is met, as datatrove does
                n_sent += count_sentences(line)
            kept.append(line)
        doc.__dict__["_c4"] = (kept, dropped, cites)
        return {
            "sentences": n_sent,
            "lorem_ipsum": float(lorem),
            "curly_bracket": float(curly),
            "lines": len(doc.lines),
            "lines_dropped": len(dropped),
        }

    def select(self, s: Scores) -> Reject | None:
        if self.lorem_ipsum and s["lorem_ipsum"]:
            return self.reject("lorem_ipsum", None, "'lorem ipsum' in a kept line")
        if self.curly_bracket and s["curly_bracket"]:
            return self.reject("curly_bracket", None, "'{' in a kept line")
        n = s["sentences"]
        if self.min_sentences and n < self.min_sentences:
            return self.reject(
                "min_sentences", n, f"{n:.0f} sentences in kept lines < {self.min_sentences}"
            )
        return None

    def rewrite(self, doc: Doc) -> None:
        if not self.drop_lines:
            return
        kept, dropped, cites = doc.__dict__.get("_c4") or (None, None, None)
        if kept is None:
            self.score(doc)
            kept, dropped, cites = doc.__dict__["_c4"]
        new = "\n".join(kept).strip()
        if new == doc.text:
            return
        before = len(doc.text.encode("utf-8"))
        removed = [
            Removed(f"{self.name}.{why}", line, len(line.encode("utf-8")), _LINE_DETAIL[why])
            for why, line in dropped
        ]
        removed += [
            Removed(f"{self.name}.citations", c, len(c.encode("utf-8")), "citation mark removed")
            for c in cites
        ]
        # what is left is whitespace: line ends, blank lines, indentation (never negative)
        rest = before - len(new.encode("utf-8")) - sum(r.nbytes for r in removed)
        if rest:
            removed.append(Removed(f"{self.name}.whitespace", "", rest, "whitespace between lines"))
        doc.set_text(new)
        doc.removed.extend(removed)


_LINE_DETAIL = {
    "max_word_length": "a word longer than max_word_length",
    "terminal_punctuation": "the line does not end in . ? ! \" '",
    "min_words_per_line": "fewer words than min_words_per_line",
    "javascript": "the line mentions javascript",
    "policy": "a cookie / terms-of-use / privacy-policy line",
}


FILTERS = {
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4_quality": C4Quality,
}
