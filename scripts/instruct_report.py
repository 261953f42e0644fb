"""Rule instruct_report: the instruction-set table and mix plot."""

from cama.logs import setup_logging
from cama.report.instruct import instruct_report

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
instruct_report(stats=sm.input.stats, out_table=sm.output.table, out_plot=sm.output.plot)
