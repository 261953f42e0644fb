"""Rule publish_folder: diff + adapter + tokenizer + model card + SHA256SUMS -> publish/."""

from cama.io import write_json
from cama.logs import setup_logging
from cama.publish.folder import build_publish_folder, write_card_html

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])


def first(files):
    """The one file of an optional input (given as a list, empty when absent)."""
    return files if isinstance(files, str) else (files[0] if files else None)


stats = build_publish_folder(
    diff=sm.input.diff,
    tuned=sm.input.tuned,
    out=sm.output.folder,
    settings=sm.params.settings,
    adapter=first(sm.input.adapter),
    evals=[sm.input.evals] if isinstance(sm.input.evals, str) else list(sm.input.evals),
    corpus={
        "sources": sm.params.sources,
        "normalise": list(sm.input.normalise),
        "filter": list(sm.input.filter),
        "dedup": sm.input.dedup,
        "blend": sm.input.blend,
    },
    instruct_stats=first(sm.input.instruct_stats),
)
write_json(sm.output.stats, stats)
write_card_html(sm.output.folder, sm.output.card)
