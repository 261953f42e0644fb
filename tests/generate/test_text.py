"""Incremental decoding, stop strings and repetition trimming, on the demo's real tokenizer."""

from __future__ import annotations

import pytest

from cama.generate.text import TextStream, trim_repetition


@pytest.fixture(scope="module")
def tok(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_base))


@pytest.mark.parametrize("text", ["子曰：学而时习之，不亦说乎？", "The  quick brown fox,\n  jumps over 42 dogs.", "混合 mixed 文本 text ✓ é"])
def test_stream_pieces_equal_decoding_everything(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    s = TextStream(tok)
    pieces = []
    for t in ids:
        s.push(t)
        pieces.append(s.ready())
    pieces.append(s.flush(tok.decode(ids, skip_special_tokens=True)))
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True)
    assert sum(bool(p) for p in pieces) > 2


def test_stop_string_cuts_and_is_never_streamed(tok):
    text = "one two three STOP four five"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    s = TextStream(tok, stop=("STOP", "never"))
    out = []
    for t in ids:
        stopped = s.push(t)
        if stopped:
            break
        out.append(s.ready())
    assert stopped and s.text == "one two three "
    out.append(s.flush(s.text))
    assert "".join(out) == "one two three " and "ST" not in "".join(out)


def test_partial_stop_prefix_is_held_back_then_released(tok):
    s = TextStream(tok, stop=("###",))
    for t in tok("a # b", add_special_tokens=False)["input_ids"]:
        assert not s.push(t)
    assert s.ready() + s.flush(s.text) == s.text == "a # b"


@pytest.mark.parametrize(
    "ids,want,trimmed",
    [
        ([1, 2, 3, 4, 4, 4, 4, 4], [1, 2, 3, 4], True),
        ([9, 1, 2, 1, 2, 1, 2, 1, 2], [9, 1, 2], True),
        ([5, 6, 7, 8, 6, 7, 8, 6, 7, 8, 6], [5, 6, 7, 8], True),  # a partial last copy goes too
        ([1, 2, 3, 1, 2, 3], [1, 2, 3, 1, 2, 3], False),  # two copies are not a loop
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], False),
        ([], [], False),
    ],
)
def test_trim_repetition(ids, want, trimmed):
    assert trim_repetition(ids) == (want, trimmed)
