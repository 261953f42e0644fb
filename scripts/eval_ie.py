"""Rule eval_ie: parse and score every model's IE answers -> eval/ie.json, a table and a plot."""

from cama.evaluate.ie import ie_table, score_models
from cama.logs import setup_logging
from cama.report.evaluate import ie_table_html, plot_ie

sm = snakemake  # noqa: F821 (snakemake is injected)
log = setup_logging(sm.log[0])
s = sm.params.settings
result = score_models(
    sets=dict(zip(sm.params.names, sm.input.sets, strict=True)),
    generations=dict(zip(sm.params.models, sm.input.generations, strict=True)),
    out_json=sm.output.ie,
    max_sentences=s["max_sentences"],
    paths=sm.params.paths,
    generation=s["generation"],
)
log.info("IE scores (F1 %%, P/R in brackets):\n%s", ie_table(result))
ie_table_html(result, sm.output.table)
plot_ie(result, sm.output.plot)
