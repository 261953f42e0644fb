# cama: build a Chinese-English bilingual LLaMA, reproducibly.
# Read this file as the table of contents; each stage is one file in rules/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/clean.smk"
include: "rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
