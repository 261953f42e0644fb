"""Rule eval_bpb: bits per byte of the base, pretrained and merged models on held-out docs -> eval/bpb.json."""

import torch

from cama.config import build
from cama.evaluate.bpb import BpbSettings, bpb_table, evaluate_bpb
from cama.logs import setup_logging
from cama.report.evaluate import plot_bpb

sm = snakemake  # noqa: F821 (snakemake is injected)
log = setup_logging(sm.log[0])
torch.set_num_threads(sm.threads)
result = evaluate_bpb(
    models={name: sm.input[name] for name in sm.params.models},
    heldout=dict(zip(sm.params.langs, sm.input.heldout, strict=True)),
    out_json=sm.output.bpb,
    settings=build(BpbSettings, sm.params.settings, "evaluate.bpb"),
)
log.info("bits per byte:\n%s", bpb_table(result))
plot_bpb(result, sm.output.plot)
