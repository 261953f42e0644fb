"""Rule download_instruct_source: fetch one instruction source or IE evaluation set into results/raw/instruct/{name}/."""

from cama.corpus.download import download_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
download_source(
    name=sm.wildcards.name,
    spec=sm.params.spec,
    out_dir=sm.output[0],
    settings=sm.params.settings,
    workdir=sm.params.workdir,
)
