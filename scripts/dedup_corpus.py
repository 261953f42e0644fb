"""Rule dedup_corpus: all clean sources -> dedup/{source}.parquet, clusters, stats."""

from cama.clean.dedup import dedup_corpus
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
dedup_corpus(
    inputs=dict(zip(sm.params.sources, sm.input, strict=True)),
    outputs=dict(zip(sm.params.sources, sm.output.docs, strict=True)),
    langs=sm.params.langs,
    out_clusters=sm.output.clusters,
    out_stats=sm.output.stats,
    settings=sm.params.settings,
)
