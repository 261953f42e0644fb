# corpus: download -> normalise. One job per source.


rule download_source:
    output:
        directory(f"{RESULTS}/raw/{{source}}"),
    log:
        f"{RESULTS}/logs/download_source/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_source/{{source}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        spec=lambda wc: config["sources"][wc.source],
        settings=config["download"],
        workdir=workflow.basedir,
    script:
        "../scripts/download_source.py"


rule normalise_source:
    input:
        f"{RESULTS}/raw/{{source}}",
    output:
        docs=f"{RESULTS}/docs/{{source}}.parquet",
        rejected=f"{RESULTS}/docs/{{source}}.rejected.parquet",
        quarantine=f"{RESULTS}/docs/{{source}}.quarantine.parquet",
        stats=f"{RESULTS}/docs/{{source}}.stats.json",
    log:
        f"{RESULTS}/logs/normalise_source/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/normalise_source/{{source}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        spec=lambda wc: config["sources"][wc.source],
        settings=config["normalise"],
        layout=lambda wc: source_layout_settings(config, wc.source),
    script:
        "../scripts/normalise_source.py"
