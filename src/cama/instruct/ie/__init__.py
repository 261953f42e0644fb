"""IE instruction synthesis and the parsers of its answers: one package, so they never drift.

- ``structures``: the gold structure (NER ``[mention, type]``, RE ``[head, relation, tail]``,
  EE ``{"type", "trigger", "arguments": [[argument, role]]}``), :class:`Sample` (a sentence
  and its gold), :class:`Schema` (a dataset's labels), ``canonical``, ``check_sample``.
- ``formats``: ``render`` and ``parse`` for the output formats json, tuple and lines.
- ``templates``: five Chinese and five English instruction templates per task, and the
  format hints.
- ``synth``: negative schema sampling, label batches, and the records of training and
  evaluation.

For evaluation::

    from cama.instruct.ie import ParseError, parse
    for record in eval_records:
        try:
            predicted = parse(record["task"], record["ie"]["format"], generation, record["ie"]["labels"])
        except ParseError:
            predicted = []  # a format error: no predictions, every gold item is a miss
        # compare with record["ie"]["gold"]; merge batches by record["ie"]["group"]
"""

from cama.instruct.ie.formats import FORMATS, NAN, ParseError, parse, render
from cama.instruct.ie.structures import (
    TASKS,
    Sample,
    Schema,
    SchemaBuilder,
    canonical,
    check_sample,
    label_of,
)
from cama.instruct.ie.synth import (
    BATCH_SIZE,
    SynthSettings,
    evaluation_records,
    label_batches,
    rng_for,
    training_records,
)
from cama.instruct.ie.templates import FORMAT_HINTS, TEMPLATES, TemplateError, fill

__all__ = [
    "BATCH_SIZE",
    "FORMATS",
    "FORMAT_HINTS",
    "NAN",
    "TASKS",
    "TEMPLATES",
    "ParseError",
    "Sample",
    "Schema",
    "SchemaBuilder",
    "SynthSettings",
    "TemplateError",
    "canonical",
    "check_sample",
    "evaluation_records",
    "fill",
    "label_batches",
    "label_of",
    "parse",
    "render",
    "rng_for",
    "training_records",
]
