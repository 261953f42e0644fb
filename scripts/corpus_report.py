"""Rule corpus_report: the funnel plot, rejection table and cluster sizes."""

from cama.logs import setup_logging
from cama.report.corpus import corpus_report

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
corpus_report(
    sources=sm.params.sources,
    normalise_stats=list(sm.input.normalise),
    filter_stats=list(sm.input.filter),
    rejected=list(sm.input.norm_rejected) + list(sm.input.rejected),
    quarantine=list(sm.input.quarantine),
    dedup_stats=sm.input.dedup,
    clusters=sm.input.clusters,
    out_funnel=sm.output.funnel,
    out_rejections=sm.output.rejections,
    out_clusters=sm.output.clusters,
    examples_per_rule=sm.params.examples,
)
