"""Source-code heuristics: long lines, minified and generated files, data files, encoded blobs.

Sources
    The Stack: Kocetkov et al. 2022, "The Stack: 3 TB of permissively licensed source code",
    section 3 (after Codex, Chen et al. 2021, https://arxiv.org/abs/2107.03374),
    https://arxiv.org/abs/2211.15533: drop files whose longest line exceeds 1000 characters,
    whose mean line length exceeds 100, or whose alphanumeric fraction is under 0.25.
    StarCoder: Li et al. 2023, "StarCoder: may the source be with you!", section 3,
    https://arxiv.org/abs/2305.06161: auto-generated files (keywords in the first 5 lines),
    encoded data (base64 / hex / unicode-escape runs: any run over 1024 characters or
    together over 50 % of the file).

Rule ``code_quality.<key>``

    ========================  =======  ========================================================
    key                       default  rejects when
    ========================  =======  ========================================================
    max_line_length           1000     longest line > 1000 characters (The Stack)
    max_mean_line_length      100      mean line length > 100 (The Stack; minified code)
    min_alnum_frac            0.25     alphanumeric characters / all < 0.25 (The Stack)
    min_whitespace_frac       0.05     whitespace / all < 0.05 (ours: minified or packed code)
    generated_markers         ...      a marker in the first ``header_lines`` lines (StarCoder)
    max_encoded_run           1024     one base64/hex/\\u run longer than this (StarCoder)
    max_encoded_frac          0.5      all such runs together > 50 % of the file (StarCoder)
    max_data_char_frac        0.7      digits and JSON punctuation / non-whitespace > 70 %
                                       (ours: data files, e.g. number tables and JSON dumps)
    ========================  =======  ========================================================
"""

from __future__ import annotations

import re

from cama.clean.filters.base import Doc, Filter, Reject, Scores

_ENCODED_RE = re.compile(
    r"[a-zA-Z0-9+/\n=]{64,}"  # base64
    r"|(?:\b(?:0x|\\x)?[0-9a-fA-F]{2}(?:,|\b\s*)){8,}"  # hex bytes
    r"|(?:\\u[0-9a-fA-F]{4}){8,}"  # unicode escapes
)
_ALNUM_RE = re.compile(r"[^\W_]")
_WS_RE = re.compile(r"\s")
_DATA_RE = re.compile(r"[0-9\[\]{},:\".+\-eE]")
_NONWS_RE = re.compile(r"\S")


class CodeQuality(Filter):
    name = "code_quality"

    SCORES = ("chars", "longest_line", "mean_line_length", "alnum_frac", "whitespace_frac",
              "generated", "encoded_run", "encoded_frac", "data_char_frac")  # fmt: skip

    def score(self, doc: Doc) -> Scores:
        text = doc.text
        if not text.strip():
            return {"chars": 0} | dict.fromkeys(self.SCORES[1:])
        lines = doc.lines
        n = len(text)
        head = "\n".join(lines[: self.header_lines]).lower()
        markers = self.generated_markers or []
        generated = next((i for i, m in enumerate(markers) if m.lower() in head), None)
        runs = [len(m) for m in _ENCODED_RE.findall(text)]
        nonws = len(_NONWS_RE.findall(text))
        return {
            "chars": n,
            "longest_line": max(map(len, lines)),
            "mean_line_length": sum(map(len, lines)) / len(lines),
            "alnum_frac": len(_ALNUM_RE.findall(text)) / n,
            "whitespace_frac": len(_WS_RE.findall(text)) / n,
            "generated": None if generated is None else float(generated),  # which marker
            "encoded_run": max(runs, default=0),
            "encoded_frac": sum(runs) / n,
            "data_char_frac": len(_DATA_RE.findall(text)) / max(1, nonws),
        }

    def select(self, s: Scores) -> Reject | None:
        if not s["chars"]:
            return self.reject("empty", 0, "empty or whitespace-only document")
        v = s["longest_line"]
        if self.max_line_length and v > self.max_line_length:
            return self.reject(
                "max_line_length", v, f"a line of {v:.0f} chars > {self.max_line_length}"
            )
        v = s["mean_line_length"]
        if self.max_mean_line_length and v > self.max_mean_line_length:
            return self.reject(
                "max_mean_line_length", v, f"mean line length {v:.1f} > {self.max_mean_line_length}"
            )
        v = s["alnum_frac"]
        if self.min_alnum_frac and v < self.min_alnum_frac:
            return self.reject(
                "min_alnum_frac", v, f"alphanumeric fraction {v:.3f} < {self.min_alnum_frac}"
            )
        v = s["whitespace_frac"]
        if self.min_whitespace_frac and v < self.min_whitespace_frac:
            return self.reject(
                "min_whitespace_frac", v, f"whitespace fraction {v:.3f} < {self.min_whitespace_frac}"
            )
        v = s["generated"]
        if self.generated_markers and v is not None and v < len(self.generated_markers):
            marker = self.generated_markers[int(v)]
            return self.reject(
                "generated_markers", None, f"'{marker}' in the first {self.header_lines} lines"
            )
        v = s["encoded_run"]
        if self.max_encoded_run and v > self.max_encoded_run:
            return self.reject(
                "max_encoded_run", v, f"an encoded run of {v:.0f} chars > {self.max_encoded_run}"
            )
        v = s["encoded_frac"]
        if self.max_encoded_frac and v > self.max_encoded_frac:
            return self.reject(
                "max_encoded_frac", v, f"encoded data {v:.3f} > {self.max_encoded_frac}"
            )
        v = s["data_char_frac"]
        if self.max_data_char_frac and v > self.max_data_char_frac:
            return self.reject(
                "max_data_char_frac", v,
                f"digits and JSON punctuation {v:.3f} > {self.max_data_char_frac}",
            )  # fmt: skip
        return None


FILTERS = {"code_quality": CodeQuality}
