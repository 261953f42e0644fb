"""Decoding settings, the seed's presets, and what a generation returns.

Nothing here imports torch: the CLI and the config code read these without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Literal

from cama.errors import ConfigError

FinishReason = Literal["eos", "length", "stop", "cancelled", "error"]


@dataclass(frozen=True)
class Settings:
    """How one prompt is decoded. The default is greedy, 256 new tokens, stopping at EOS."""

    max_new_tokens: int = 256
    """Tokens generated at most (EOS included); a generation cut here finishes with "length"."""
    temperature: float = 0.0
    """0: greedy (argmax). Above 0: sample from softmax(logits / temperature)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Keep the k most likely tokens before sampling (0: all)."""
    repetition_penalty: float = 1.0
    """HF's (CTRL's) penalty on every token already in the prompt or the output (1.0: off)."""
    num_beams: int = 1
    """Beam search when above 1 (run through HF ``generate``; not streamed token by token)."""
    stop: tuple[str, ...] = ()
    """Stop strings: the output ends before the first one that appears (finish "stop")."""
    seed: int | None = None
    """Sampling seed of this request. The same seed, prompt and settings give the same output
    whatever else is in the batch (the noise is a hash of seed, step and token)."""
    trim_repetition: bool = True
    """A generation cut at the length limit whose tail is one span repeated over and over
    keeps a single copy of the span and is marked ``repetition_trimmed``."""

    def __post_init__(self):
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens: {self.max_new_tokens} < 1")
        if self.temperature < 0:
            problems.append(f"temperature: {self.temperature} < 0")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: {self.top_p} not in (0, 1]")
        if self.top_k < 0:
            problems.append(f"top_k: {self.top_k} < 0")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty: {self.repetition_penalty} <= 0")
        if self.num_beams < 1:
            problems.append(f"num_beams: {self.num_beams} < 1")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if any(not s for s in self.stop):
            problems.append("stop: an empty stop string")
        if problems:
            raise ConfigError([f"generation settings: {p}" for p in problems])

    @property
    def sample(self) -> bool:
        return self.temperature > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


# The seed's decoding for its galleries (ANCHORS, "Decoding used for the galleries"): the base
# model with 3 beams and a strong repetition penalty; the LoRA model with a few beams and low-
# temperature nucleus sampling. "greedy" is what the IE evaluation and the benchmark use.
PRESETS: dict[str, Settings] = {
    "greedy": Settings(),
    "base": Settings(num_beams=3, repetition_penalty=1.6, max_new_tokens=512),
    "lora": Settings(num_beams=2, temperature=0.2, top_p=0.75, top_k=40, repetition_penalty=1.2, max_new_tokens=512),
}


def resolve(settings: Settings | str | dict | None = None, **overrides) -> Settings:
    """A ``Settings`` from a preset name, a dict (may name a ``preset`` to start from) or itself."""
    if settings is None:
        base = Settings()
    elif isinstance(settings, Settings):
        base = settings
    elif isinstance(settings, str):
        if settings not in PRESETS:
            raise ConfigError(f"generation preset {settings!r}: unknown; known: {', '.join(PRESETS)}")
        base = PRESETS[settings]
    elif isinstance(settings, dict):
        d = dict(settings)
        base = resolve(d.pop("preset", None))
        overrides = {**d, **overrides}
    else:
        raise ConfigError(f"generation settings: expected a preset name or a mapping, got {type(settings).__name__}")
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError([f"generation settings: unknown key {k!r}" for k in unknown])
    overrides = {k: v for k, v in overrides.items() if v is not None or k == "seed"}
    if "stop" in overrides:
        overrides["stop"] = tuple([overrides["stop"]] if isinstance(overrides["stop"], str) else overrides["stop"])
    return replace(base, **overrides)


@dataclass
class Generation:
    """One prompt's result."""

    text: str
    """The completion (no prompt, no EOS; cut before a stop string; trimmed if marked)."""
    finish_reason: FinishReason
    """"eos": the model ended it; "length": cut at max_new_tokens (or the context);
    "stop": a stop string; "cancelled"/"error": the online interface only."""
    prompt_tokens: int
    completion_tokens: int
    """Tokens generated, the EOS included, before any trimming."""
    repetition_trimmed: bool = False
    token_ids: list[int] = field(default_factory=list, repr=False)
    """The completion's token ids as generated (no EOS)."""
    error: str | None = None

    @property
    def marks(self) -> str:
        """The seed gallery's three marks: ended by EOS, cut at the limit, repetition trimmed."""
        marks = {"eos": "EOS", "length": "cut at length", "stop": "stop string"}.get(self.finish_reason, self.finish_reason)
        return marks + (", repetition trimmed" if self.repetition_trimmed else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("token_ids")
        if d["error"] is None:
            d.pop("error")
        return d
