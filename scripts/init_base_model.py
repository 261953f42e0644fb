"""Rule init_base_model: a seeded tiny LLaMA + the demo tokenizer -> pretrain/base/."""

from pathlib import Path

from cama.logs import setup_logging
from cama.pretrain.config import model_init_from_dict
from cama.pretrain.model import init_model

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
init_model(
    tokenizer_dir=Path(sm.input.tokenizer).parent,
    out_dir=sm.output.model,
    init=model_init_from_dict(sm.params.init),
    out_stats=sm.output.stats,
)
