"""Rule heldout_split: dedup/{source}.parquet -> heldout/{lang}.jsonl + stats."""

from cama.logs import setup_logging
from cama.pack.split import heldout_split

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
heldout_split(
    inputs=dict(zip(sm.params.sources, sm.input, strict=True)),
    outputs={lang: sm.output[lang] for lang in ("zh", "en", "code")},
    out_stats=sm.output.stats,
    fraction=sm.params.settings["fraction"],
    min_docs=sm.params.settings["min_docs"],
    max_docs=sm.params.settings["max_docs"],
    seed=sm.params.seed,
    decontaminate=sm.params.settings["decontaminate"],
)
