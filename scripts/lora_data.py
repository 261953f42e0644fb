"""Rule lora_data: instruct/{train,val}.jsonl -> token ids + answer masks (lora/data/), counted."""

from cama.logs import setup_logging
from cama.lora.data import tokenize_splits

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
tokenize_splits(
    model_dir=sm.input.model,
    train=sm.input.train,
    val=sm.input.val,
    out_dir=sm.params.out_dir,
    cutoff_len=sm.params.cutoff_len,
    overlong=sm.params.overlong,
)
