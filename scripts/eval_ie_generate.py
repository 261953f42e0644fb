"""Rule eval_ie_generate: one model's answers to every IE evaluation set -> eval/ie/{model}.jsonl."""

import torch

from cama.evaluate.ie import generate_answers
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
log = setup_logging(sm.log[0])
torch.set_num_threads(sm.threads)
s = sm.params.settings
generate_answers(
    model=sm.input.model,
    adapter=sm.input.get("adapter"),
    sets=dict(zip(sm.params.names, sm.input.sets, strict=True)),
    out_jsonl=sm.output[0],
    generation=s["generation"],
    max_sentences=s["max_sentences"],
    engine_settings={"max_batch": s["max_batch"]},
)
