"""Rule pack_report: the sample-length histogram."""

from cama.logs import setup_logging
from cama.report.pack import pack_report

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
pack_report(stats=sm.input.stats, out_lengths=sm.output.lengths)
