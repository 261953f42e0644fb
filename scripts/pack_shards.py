"""Rule pack_shards: dedup + tokenizer -> shards/{source}_{k}.bin/.idx, blend.json, stats."""

from pathlib import Path

from cama.logs import setup_logging
from cama.pack.shards import run_pack_shards

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
run_pack_shards(
    inputs=dict(zip(sm.params.sources, sm.input.docs, strict=True)),
    langs=sm.params.langs,
    tokenizer=Path(sm.input.tokenizer).parent,
    heldout=list(sm.input.heldout),
    out_blend=sm.output.blend,
    out_stats=sm.output.stats,
    pack=sm.params.pack,
)
