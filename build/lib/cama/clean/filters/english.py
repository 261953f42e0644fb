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

Gopher repetition (rule ``gopher_repetition.<key>``), fractions of the document

    ===============================  =====================================================
    key                              default
    ===============================  =====================================================
    dup_para_frac / dup_line_frac    0.30 / 0.30   (duplicate paragraphs / lines, by count)
    dup_para_char_frac / _line_      0.20 / 0.20   (characters in duplicate paras / lines)
    top_ngrams                       2: 0.20, 3: 0.18, 4: 0.16 (chars in the top n-gram)
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

from cama.clean.filters.base import EN_WORD_RE, Doc, Filter, Reject

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

    def __init__(self, **settings):
        super().__init__(**settings)
        self.stop_word_set = frozenset(
            self.stop_words if self.stop_words is not None else GOPHER_STOP_WORDS
        )

    def filter(self, doc: Doc) -> Reject | None:
        ws = doc.word_stats
        n = ws.n_non_symbol
        if self.min_words and n < self.min_words:
            return self.reject("min_words", n, f"{n} words < {self.min_words}")
        if self.max_words and n > self.max_words:
            return self.reject("max_words", n, f"{n} words > {self.max_words}")
        if n:
            avg = ws.non_symbol_chars / n
            if self.min_avg_word_length and avg < self.min_avg_word_length:
                return self.reject(
                    "min_avg_word_length",
                    avg,
                    f"mean word length {avg:.2f} < {self.min_avg_word_length}",
                )
            if self.max_avg_word_length and avg > self.max_avg_word_length:
                return self.reject(
                    "max_avg_word_length",
                    avg,
                    f"mean word length {avg:.2f} > {self.max_avg_word_length}",
                )
        text, n_words = doc.text, ws.n_words
        if not n_words:
            return None
        if self.max_symbol_word_ratio:
            r = text.count("#") / n_words
            if r > self.max_symbol_word_ratio:
                return self.reject(
                    "max_symbol_word_ratio",
                    r,
                    f"'#' per word {r:.3f} > {self.max_symbol_word_ratio}",
                )
            r = (text.count("...") + text.count("…")) / n_words
            if r > self.max_symbol_word_ratio:
                return self.reject(
                    "max_symbol_word_ratio",
                    r,
                    f"ellipses per word {r:.3f} > {self.max_symbol_word_ratio}",
                )
        lines = doc.lines
        if self.max_bullet_lines_ratio and lines:
            r = sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines)
            if r > self.max_bullet_lines_ratio:
                return self.reject(
                    "max_bullet_lines_ratio",
                    r,
                    f"bullet lines {r:.2f} > {self.max_bullet_lines_ratio}",
                )
        if self.max_ellipsis_lines_ratio and lines:
            r = sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines)
            if r > self.max_ellipsis_lines_ratio:
                return self.reject(
                    "max_ellipsis_lines_ratio",
                    r,
                    f"lines ending in an ellipsis {r:.2f} > {self.max_ellipsis_lines_ratio}",
                )
        if self.min_alpha_words_ratio:
            r = ws.n_alpha / n_words
            if r < self.min_alpha_words_ratio:
                return self.reject(
                    "min_alpha_words_ratio",
                    r,
                    f"alphabetic words {r:.2f} < {self.min_alpha_words_ratio}",
                )
        if self.min_stop_words:
            k = len(self.stop_word_set.intersection(doc.word_counts))
            if k < self.min_stop_words:
                return self.reject("min_stop_words", k, f"{k} stop words < {self.min_stop_words}")
        return None


_PARAGRAPH_RE = re.compile(r"\n{2,}")
_LINES_RE = re.compile(r"\n+")


class GopherRepetition(Filter):
    name = "gopher_repetition"

    def __init__(self, **settings):
        super().__init__(**settings)
        # [[n, fraction], ...] as in the config; checked in order of n
        self.top = sorted((int(n), float(v)) for n, v in (self.top_ngrams or []))
        self.dup = sorted((int(n), float(v)) for n, v in (self.dup_ngrams or []))

    def filter(self, doc: Doc) -> Reject | None:
        text = doc.text
        if not text:
            return self.reject("empty", 0, "empty document")
        size = len(text)
        paragraphs = _PARAGRAPH_RE.split(text.strip())
        n_dup, chars = _find_duplicates(paragraphs)
        if self.dup_para_frac and n_dup / len(paragraphs) > self.dup_para_frac:
            r = n_dup / len(paragraphs)
            return self.reject(
                "dup_para_frac", r, f"duplicate paragraphs {r:.3f} > {self.dup_para_frac}"
            )
        if self.dup_para_char_frac and chars / size > self.dup_para_char_frac:
            r = chars / size
            return self.reject(
                "dup_para_char_frac",
                r,
                f"chars in duplicate paragraphs {r:.3f} > {self.dup_para_char_frac}",
            )
        lines = _LINES_RE.split(text)
        n_dup, chars = _find_duplicates(lines)
        if self.dup_line_frac and n_dup / len(lines) > self.dup_line_frac:
            r = n_dup / len(lines)
            return self.reject(
                "dup_line_frac", r, f"duplicate lines {r:.3f} > {self.dup_line_frac}"
            )
        if self.dup_line_char_frac and chars / size > self.dup_line_char_frac:
            r = chars / size
            return self.reject(
                "dup_line_char_frac",
                r,
                f"chars in duplicate lines {r:.3f} > {self.dup_line_char_frac}",
            )

        for n, limit in self.top:
            grams = doc.ngrams(n)
            if not grams:
                continue
            counts = doc.__dict__.setdefault("_ngram_counts", {})
            if n not in counts:
                from collections import Counter

                counts[n] = Counter(grams).most_common(1)[0]
            gram, c = counts[n]
            r = (_ngram_char_len(gram) + n - 1) * c / size  # datatrove joins the n-gram with spaces
            if r > limit:
                return self.reject(
                    f"top_{n}_gram", r, f"chars in the top {n}-gram {r:.3f} > {limit}"
                )

        if self.dup and not _has_repeat(doc, self.dup[0][0]):
            return None  # no n-gram repeats at the smallest n, hence at none larger
        for n, limit in self.dup:
            r = _dup_ngram_chars(doc, n) / size
            if r > limit:
                return self.reject(
                    f"dup_{n}_gram", r, f"chars in duplicate {n}-grams {r:.3f} > {limit}"
                )
        return None


def _has_repeat(doc: Doc, n: int) -> bool:
    grams = doc.ngrams(n)
    return len(set(grams)) != len(grams)


def _dup_ngram_chars(doc: Doc, n: int) -> int:
    """Characters in repeated n-grams, counted greedily left to right without overlap (Gopher)."""
    grams = doc.ngrams(n)
    if len(set(grams)) == len(grams):
        return 0
    cum = doc.__dict__.get("_cum_len")
    if cum is None:
        cum = [0]
        total = 0
        for x in doc.word_lengths:
            total += x
            cum.append(total)
        doc.__dict__["_cum_len"] = cum
    seen: set = set()
    add = seen.add
    idx, end, repeated = 0, len(grams), 0
    while idx < end:
        g = grams[idx]
        if g in seen:
            repeated += cum[idx + n] - cum[idx]
            idx += n
        else:
            add(g)
            idx += 1
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
    name = "c4_quality"

    def filter(self, doc: Doc) -> Reject | None:
        n_sent = 0
        kept: list[str] = []
        long_word = self.max_word_length
        for line in doc.lines:
            line = line.strip()
            words = line.split()  # counted before citations are removed, as datatrove does
            if (
                long_word
                and long_word > 0
                and len(line) > long_word
                and any(len(w) > long_word for w in words)
            ):
                continue
            if self.remove_citations and "[" in line:
                line = _CITATION_RE.sub("", line)
            if self.terminal_punctuation and (
                not line.endswith(_END_PUNCTUATION) or line.endswith("...")
            ):
                continue
            if self.min_words_per_line and len(words) < self.min_words_per_line:
                continue
            low = line.lower()
            if self.lorem_ipsum and "lorem ipsum" in low:
                return self.reject("lorem_ipsum", None, "'lorem ipsum' in a kept line")
            if self.javascript and "javascript" in low:
                continue
            if self.curly_bracket and "{" in line:
                return self.reject("curly_bracket", None, "'{' in a kept line")
            if self.policy and any(p in low for p in _POLICY):
                continue
            if self.min_sentences and n_sent < self.min_sentences:
                n_sent += count_sentences(line)
            kept.append(line)
        if self.min_sentences and n_sent < self.min_sentences:
            return self.reject(
                "min_sentences", n_sent, f"{n_sent} sentences in kept lines < {self.min_sentences}"
            )
        if self.drop_lines:
            new = "\n".join(kept).strip()
            if new != doc.text:
                doc.set_text(new)
        return None


FILTERS = {
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4_quality": C4Quality,
}
