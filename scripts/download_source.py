"""Rule download_source: fetch one source into results/raw/{source}/ with a manifest."""

from cama.corpus.download import download_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
download_source(
    name=sm.wildcards.source,
    spec=sm.params.spec,
    out_dir=sm.output[0],
    settings=sm.params.settings,
    workdir=sm.params.workdir,
)
