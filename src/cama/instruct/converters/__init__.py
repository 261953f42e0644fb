"""Converters: one small function per source format, from a raw record to conversations or IE sentences.

``FORMATS`` maps the ``format`` of an ``instruct.sources`` entry (or an ``evaluate.ie.sets``
entry) to its :class:`~cama.instruct.converters.base.Format`: the tasks it can feed, the
reader of its files, the convert function, and the options it takes (with defaults). Each
module's docstring describes its formats record by record.

To add a format: write ``convert(obj, ctx) -> list[Conv | IEItem]`` (raise
``RecordError(reason)`` for a bad record), pick or write a reader, and add one line below.
"""

from __future__ import annotations

from cama.instruct.converters import code, cot, event, general, ner, relation
from cama.instruct.converters.base import (
    Context,
    Conv,
    Format,
    IEItem,
    Raw,
    read_blocks,
    read_json,
    read_lines,
)

_JSON = {"records": ""}  # the dotted path to the records inside a JSON document ("" = the top)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "alpaca", ("general", "cot", "code"), read_json, general.alpaca, {**_JSON, "fields": {}}
        ),
        Format("sharegpt", ("general", "cot", "code"), read_json, general.sharegpt, dict(_JSON)),
        Format("self_instruct", ("general",), read_json, general.self_instruct, dict(_JSON)),
        Format("gsm8k", ("cot",), read_json, cot.gsm8k, dict(_JSON)),
        Format("tal_scq", ("cot",), read_json, cot.tal_scq, dict(_JSON)),
        Format("mbpp", ("code",), read_json, code.mbpp, dict(_JSON)),
        Format("humaneval", ("code",), read_json, code.humaneval, {**_JSON, "language": None}),
        Format(
            "conll",
            ("ner",),
            read_blocks,
            ner.conll,
            {"sep": "auto", "token_column": 0, "tag_column": -1, "join": None, "token_strip": None},
        ),
        Format("cluener", ("ner",), read_json, ner.cluener, dict(_JSON)),
        Format("msra", ("ner",), read_lines, ner.msra, {"join": None}),
        Format("duie", ("re",), read_json, relation.duie, dict(_JSON)),
        Format("fewrel", ("re",), relation.read_fewrel, relation.fewrel, {"relation_names": None}),
        Format("docred", ("re",), read_json, relation.docred, {**_JSON, "relation_names": None}),
        Format("finre", ("re",), relation.read_finre, relation.finre, {"na_relation": "unknown"}),
        Format("duee", ("ee",), read_json, event.duee, dict(_JSON)),
        Format("fewfc", ("ee",), read_json, event.fewfc, dict(_JSON)),
        Format("phee", ("ee",), read_json, event.phee, dict(_JSON)),
    ]
}
# Options naming one of the source's own files, read once as auxiliary data, not as records.
AUX_FILE_OPTIONS = ("relation_names",)

__all__ = ["AUX_FILE_OPTIONS", "FORMATS", "Context", "Conv", "Format", "IEItem", "Raw"]
