"""Text cleanup for documents: line ends, Unicode form, control characters, OpenCC.

Two regimes, because what is noise in prose is meaning in code:

- natural language (zh, en): line ends become ``\\n``; the configured Unicode form
  (NFKC by default) is applied; traditional characters become simplified where the
  source asks for OpenCC; C0/C1 control characters and zero-width junk
  (U+200B..U+200D, U+2060, BOM U+FEFF) are removed, keeping ``\\t`` and ``\\n``;
  trailing whitespace on each line and blank lines at both ends are stripped.
  Nothing else is touched: inner blank lines, spaces and punctuation stay.
- code: always NFC (NFKC would rewrite full-width characters and ligatures that
  mean something in string literals); line ends become ``\\n``; only C0/C1 control
  characters (NUL included) are removed, keeping ``\\t``, ``\\n``, indentation,
  trailing whitespace and zero-width characters (they may sit inside literals).
"""

from __future__ import annotations

import functools
import re
import unicodedata

# C0 controls except \t (09) and \n (0A); \r (0D) is gone by the time this runs. DEL and C1.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Zero-width space/non-joiner/joiner, word joiner, BOM: invisible, and they split words
# and characters in ways that tokenizers and dedup shingles then treat as different text.
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
# Unicode line and paragraph separators act as line breaks in prose.
_LINE_SEPARATORS = re.compile("[\u2028\u2029]")
# Whitespace other than \n at the end of a line (NFKC turns U+3000 into a plain space).
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)


def unify_line_ends(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` become ``\\n``."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalise_unicode(text: str, form: str) -> str:
    """Apply NFC or NFKC; ``none`` leaves the text as it is."""
    if form == "none":
        return text
    return unicodedata.normalize(form, text)


def remove_control_chars(text: str) -> str:
    """Drop C0/C1 control characters (NUL included) but keep ``\\t`` and ``\\n``."""
    return _CONTROL.sub("", text)


def remove_zero_width(text: str) -> str:
    return _ZERO_WIDTH.sub("", text)


def strip_trailing_space(text: str) -> str:
    """Strip whitespace at the end of every line, and blank lines at both ends."""
    return _TRAILING_SPACE.sub("", text).strip("\n")


@functools.lru_cache(maxsize=4)
def opencc_converter(config: str):
    """One OpenCC converter per config: building one loads its dictionaries (~50 ms)."""
    import opencc  # heavy and only needed by sources with opencc: true

    return opencc.OpenCC(config)


def to_simplified(text: str, config: str) -> str:
    return opencc_converter(config).convert(text)


def clean_prose(text: str, unicode_form: str = "NFKC", opencc_config: str | None = None) -> str:
    """Clean natural-language text; ``opencc_config`` (e.g. ``t2s``) converts scripts.

    OpenCC runs after NFKC, because NFKC maps CJK compatibility ideographs
    (U+F900..) to the unified ones that OpenCC's dictionaries are written in.
    """
    text = unify_line_ends(text)
    text = _LINE_SEPARATORS.sub("\n", text)
    text = normalise_unicode(text, unicode_form)
    if opencc_config:
        text = to_simplified(text, opencc_config)
    text = remove_zero_width(remove_control_chars(text))
    return strip_trailing_space(text)


def clean_code(text: str) -> str:
    """Clean source code gently: NFC, ``\\n`` line ends, no control characters."""
    return remove_control_chars(normalise_unicode(unify_line_ends(text), "NFC"))


def clean_text(
    text: str, lang: str, unicode_form: str = "NFKC", opencc_config: str | None = None
) -> str:
    """The cleanup for a document of ``lang`` (zh, en or code)."""
    if lang == "code":
        return clean_code(text)
    return clean_prose(text, unicode_form, opencc_config)


def is_blank(text: str) -> bool:
    return not text.strip()
