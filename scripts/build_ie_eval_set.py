"""Rule build_ie_eval_set: raw/instruct/{ieset}/ -> instruct/eval/{ieset}.jsonl (every label, fixed batches)."""

from cama.instruct.convert import build_eval_set
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
build_eval_set(
    name=sm.wildcards.ieset,
    spec=sm.params.spec,
    raw_dir=sm.input[0],
    out_records=sm.output.records,
    out_quarantine=sm.output.quarantine,
    out_stats=sm.output.stats,
    ie_settings=sm.params.ie,
    seed=sm.params.seed,
)
