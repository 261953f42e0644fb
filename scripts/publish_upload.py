"""Rule publish_upload: publish/ -> the Hub repo publish.repo_id (cama publish); token from HF_TOKEN."""

from cama.logs import setup_logging
from cama.publish.upload import publish

sm = snakemake  # noqa: F821 (snakemake is injected)
setup_logging(sm.log[0])
settings = sm.params.settings
publish(
    folder=sm.input.folder,
    repo_id=settings["repo_id"],
    private=settings["private"],
    record=sm.output.record,
)
