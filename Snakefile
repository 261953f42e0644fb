# cama: build a Chinese-English bilingual LLaMA, reproducibly.
# Read this file as the table of contents; each stage is one file in rules/.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The demo is the default. A run config given with --configfile replaces it
# (rather than being merged into it, which is what Snakemake would do).
if not workflow.config_settings.configfiles:

    configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/clean.smk"
include: "rules/pack.smk"
include: "rules/pretrain.smk"
include: "rules/instruct.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
