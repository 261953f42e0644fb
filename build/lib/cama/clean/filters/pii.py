"""PII masking for kept documents: e-mail addresses, phone numbers, Chinese resident ID numbers.

Not a filter: nothing is dropped; matches are replaced by the tokens in ``filter.pii``
(``<EMAIL>``, ``<PHONE>``, ``<ID>``) and counted in the stage's stats.

- e-mail: RFC 5322's common subset, ``local@domain.tld``;
- phone: Chinese mobile numbers (``1[3-9]`` + 9 digits, optional ``+86``), and international
  numbers written with a ``+`` country code and at least 8 more digits in groups;
- cn_id: 18-character resident identity numbers (GB 11643-1999): 6-digit region, a valid
  birth date 18xx–20xx, 3-digit sequence, and an ISO 7064 MOD 11-2 check character
  (0–9 or X). A number whose check character does not match is left alone.

ID numbers are masked first, so that their digits are never taken for a phone number.
"""

from __future__ import annotations

import re
from collections import Counter

EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])"
)
CN_ID_RE = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)"  # Chinese mobile
    r"|(?<![\w+])\+\d{1,3}[- .]?(?:\(\d{1,4}\)[- .]?)?\d{2,4}(?:[- .]?\d{2,4}){1,4}(?!\d)"  # +CC ...
)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_valid(s: str) -> bool:
    """ISO 7064 MOD 11-2 check character of an 18-character resident ID number."""
    if len(s) != 18 or not s[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == s[17].upper()


def _phone_ok(m: str) -> bool:
    return sum(c.isdigit() for c in m) >= 10


class PiiMasker:
    """Replace PII in a text; ``counts`` accumulates per kind over every call."""

    def __init__(
        self,
        enabled: bool = True,
        email: str = "<EMAIL>",
        phone: str = "<PHONE>",
        cn_id: str = "<ID>",
    ):
        self.enabled = enabled
        self.tokens = {"email": email, "phone": phone, "cn_id": cn_id}
        self.counts: Counter = Counter({"email": 0, "phone": 0, "cn_id": 0})

    def __call__(self, text: str) -> str:
        if not self.enabled:
            return text
        out, n = mask(text, self.tokens)
        self.counts.update(n)
        return out


def mask(text: str, tokens: dict[str, str] | None = None) -> tuple[str, Counter]:
    """Return the masked text and how many of each kind were replaced."""
    tokens = tokens or {"email": "<EMAIL>", "phone": "<PHONE>", "cn_id": "<ID>"}
    counts: Counter = Counter()
    has_digit = re.search(r"\d", text) is not None
    if "@" in text:

        def sub_email(m: re.Match) -> str:
            counts["email"] += 1
            return tokens["email"]

        text = EMAIL_RE.sub(sub_email, text)
    if has_digit:

        def sub_id(m: re.Match) -> str:
            if not cn_id_valid(m.group()):
                return m.group()
            counts["cn_id"] += 1
            return tokens["cn_id"]

        def sub_phone(m: re.Match) -> str:
            if not _phone_ok(m.group()):
                return m.group()
            counts["phone"] += 1
            return tokens["phone"]

        text = CN_ID_RE.sub(sub_id, text)
        text = PHONE_RE.sub(sub_phone, text)
    return text, counts


def count_pii(text: str) -> Counter:
    """How many PII items ``mask`` would replace (for tests and reports)."""
    return mask(text)[1]
