"""Rule convert_instruct_source: raw/instruct/{isource}/ -> instruct/sources/{isource}.jsonl, quarantine, stats."""

from cama.instruct.convert import convert_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
convert_source(
    name=sm.wildcards.isource,
    spec=sm.params.spec,
    raw_dir=sm.input[0],
    out_records=sm.output.records,
    out_quarantine=sm.output.quarantine,
    out_stats=sm.output.stats,
    ie_settings=sm.params.ie,
    seed=sm.params.seed,
)
