"""Rule translate_instruct_source: instruct/sources/{tsource}.jsonl -> instruct/translated/{tsource}.jsonl, rejected, stats."""

from cama.instruct.translate.stage import translate_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
translate_source(
    name=sm.wildcards.tsource,
    spec=sm.params.spec,
    records=sm.input[0],
    out_records=sm.output.records,
    out_rejected=sm.output.rejected,
    out_stats=sm.output.stats,
    settings=sm.params.settings,
    cache_path=sm.params.cache,
)
