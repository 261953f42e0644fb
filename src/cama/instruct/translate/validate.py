"""Checks on every answer of the translation API, each failure a named rejection.

==================  =====================================================================
reason              when
==================  =====================================================================
``empty``           the answer is empty or whitespace
``truncated``       the API stopped at ``max_tokens`` (``finish_reason: length``)
``refusal``         the answer opens like a refusal ("I'm sorry, but I can't", "抱歉，我无法",
                    "As an AI") and the source text did not
``wrong_language``  fastText lid.176 (the copy the corpus stage uses) names another language
                    with probability ≥ ``min_lang_score``; a zh answer that is mostly Han
                    characters counts as Chinese; answers with under 20 letters are not judged
``length_ratio``    UTF-8 bytes of answer / source outside [min, max] (bytes, not characters:
                    a Chinese character is 3 bytes, so en ↔ zh stays near 1); sources under
                    16 bytes are not judged
``code_changed``    a masked code block, inline code or ``$$…$$`` formula is missing, repeated
                    or altered (see ``mask``): code comes back byte for byte or not at all
==================  =====================================================================

Code is masked before translation: each fenced block, inline code span and display formula
becomes a placeholder ``⟦0⟧``, ``⟦1⟧`` ... that the model is told to keep; the answer must
hold each placeholder exactly once, and the original bytes are put back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cama.corpus.langid import judgeable, predict, same_language

CODE = re.compile(r"```.*?```|`[^`\n]+`|\$\$.+?\$\$", re.S)
PLACEHOLDER = re.compile(r"⟦(\d+)⟧")
REFUSAL = re.compile(
    r"^\s*(?:I['’]?m sorry|I am sorry|Sorry,|I can(?:not|['’]t) (?:help|assist|translate|comply)|"
    r"I(?: am|['’]m) unable|As an AI|作为一个?(?:AI|人工智能)|抱歉|对不起|很抱歉|我无法|我不能)",
    re.I,
)


@dataclass(frozen=True)
class Masked:
    text: str  # with placeholders
    spans: list[str]  # the masked originals, by placeholder number


def mask(text: str) -> Masked:
    spans: list[str] = []

    def sub(m: re.Match) -> str:
        spans.append(m.group(0))
        return f"⟦{len(spans) - 1}⟧"

    return Masked(CODE.sub(sub, text), spans)


def unmask(text: str, masked: Masked) -> str | None:
    """The answer with the originals put back, or None if a placeholder is missing or repeated."""
    found = [int(n) for n in PLACEHOLDER.findall(text)]
    if sorted(found) != list(range(len(masked.spans))):
        return None
    return PLACEHOLDER.sub(lambda m: masked.spans[int(m.group(1))], text)


@dataclass(frozen=True)
class Checks:
    min_length_ratio: float = 0.3
    max_length_ratio: float = 3.0
    min_lang_score: float = 0.5

    @classmethod
    def from_config(cls, section: dict) -> Checks:
        return cls(
            section["min_length_ratio"], section["max_length_ratio"], section["min_lang_score"]
        )


def check_language(text: str, lang: str, min_score: float) -> bool:
    sample = PLACEHOLDER.sub(" ", text).replace("\n", " ")
    if not judgeable(sample):
        return True
    label, score = predict([sample])[0]
    return score < min_score or same_language(lang, label, sample)


def check_answer(
    source: str,
    answer: str | None,
    finish_reason: str | None,
    target: str,
    checks: Checks,
    translation: bool = True,
) -> str | None:
    """The rejection reason of ``answer`` (masked text) for ``source`` (masked text), or None.

    ``translation=False`` (an answer the model wrote in question mode): no length ratio.
    """
    if answer is None or not answer.strip():
        return "empty"
    if finish_reason == "length":
        return "truncated"
    if REFUSAL.match(answer) and not REFUSAL.match(source):
        return "refusal"
    if not check_language(answer, target, checks.min_lang_score):
        return "wrong_language"
    if translation:
        a, b = len(source.encode("utf-8")), len(answer.encode("utf-8"))
        if a >= 16 and not checks.min_length_ratio <= b / a <= checks.max_length_ratio:
            return "length_ratio"
    return None
