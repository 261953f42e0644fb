"""IE records from a sample: which labels are asked, in which batches, with which template.

Training (``training_records``), per sentence:

1. **Negative schema sampling.** Every label present in the gold is asked. Each label of the
   dataset's schema that is absent from the sentence is asked too, with probability
   ``negative_rate``, so the model learns to answer "none" (the empty spelling of the
   format). A sentence with no gold and no sampled negative gets one absent label, so that
   every sentence gives at least one record.
2. **Order.** The asked labels are shuffled by a generator seeded from (seed, sentence id),
   a BLAKE2b digest: the same config gives the same records on any machine, whatever
   ``PYTHONHASHSEED`` (IEPile's order came from iterating a ``set`` of strings, which
   Python's hash randomisation reorders per process).
3. **Batches** of ``batch_size[task]`` labels (6 NER, 4 RE and EE); a last batch smaller than
   half a batch is merged into the one before it (13 NER labels: 6 + 7, not 6 + 6 + 1).
4. Per batch, a template (of the sentence's language) and an output format are drawn from
   the same generator, and the answer is rendered from the gold of the batch's labels.

Evaluation (``evaluation_records``): every label of the schema, in the schema's order, in
the same fixed batches for every sentence; the format is the evaluation set's; the template
is drawn as in training (the same generator), so prompts are the ones training made.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from cama.chat import user_content
from cama.instruct.ie.formats import FORMATS, render
from cama.instruct.ie.structures import Sample, Schema, canonical
from cama.instruct.ie.templates import TEMPLATES, fill

BATCH_SIZE = {"ner": 6, "re": 4, "ee": 4}


@dataclass(frozen=True)
class SynthSettings:
    """How IE records are drawn (the ``instruct.ie`` config section)."""

    formats: tuple[str, ...] = FORMATS  # drawn uniformly per record in training
    negative_rate: float = 0.5  # probability that an absent label is asked
    batch_size: dict[str, int] = field(default_factory=lambda: dict(BATCH_SIZE))
    seed: int = 0

    @classmethod
    def from_config(cls, section: dict, seed: int) -> SynthSettings:
        return cls(
            formats=tuple(section["formats"]),
            negative_rate=float(section["negative_rate"]),
            batch_size={**BATCH_SIZE, **section["batch_size"]},
            seed=seed,
        )


def rng_for(seed: int, key: str) -> random.Random:
    """A generator that depends on (seed, key) only: not on PYTHONHASHSEED, not on the machine."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def label_batches(labels: Sequence[str], size: int) -> list[list[str]]:
    """``labels`` in batches of ``size``; a last batch under half a batch joins the one before."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    batches = [list(labels[i : i + size]) for i in range(0, len(labels), size)]
    if len(batches) > 1 and len(batches[-1]) < size / 2:
        last = batches.pop()
        batches[-1] += last
    return batches


def asked_labels(sample: Sample, schema: Schema, rate: float, rng: random.Random) -> list[str]:
    """Positive labels and sampled negatives, shuffled; at least one label."""
    present = set(sample.labels())
    absent = [label for label in schema.labels if label not in present]
    negatives = [label for label in absent if rng.random() < rate]
    if not present and not negatives and absent:
        negatives = [rng.choice(absent)]
    asked = [label for label in schema.labels if label in present] + negatives
    rng.shuffle(asked)
    return asked


def make_record(
    sample: Sample,
    schema: Schema,
    labels: list[str],
    fmt: str,
    template: int,
    batch: int,
    meta: dict,
) -> dict:
    """One record asking ``labels`` of ``sample``; the answer is rendered from its gold."""
    gold = canonical(sample.task, sample.gold, labels)
    instruction = fill(sample.task, sample.lang, template, fmt, schema.describe(labels))
    return {
        "id": f"{sample.group}#b{batch}",
        "task": sample.task,
        "lang": sample.lang,
        "source": sample.source,
        "messages": [
            {"role": "user", "content": user_content(instruction, sample.text)},
            {"role": "assistant", "content": render(sample.task, fmt, gold, labels)},
        ],
        # EE: the roles shown with each type, so a translation can remake the prompt
        "meta": {**sample.meta, "template": template, **meta}
        | ({"roles": schema.describe(labels)} if sample.task == "ee" else {}),
        "ie": {
            "text": sample.text,
            "labels": list(labels),
            "format": fmt,
            "gold": gold,
            "group": sample.group,
        },
    }


def training_records(sample: Sample, schema: Schema, settings: SynthSettings) -> list[dict]:
    rng = rng_for(settings.seed, sample.group)
    asked = asked_labels(sample, schema, settings.negative_rate, rng)
    present = set(sample.labels())
    batches = label_batches(asked, settings.batch_size[sample.task])
    n_templates = len(TEMPLATES[sample.task][sample.lang])
    out = []
    for k, labels in enumerate(batches):
        template = rng.randrange(n_templates)
        fmt = rng.choice(settings.formats)
        negatives = sum(label not in present for label in labels)
        meta = {"batch": k, "batches": len(batches), "negatives": negatives}
        out.append(make_record(sample, schema, labels, fmt, template, k, meta))
    return out


def evaluation_records(
    sample: Sample, schema: Schema, settings: SynthSettings, fmt: str
) -> list[dict]:
    rng = rng_for(settings.seed, sample.group)
    batches = label_batches(schema.labels, settings.batch_size[sample.task])
    n_templates = len(TEMPLATES[sample.task][sample.lang])
    out = []
    for k, labels in enumerate(batches):
        meta = {"batch": k, "batches": len(batches)}
        out.append(make_record(sample, schema, labels, fmt, rng.randrange(n_templates), k, meta))
    return out
