"""Rule assemble_instruct: every source's records -> instruct/train.jsonl, val.jsonl, rejected.jsonl, stats.json."""

from cama.instruct.assemble import assemble
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
assemble(
    inputs=sm.params.inputs,
    eval_sets=dict(zip(sm.params.eval_sets, sm.input.eval_sets, strict=True)),
    heldout=dict(zip(sm.params.langs, sm.input.heldout, strict=True)),
    out_train=sm.output.train,
    out_val=sm.output.val,
    out_rejected=sm.output.rejected,
    out_stats=sm.output.stats,
    settings=sm.params.settings,
    dedup_settings=sm.params.dedup,
    tokenizer=sm.input.tokenizer,
    translation_stats=sm.params.translation_stats,
)
