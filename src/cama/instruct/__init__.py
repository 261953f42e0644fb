"""instruct: the instruction set, from configured sources to ``results/instruct/train.jsonl``.

The stage in the order the data flows (each module's docstring says more):

- ``convert``: one raw source (``instruct.sources.<name>``) → records, through a converter
  per format (``converters/``: alpaca, sharegpt, self-instruct, GSM8K, TAL-SCQ, MBPP,
  HumanEval; CoNLL, CLUENER, MSRA; DuIE, FewRel, DocRED, FinRE; DuEE, FewFC, PHEE). IE
  sources become :class:`cama.instruct.ie.Sample` (a sentence and its gold structure) and
  then records through ``cama.instruct.ie`` (templates, output formats, label batches).
- ``translate``: English records → Chinese (or the reverse) through any OpenAI-compatible
  endpoint, cached in SQLite, rate-limited, within a budget, each answer validated.
- ``evalsets``: IE evaluation sets (``evaluate.ie.sets``), by the same converters and
  templates, every label asked in fixed batches.
- ``assemble``: decontamination against the evaluation data, exact and near dedup
  (``cama.clean.dedup``), mixture weights, a validation split stratified by task, stats.

Records are JSON lines, one conversation each (``records.py`` has the format).
"""
