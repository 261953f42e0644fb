"""Rule train_tokenizer: the base model's tokenizer, or a LLaMA-style BPE trained on the training docs."""

from pathlib import Path

from cama.logs import setup_logging
from cama.pack.tokenizer import train_or_link

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
train_or_link(
    docs=list(sm.input.docs),
    heldout=list(sm.input.heldout),
    out_dir=Path(sm.output.model).parent,
    out_stats=sm.output.stats,
    settings=sm.params.settings,
    base_model=sm.params.base_model,
    seed=sm.params.seed,
    num_threads=sm.threads,
    model_max_length=sm.params.max_length,
)
