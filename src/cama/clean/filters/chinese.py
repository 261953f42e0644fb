"""Chinese heuristics: FineWeb-2 cmn_Hani (Gopher + FineWeb quality over jieba words) and ChineseWebText.

Sources
    FineWeb-2: Penedo et al. 2025, "FineWeb2: One Pipeline to Scale Them All",
    https://arxiv.org/abs/2506.20920; per-language thresholds in
    https://github.com/huggingface/fineweb-2 configs/cmn_Hani.yml, run with datatrove's
    GopherRepetitionFilter, FineWebQualityFilter and GopherQualityFilter over jieba words.
    The language-ID step (GlotLID score ≥ 0.692) belongs to the normalise stage's lang_check.
    ChineseWebText: Chen et al. 2023, "ChineseWebText: Large-scale High-quality Chinese Web
    Text Extracted with Effective Evaluation Model", section 3.1, https://arxiv.org/abs/2311.01149

FineWeb-2 cmn_Hani, as configured in config/schema.yaml (``gopher_repetition`` and
``gopher_quality`` are the English classes with these thresholds):

    ===========================  ==========================================================
    gopher_repetition            dup_line_frac 0.287 (paragraph/char fractions: Gopher's)
                                 top 2/3/4-gram 0.256 / 0.201 / 0.171
                                 dup 5..10-gram 0.198 0.182 0.167 0.154 0.140 0.127
    fineweb_quality              line_punct_thr 0.106 (lines ending in terminal punctuation)
                                 short_line_thr 0.67 of lines ≤ 30 chars
                                 char_dup_ratio 0.01, new_line_ratio 0.178 (newlines per word)
    gopher_quality               min_words 50, mean word length 1–5, non-alpha words ≤ 0.735
                                 (min_alpha_words_ratio 0.735), ≥ 2 of 22 stop words
    ===========================  ==========================================================

ChineseWebText preprocessing (rule ``chinesewebtext.<key>``)

    =======================  =======  ===================================================
    min_chars                200      characters (whitespace excluded) < 200
    min_mean_line_length     10       mean non-blank line length < 10
    min_cjk_ratio            0.30     CJK characters / non-whitespace characters < 0.30
    max_char_dup_ratio       0.50     characters in repeated character 13-grams > 50 %
    max_traditional_ratio    0.05     traditional-only characters / CJK characters > 5 %
                                      (the paper drops traditional text; we also let the
                                      normalise stage convert it with OpenCC first)
    =======================  =======  ===================================================

The paper's "sensitive words ≤ 0.5 per line" rule is ``toxicity.max_per_line`` (toxicity.py).
"""

from __future__ import annotations

import re
from functools import lru_cache

from cama.clean.filters.base import TERMINAL_PUNCTUATION, Doc, Filter, Reject, Scores, ratio
from cama.clean.filters.english import GopherQuality, GopherRepetition, _find_duplicates

FINEWEB2_CMN_STOP_WORDS = [
    "的", "年", "在", "月", "是", "和", "日", "了", "於", "·", "為",
    "有", "被", "人", "中", "为", "他", "與", "後", "也", "而", "由",
]  # fmt: skip

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WS_RE = re.compile(r"\s+")
_STOP_CHARS = tuple(TERMINAL_PUNCTUATION)


class FineWebQuality(Filter):
    """datatrove's FineWebQualityFilter, over the shared word split."""

    name = "fineweb_quality"
    SCORES = ("lines", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "new_line_ratio")

    def score(self, doc: Doc) -> Scores:
        lines = doc.nonblank_lines
        n = len(lines)
        if not n:
            return {"lines": 0} | dict.fromkeys(self.SCORES[1:])
        return {
            "lines": n,
            "line_punct_ratio": sum(1 for line in lines if line.endswith(_STOP_CHARS)) / n,
            "short_line_ratio": sum(1 for line in lines if len(line) <= self.short_line_length) / n,
            "char_dup_ratio": _find_duplicates(lines)[1]
            / max(1, len(doc.text) - doc.text.count("\n")),
            "new_line_ratio": doc.text.count("\n") / max(1, doc.word_stats.n_words),
        }

    def select(self, s: Scores) -> Reject | None:
        if not s["lines"]:
            return self.reject("empty", 0, "no non-blank line")
        r = s["line_punct_ratio"]
        if r < self.line_punct_thr and not (r == 0 and self.line_punct_exclude_zero):
            return self.reject(
                "line_punct_thr", r, f"lines ending in punctuation {r:.3f} < {self.line_punct_thr}"
            )
        r = s["short_line_ratio"]
        if r > self.short_line_thr:
            return self.reject(
                "short_line_thr", r,
                f"lines of ≤ {self.short_line_length} chars {r:.3f} > {self.short_line_thr}",
            )  # fmt: skip
        r = s["char_dup_ratio"]
        if r > self.char_dup_ratio:
            return self.reject(
                "char_dup_ratio", r, f"chars in duplicate lines {r:.3f} > {self.char_dup_ratio}"
            )
        r = s["new_line_ratio"]
        if r > self.new_line_ratio:
            return self.reject(
                "new_line_ratio", r, f"newlines per word {r:.3f} > {self.new_line_ratio}"
            )
        return None


@lru_cache(maxsize=1)
def traditional_chars() -> frozenset[str]:
    """Characters that OpenCC's t2s turns into another character: traditional-only forms."""
    import opencc  # heavy; only needed when the rule is on

    chars = [chr(c) for c in range(0x4E00, 0xA000)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    return frozenset(a for a, b in zip(chars, converted, strict=True) if a != b)


class ChineseWebText(Filter):
    name = "chinesewebtext"

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.max_traditional_ratio is not None and self.max_traditional_ratio < 1:
            self._trad_table = dict.fromkeys(map(ord, traditional_chars()))
        else:
            self._trad_table = None

    SCORES = ("chars", "mean_line_length", "cjk_ratio", "traditional_ratio", "char_dup_ratio")

    def score(self, doc: Doc) -> Scores:
        dense = _WS_RE.sub("", doc.text)
        n = len(dense)
        lines = doc.nonblank_lines
        n_cjk = len(_CJK_RE.findall(dense))
        trad = None
        if self._trad_table is not None and n_cjk:
            trad = (n - len(dense.translate(self._trad_table))) / n_cjk
        dup = None
        if self.max_char_dup_ratio is not None and self.max_char_dup_ratio < 1:
            dup = char_ngram_dup_ratio(dense, self.char_ngram)
        return {
            "chars": n,
            "mean_line_length": ratio(sum(len(line.strip()) for line in lines), len(lines)),
            "cjk_ratio": ratio(n_cjk, n),
            "traditional_ratio": trad,
            "char_dup_ratio": dup,
        }

    def select(self, s: Scores) -> Reject | None:
        n = s["chars"]
        if n < self.min_chars or n == 0:
            return self.reject("min_chars", n, f"{n:.0f} characters < {self.min_chars}")
        mean = s["mean_line_length"]
        if mean < self.min_mean_line_length:
            return self.reject(
                "min_mean_line_length", mean,
                f"mean line length {mean:.1f} < {self.min_mean_line_length}",
            )  # fmt: skip
        r = s["cjk_ratio"]
        if r < self.min_cjk_ratio:
            return self.reject("min_cjk_ratio", r, f"CJK characters {r:.3f} < {self.min_cjk_ratio}")
        r = s["traditional_ratio"]
        if r is not None and self._trad_table is not None and r > self.max_traditional_ratio:
            return self.reject(
                "max_traditional_ratio", r,
                f"traditional characters {r:.3f} > {self.max_traditional_ratio}",
            )  # fmt: skip
        r = s["char_dup_ratio"]
        if r is not None and self.max_char_dup_ratio < 1 and r > self.max_char_dup_ratio:
            return self.reject(
                "max_char_dup_ratio", r,
                f"chars in repeated {self.char_ngram}-grams {r:.3f} > {self.max_char_dup_ratio}",
            )  # fmt: skip
        return None


def char_ngram_dup_ratio(s: str, n: int) -> float:
    """Fraction of characters inside repeated character n-grams (greedy, no overlap)."""
    end = len(s) - n + 1
    if end <= 1:
        return 0.0
    grams = [s[i : i + n] for i in range(end)]
    if len(set(grams)) == end:
        return 0.0
    seen: set[str] = set()
    idx = repeated = 0
    while idx < end:
        g = grams[idx]
        if g in seen:
            repeated += n
            idx += n
        else:
            seen.add(g)
            idx += 1
    return repeated / len(s)


FILTERS = {
    "chinesewebtext": ChineseWebText,
    "gopher_repetition": GopherRepetition,
    "fineweb_quality": FineWebQuality,
    "gopher_quality": GopherQuality,
}
