"""NER: CoNLL-style BIO columns, CLUENER span JSON, MSRA word/tag lines.

- ``conll``: one token (a word, or a character) per line and its tag, blank (or
  whitespace-only) lines between sentences; tab or space separated (``options.sep``: auto,
  tab, space). ``token_column`` (0) and ``tag_column`` (-1) pick the columns, so UNER's
  ``idx<TAB>word<TAB>tag<TAB>-<TAB>-`` is ``token_column: 1, tag_column: 2``. Lines starting
  with ``#`` whose last field is not a tag are comments (UNER's ``# text = ...``). Tags are
  BIO/IOB2 or BIOES (``B-``, ``I-``, ``E-``, ``S-``, ``M-``, ``O``); an ``I-`` that does not
  continue an entity of its type starts one (IOB1). Tokens are joined with ``options.join``
  (default: a space for en, nothing for zh), and spans are the joined tokens, so they match
  the text by construction. ``token_strip`` (a regex) is removed from each token first
  (Weibo NER's ``口0``: ``"\\d$"``).
- ``cluener``: ``{"text", "label": {type: {mention: [[start, end], ...]}}}``, closed intervals;
  a mention that is not ``text[start:end + 1]`` is quarantined (``span_mismatch``).
- ``msra``: one sentence a line of ``word/tag`` pairs separated by spaces; a word whose tag
  is not ``o`` is an entity of that tag (nr, ns, nt); words are joined with ``options.join``.
"""

from __future__ import annotations

import re
from typing import Any

from cama.errors import RecordError
from cama.instruct.converters.base import Context, IEItem, check_offset, field_str

TAG = re.compile(r"^(?:O|[BIESM]-.+)$")


def _join(ctx: Context) -> str:
    join = ctx.options.get("join")
    return join if join is not None else ("" if ctx.lang == "zh" else " ")


def _fields(line: str, sep: str) -> list[str]:
    if sep == "tab" or (sep == "auto" and "\t" in line):
        return line.rstrip("\n").split("\t")
    return line.split()


def conll(lines: list[str], ctx: Context) -> list[IEItem]:
    opts = ctx.options
    sep, tok_col, tag_col = (
        opts.get("sep", "auto"),
        opts.get("token_column", 0),
        opts.get("tag_column", -1),
    )
    strip = re.compile(opts["token_strip"]) if opts.get("token_strip") else None
    tokens, tags = [], []
    for line in lines:
        parts = _fields(line, sep)
        if line.startswith("#") and (len(parts) < 2 or not TAG.match(parts[-1].strip())):
            continue  # a comment
        try:
            token, tag = parts[tok_col], parts[tag_col].strip()
        except IndexError:
            raise RecordError("malformed_line") from None
        if not TAG.match(tag):
            raise RecordError("bad_tag")
        if strip is not None:
            token = strip.sub("", token)
        tokens.append(token)
        tags.append(tag)
    if not tokens:
        raise RecordError("empty_sentence")
    join = _join(ctx)
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + len(join)
    text = join.join(tokens)
    gold, current = [], None  # current: [type, first token, last token]

    def close():
        if current is not None:
            t, a, b = current
            gold.append([text[starts[a] : starts[b] + len(tokens[b])].strip(), t])

    for i, tag in enumerate(tags):
        kind, _, etype = tag.partition("-")
        if kind == "O":
            close()
            current = None
        elif kind in ("B", "S") or current is None or current[0] != etype:
            close()
            current = [etype, i, i]
        else:  # I, M, E continuing the same type
            current[2] = i
        if kind in ("E", "S"):
            close()
            current = None
    close()
    return [IEItem(text, [g for g in gold if g[0]])]


def cluener(obj: Any, ctx: Context) -> list[IEItem]:
    text = field_str(obj, "text")
    label = obj.get("label") or {}
    if not isinstance(label, dict):
        raise RecordError("bad_label_field")
    gold = []
    for etype, mentions in label.items():
        if not isinstance(mentions, dict):
            raise RecordError("bad_label_field")
        for mention, positions in mentions.items():
            for pos in positions or []:
                if not isinstance(pos, list) or len(pos) != 2:
                    raise RecordError("bad_offsets")
                check_offset(text, mention, pos[0], pos[1] + 1)  # closed interval
                gold.append([mention, etype, pos[0]])
    gold.sort(key=lambda g: g[2])
    return [IEItem(text, [g[:2] for g in gold])]


def msra(line: str, ctx: Context) -> list[IEItem]:
    words, gold = [], []
    for pair in line.split():
        word, slash, tag = pair.rpartition("/")
        if not slash or not word:
            raise RecordError("malformed_pair")
        words.append(word)
        if tag.lower() != "o":
            gold.append([word, tag])
    return [IEItem(_join(ctx).join(words), gold)]
