"""Rule eval_cases: the case gallery on each model with its preset -> eval/cases.md (+ .jsonl, .html)."""

import torch

from cama.evaluate.cases import run_gallery
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
log = setup_logging(sm.log[0])
torch.set_num_threads(sm.threads)
run_gallery(
    cases_file=sm.input.cases,
    models=sm.params.models,
    generation=sm.params.generation,
    out_md=sm.output.md,
    out_jsonl=sm.output.jsonl,
    out_html=sm.output.html,
)
