"""Rule weight_diff: tuned - base, streamed, with its manifest -> diff/ (cama diff make)."""

from cama.io import write_json
from cama.logs import setup_logging
from cama.publish.diff import make_diff

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
settings = sm.params.settings
stats = make_diff(
    base=sm.input.base,
    tuned=sm.input.tuned,
    out=sm.output.diff,
    diff_dtype=settings["diff_dtype"],
    max_shard_size=settings["max_shard_size"],
    run_config={"command": "snakemake rule weight_diff", "workflow_config": dict(sm.config)},
    threads=3 if sm.threads >= 2 else 1,  # the main thread computes; two more hash and write
)
write_json(sm.output.stats, stats)
