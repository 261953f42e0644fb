"""The tokenizer: the base model's, or a LLaMA-style sentencepiece BPE trained for the demo.

A real run points ``pack.tokenizer.path`` at the base model's tokenizer: a sentencepiece
``tokenizer.model`` file, or an HF tokenizer directory that holds one (LLaMA's do).
The demo has no base model, so ``train_tokenizer`` trains one on the cleaned training
documents, with LLaMA's settings: BPE, byte fallback, split digits, identity
normalisation, whitespace kept as it is, ``<unk>``=0, ``<s>``=1, ``</s>``=2 and no pad
token (LLaMA has none). The directory it writes loads with
``transformers.AutoTokenizer.from_pretrained`` (``LlamaTokenizer``), so the training
and inference stages use the very same files.

``Tokenizer`` also knows how many bytes of the original text each token covers
(``surface_bytes``), which is how the shard stage maps sentence boundaries, found as byte
offsets, onto a document that was encoded once as a whole.

**Long texts are encoded in chunks, with the very same ids.** sentencepiece's BPE runs
one priority queue over its whole input, so its cost per token grows with the input's
length: on the anchors' English (Wikipedia articles of 10-60 kB), encoding whole
documents gives 1.1M tokens/s, and the same text in pieces of ~2k characters 1.45M.
``Tokenizer.encode`` therefore cuts a text longer than ``chunk_chars`` at single spaces
(a space between two characters that are neither a space nor a "▁"), encodes the pieces in one batch and joins
their ids. That is exact when the model cannot merge across such a space: its pieces
carry "▁" only at their start (sentencepiece's ``split_by_whitespace``, the default), it
does not normalise text (identity rules, no whitespace removal) and it puts its dummy
"▁" before the text, so that the piece after the cut gets back the "▁" its space was.
``Tokenizer`` checks all three on the model (``chunkable``) and encodes whole otherwise.

**A word cache does less tokenizer work** (as GPT-2's and tiktoken's encoders do). The
same argument holds for every single space, so ``Tokenizer.encode_flat`` cuts each text
at all of them (``word_chunks``; a text with no double space, "▁" or edge space takes a
plain ``str.split``), looks each word up in a dict (word -> its ids as int32 bytes),
encodes only the words it lacks, in one sentencepiece batch, and joins the bytes into one
id array: no per-token Python. Words over ``cache_chars`` (48) characters are encoded but
not kept; at ``word_cache`` (2**17) words the older half is dropped. The ids are the very
same (tests/pack/test_fast_paths.py: every demo document, hypothesis texts, shards with
the cache on and off; the 50 MB benchmark shards are byte-identical to the chunked
encoder's). Measured on 2 shared cores (benchmarks/pack_throughput.py, anchors' corpus,
32k model, CPU time, which moves less with the load than wall time): English
ours/seed 1.29x -> 2.96x and ours/ceiling 0.93x -> 2.20x; code 1.87x -> 5.69x seed;
Chinese (few spaces: long words, all misses) unchanged, 3.21x -> 3.22x seed, 0.96x
ceiling. The benchmark repeats its corpus to 50 MB, so the cache is warm after the first
pass. One pass over unique text (its ``unique`` pass, demo corpus, 2026-12-04, the README's
figures): English 1.40x plain ``sp.encode`` by CPU time with a cold cache, Chinese 0.65x
(space-delimited "words" there are whole paragraphs: all misses, and the cache's work is
pure cost).
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import shutil
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path

import numpy as np

from cama.config import default
from cama.errors import ConfigError
from cama.io import atomic_path, write_json

log = logging.getLogger(__name__)

UNK, BOS, EOS = 0, 1, 2  # LLaMA's ids
SPACE = "\u2581"  # sentencepiece's visible space, "▁"


def resolve_model_file(path: str | os.PathLike) -> Path:
    """The sentencepiece model inside ``path`` (a .model file or a tokenizer directory)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"pack.tokenizer.path: {p} does not exist")
    if p.is_dir():
        model = p / "tokenizer.model"
        if model.is_file():
            return model
        raise ConfigError(
            f"pack.tokenizer.path: {p} has no tokenizer.model; a sentencepiece model "
            "(LLaMA-style tokenizer directory) is needed"
        )
    return p


_SPACES = (" ", SPACE)


def space_chunks(text: str, n: int) -> list[str]:
    """``text`` cut at single spaces into pieces of about ``n`` characters or more.

    A cut drops the space: "ab cd" -> ["ab", "cd"]. Only a space with neither a space nor
    a "▁" (which sentencepiece reads as a space too) on either side is a cut, so no piece
    starts or ends with either.
    """
    out = []
    a, end = 0, len(text)
    while end - a > n:
        i = text.find(" ", a + n)
        while i != -1 and (i + 1 >= end or text[i - 1] in _SPACES or text[i + 1] in _SPACES):
            i = text.find(" ", i + 1)
        if i == -1:
            break
        out.append(text[a:i])
        a = i + 1
    out.append(text[a:])
    return out


# a single space: a character that is neither a space nor a "▁" on either side
_CUT = re.compile("(?<=[^ \u2581]) (?=[^ \u2581])")


def word_chunks(text: str) -> list[str]:
    """``text`` cut at every single space (the cuts of ``space_chunks``, all of them).

    "ab cd  e" -> ["ab", "cd  e"]. Always at least one piece ("" -> [""]).
    """
    if "  " not in text and SPACE not in text and text[:1] != " " and text[-1:] != " ":
        return text.split(" ")  # every space is a single one: the common case, in C
    return _CUT.split(text)


class Tokenizer:
    """A sentencepiece model, with LLaMA's special ids and per-token byte widths."""

    def __init__(self, path: str | os.PathLike, chunk_chars: int = 2048, word_cache: int = 1 << 17,
                 cache_chars: int = 48):
        import sentencepiece as spm

        self.model_file = resolve_model_file(path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        except (OSError, RuntimeError) as e:
            raise ConfigError(f"pack.tokenizer.path: {self.model_file} is not a sentencepiece model: {e}") from None
        self.vocab_size = self.sp.get_piece_size()
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise ConfigError(f"pack.tokenizer.path: {self.model_file} defines no BOS/EOS token")
        self.surface_bytes, inner_space = self._surface_bytes()
        # add_dummy_prefix puts a "▁" before the text that is not in it: "a" -> "▁a"
        self.dummy_prefix = int(self.surface_bytes[self.sp.encode("a")].sum()) - 1
        self.chunk_chars = chunk_chars
        self.chunkable = not inner_space and self._plain_whitespace()
        # word cache (see ``encode_flat``): at most ``word_cache`` words of at most
        # ``cache_chars`` characters, word -> its ids as int32 bytes; 0 turns it off
        self.word_cache, self.cache_chars = word_cache, cache_chars
        self._cache: dict[str, bytes] = {}

    def _surface_bytes(self) -> tuple[np.ndarray, bool]:
        """Bytes of input text each id stands for: 1 for a byte-fallback token, 0 for control.

        Also whether some piece has a "▁" after another character (no chunking then).
        """
        sp = self.sp
        pieces = sp.id_to_piece(list(range(self.vocab_size)))
        is_byte, is_control, is_unknown = sp.is_byte, sp.is_control, sp.is_unknown
        width = []
        inner_space = False
        for i, piece in enumerate(pieces):  # plain Python lists: ~4x faster than numpy items
            if piece.startswith("<0x") and is_byte(i):
                width.append(1)
            elif is_control(i) or is_unknown(i):
                width.append(0)
            else:
                width.append(len(piece.replace(SPACE, " ").encode("utf-8")))
                inner_space = inner_space or SPACE in piece.lstrip(SPACE)
        width = np.asarray(width, dtype=np.int64)
        return width, inner_space

    def _plain_whitespace(self) -> bool:
        """Identity normalisation, whitespace kept as it is, a dummy "▁" in front."""
        probe = "  a\u3000ＡＢ  c\td ﬁ e\u0301 "
        if self.sp.normalize(probe) != SPACE + probe.replace(" ", SPACE):
            return False
        return self.sp.encode("ab cd") == self.sp.encode("ab") + self.sp.encode("cd")

    def encode(self, texts: list[str], num_threads: int = 1) -> list[list[int]]:
        """Token ids of whole texts, no BOS/EOS: exactly ``sp.encode(texts)``.

        Texts longer than ``chunk_chars`` are encoded in pieces when the model allows it
        (see the module's docstring), which is faster and gives the same ids.
        """
        n = self.chunk_chars
        if not self.chunkable or all(len(t) <= n for t in texts):
            return self.sp.encode(texts, num_threads=num_threads)
        parts: list[str] = []
        counts: list[int] = []
        for t in texts:
            pieces = space_chunks(t, n) if len(t) > n else [t]
            parts += pieces
            counts.append(len(pieces))
        ids = self.sp.encode(parts, num_threads=num_threads)
        out: list[list[int]] = []
        k = 0
        for c in counts:
            out.append(ids[k] if c == 1 else list(chain.from_iterable(ids[k : k + c])))
            k += c
        return out

    def encode_flat(self, texts: list[str], num_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of whole texts end to end (int32), and each text's token count.

        Exactly ``sp.encode(texts)``, concatenated. With a chunkable model and the word
        cache on, every text is cut at all its single spaces (``word_chunks``), each word
        is looked up in the cache, the words not in it are encoded in one batch, and the
        ids are joined as bytes: no per-token Python at all.
        """
        if not (self.chunkable and self.word_cache) or not texts:
            ids = self.encode(texts, num_threads=num_threads)
            lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lens.sum()))
            return flat, lens
        split = list(map(word_chunks, texts))
        cache = self._cache
        missing = list(set(chain.from_iterable(split)).difference(cache))
        if missing:
            enc = self.sp.encode(missing, num_threads=num_threads)
            ends = np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)) * 4).tolist()
            blob = np.fromiter(chain.from_iterable(enc), dtype=np.int32, count=ends[-1] // 4).tobytes()
            cache.update(zip(missing, map(blob.__getitem__, map(slice, [0, *ends[:-1]], ends)), strict=True))
        get = cache.__getitem__
        per_text = [b"".join(map(get, words)) for words in split]
        flat = np.frombuffer(b"".join(per_text), dtype=np.int32)
        lens = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text)) >> 2
        if missing:  # keep only short words, and at most ``word_cache`` of them (the newest)
            n = self.cache_chars
            for w in missing:
                if len(w) > n:
                    del cache[w]
            if len(cache) > self.word_cache:
                self._cache = dict(islice(cache.items(), len(cache) - self.word_cache // 2, None))
        return flat, lens

    def token_ends(self, ids: np.ndarray, data: bytes) -> np.ndarray | None:
        """Byte offset in ``data`` where each token ends; None if widths do not add up.

        They fail to add up only for a model that normalises text (not LLaMA-style) or
        emits ``<unk>``; the caller then encodes that document sentence by sentence.
        """
        ends = np.cumsum(self.surface_bytes[ids]) - self.dummy_prefix
        if ends.size and ends[-1] != len(data):
            return None
        return ends


# ---------------------------------------------------------------- training


def training_lines(texts: Iterable[str], max_line_bytes: int = 16384) -> Iterator[str]:
    """Non-empty lines of the documents, as sentencepiece wants them (one per line)."""
    for text in texts:
        for line in text.split("\n"):
            if line.strip() and len(line.encode("utf-8")) <= max_line_bytes:
                yield line


def sample_lines(lines: Iterable[str], max_lines: int, seed: int) -> list[str]:
    """A deterministic uniform sample of at most ``max_lines`` lines (reservoir sampling)."""
    rng = random.Random(seed)
    kept: list[str] = []
    for i, line in enumerate(lines):
        if i < max_lines:
            kept.append(line)
        else:
            j = rng.randint(0, i)
            if j < max_lines:
                kept[j] = line
    return kept


def train_tokenizer(
    texts: Iterable[str],
    out_dir: str | os.PathLike,
    vocab_size: int = default("pack.tokenizer.vocab_size"),
    character_coverage: float = default("pack.tokenizer.character_coverage"),
    max_lines: int = default("pack.tokenizer.max_lines"),
    seed: int = default("pack.seed"),
    num_threads: int = 1,
    model_max_length: int = default("pack.max_length"),
) -> dict:
    """Train a LLaMA-style sentencepiece BPE on ``texts`` and save an HF tokenizer dir.

    The model is written from memory (``model_writer``), so its trainer spec names no
    temporary file: the same texts and settings give a byte-identical ``tokenizer.model``.
    Returns a summary (lines, vocabulary size, settings) that the caller writes to stats.
    """
    import sentencepiece as spm

    lines = sample_lines(training_lines(texts), max_lines, seed)
    if not lines:
        raise ConfigError("pack.tokenizer: no training text (every training document is empty)")
    settings = dict(
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        character_coverage=character_coverage,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        pad_id=-1,  # LLaMA has no pad token
        max_sentence_length=16384,
        input_sentence_size=0,  # we sampled above, deterministically
        shuffle_input_sentence=False,
        hard_vocab_limit=False,  # a small corpus may not support the full vocabulary
        num_threads=num_threads,
        minloglevel=2,
    )
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **settings)
    except RuntimeError as e:
        if "Vocabulary size is smaller than required_chars" in str(e):
            raise ConfigError(
                f"pack.tokenizer.vocab_size: {vocab_size} is smaller than the characters to cover "
                f"({e}); raise it or lower pack.tokenizer.character_coverage"
            ) from None
        raise
    save_hf_tokenizer(model.getvalue(), out_dir, model_max_length)
    tok = Tokenizer(out_dir)
    log.info("trained tokenizer on %d lines: vocab %d -> %s", len(lines), tok.vocab_size, out_dir)
    return {"lines": len(lines), "vocab_size": tok.vocab_size, "settings": settings}


def save_hf_tokenizer(
    model: bytes | str | os.PathLike, out_dir: str | os.PathLike, model_max_length: int = default("pack.max_length")
) -> None:
    """Write ``out_dir`` as a LLaMA HF tokenizer: tokenizer.model (its bytes, or a copy of the
    file) + configs (+ tokenizer.json).

    tokenizer.json (the fast tokenizer) is added when transformers is installed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "tokenizer.model") as tmp:
        if isinstance(model, bytes):
            tmp.write_bytes(model)
        else:
            shutil.copyfile(model, tmp)
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    write_json(out / "special_tokens_map.json", special)
    write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            **special,
            "pad_token": None,
            "add_bos_token": True,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "legacy": True,  # the sentencepiece behaviour the shards were encoded with
            "model_max_length": model_max_length,
            "sp_model_kwargs": {},
        },
    )
    try:
        from transformers import LlamaTokenizerFast
    except ImportError:
        log.info("transformers not installed: %s has no tokenizer.json (the slow tokenizer loads)", out)
        return
    LlamaTokenizerFast.from_pretrained(str(out)).save_pretrained(str(out))


def copy_base_tokenizer(path: str | os.PathLike, out_dir: str | os.PathLike, model_max_length: int) -> dict:
    """The base model's tokenizer into ``out_dir``: its tokenizer files only (never the weights
    beside them), or the HF files around a bare sentencepiece ``.model``."""
    from cama.train.save import copy_tokenizer

    model = resolve_model_file(path)
    Tokenizer(model)  # fails now, with the key named, if it is not a usable model
    src = Path(path)
    if src.is_dir() and (src / "tokenizer_config.json").is_file():
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        copy_tokenizer(src, out_dir)
    else:
        save_hf_tokenizer(model, out_dir, model_max_length)
    tok = Tokenizer(out_dir)
    return {"source": str(path), "vocab_size": tok.vocab_size, "trained": False}


def train_or_link(
    docs: list[str | os.PathLike],
    heldout: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    out_stats: str | os.PathLike,
    settings: dict,
    base_model: str | os.PathLike | None = None,
    seed: int = default("pack.seed"),
    num_threads: int = 1,
    model_max_length: int = default("pack.max_length"),
) -> dict:
    """The ``train_tokenizer`` rule: ``settings`` is the ``pack.tokenizer`` config section.

    The tokenizer is ``pack.tokenizer.path``, else the base model's (``model.base``): a run
    that continues an existing model never gets a new tokenizer. Only with neither (the demo)
    is one trained, on the training documents only: the held-out ones are skipped.
    """
    from cama.io import iter_parquet
    from cama.pack.split import load_heldout_ids

    path = settings["path"] or base_model
    if path:
        summary = copy_base_tokenizer(path, out_dir, model_max_length)
    else:
        held = load_heldout_ids(heldout)

        def texts() -> Iterator[str]:
            for doc_path in docs:
                for row in iter_parquet(doc_path, columns=["id", "text"]):
                    if row["id"] not in held and row["text"]:
                        yield row["text"]

        summary = train_tokenizer(texts(), out_dir, vocab_size=settings["vocab_size"],
                                  character_coverage=settings["character_coverage"], max_lines=settings["max_lines"],
                                  seed=seed, num_threads=num_threads, model_max_length=model_max_length)  # fmt: skip
        summary = {"source": None, "trained": True, **summary}
    write_json(out_stats, summary)
    return summary
