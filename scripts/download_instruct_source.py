"""Rule download_instruct_source: fetch one instruction source or IE evaluation set into results/raw/instruct/{name}/."""

from cama.corpus.download import download_source
from cama.logs import setup_logging

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
# download_source validates its spec as a corpus source: give it the keys the download reads
# (an instruct spec's task, format, options ... are the converter's); lang is required there, unused
spec = {k: v for k, v in sm.params.spec.items() if k in ("uri", "sha256", "include", "revision")}
download_source(
    name=sm.wildcards.name,
    spec={**spec, "lang": "en"},
    out_dir=sm.output[0],
    settings=sm.params.settings,
    workdir=sm.params.workdir,
)
