"""Rule filter_source: docs -> clean/{source}.parquet + rejected + stats."""

from cama.clean.filter import filter_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
filter_source(
    docs_path=sm.input[0],
    out_kept=sm.output.kept,
    out_rejected=sm.output.rejected,
    out_stats=sm.output.stats,
    lang=sm.params.lang,
    settings=sm.params.settings,
    out_scores=sm.output.scores,
    source=sm.wildcards.source,
)
