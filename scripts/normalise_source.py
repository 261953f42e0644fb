"""Rule normalise_source: raw files -> docs/{source}.parquet, language-checked."""

from cama.corpus.normalise import normalise_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
normalise_source(
    name=sm.wildcards.source,
    spec=sm.params.spec,
    raw_dir=sm.input[0],
    out_docs=sm.output.docs,
    out_rejected=sm.output.rejected,
    out_quarantine=sm.output.quarantine,
    out_stats=sm.output.stats,
    settings=sm.params.settings,
    layout_settings=sm.params.layout,
)
