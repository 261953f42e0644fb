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

from cama.clean.filters.base import Doc, Filter, Reject

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

    def filter(self, doc: Doc) -> Reject | None:
        text = doc.text
        if not text.strip():
            return self.reject("empty", 0, "empty or whitespace-only document")
        lines = doc.lines
        longest = max(map(len, lines))
        if self.max_line_length and longest > self.max_line_length:
            return self.reject(
                "max_line_length", longest, f"a line of {longest} chars > {self.max_line_length}"
            )
        mean = sum(map(len, lines)) / len(lines)
        if self.max_mean_line_length and mean > self.max_mean_line_length:
            return self.reject(
                "max_mean_line_length",
                mean,
                f"mean line length {mean:.1f} > {self.max_mean_line_length}",
            )
        n = len(text)
        r = len(_ALNUM_RE.findall(text)) / n
        if self.min_alnum_frac and r < self.min_alnum_frac:
            return self.reject(
                "min_alnum_frac", r, f"alphanumeric fraction {r:.3f} < {self.min_alnum_frac}"
            )
        r = len(_WS_RE.findall(text)) / n
        if self.min_whitespace_frac and r < self.min_whitespace_frac:
            return self.reject(
                "min_whitespace_frac",
                r,
                f"whitespace fraction {r:.3f} < {self.min_whitespace_frac}",
            )
        if self.generated_markers:
            head = "\n".join(lines[: self.header_lines]).lower()
            for marker in self.generated_markers:
                if marker.lower() in head:
                    return self.reject(
                        "generated_markers",
                        None,
                        f"'{marker}' in the first {self.header_lines} lines",
                    )
        if self.max_encoded_run or self.max_encoded_frac:
            runs = [len(m) for m in _ENCODED_RE.findall(text)]
            if runs:
                if self.max_encoded_run and max(runs) > self.max_encoded_run:
                    return self.reject(
                        "max_encoded_run",
                        max(runs),
                        f"an encoded run of {max(runs)} chars > {self.max_encoded_run}",
                    )
                r = sum(runs) / n
                if self.max_encoded_frac and r > self.max_encoded_frac:
                    return self.reject(
                        "max_encoded_frac", r, f"encoded data {r:.3f} > {self.max_encoded_frac}"
                    )
        if self.max_data_char_frac:
            nonws = len(_NONWS_RE.findall(text))
            r = len(_DATA_RE.findall(text)) / max(1, nonws)
            if r > self.max_data_char_frac:
                return self.reject(
                    "max_data_char_frac",
                    r,
                    f"digits and JSON punctuation {r:.3f} > {self.max_data_char_frac}",
                )
        return None


FILTERS = {"code_quality": CodeQuality}
