# report: plots and tables for `snakemake --report`.


rule corpus_report:
    input:
        normalise=expand(f"{RESULTS}/docs/{{source}}.stats.json", source=SOURCES),
        filter=expand(f"{RESULTS}/clean/{{source}}.stats.json", source=SOURCES),
        rejected=expand(f"{RESULTS}/clean/{{source}}.rejected.parquet", source=SOURCES),
        norm_rejected=expand(
            f"{RESULTS}/docs/{{source}}.rejected.parquet", source=SOURCES
        ),
        quarantine=expand(
            f"{RESULTS}/docs/{{source}}.quarantine.parquet", source=SOURCES
        ),
        dedup=f"{RESULTS}/dedup/stats.json",
        clusters=f"{RESULTS}/dedup/clusters.parquet",
    output:
        funnel=report(
            f"{RESULTS}/report/funnel.png",
            category="Corpus",
            caption="../report/funnel.rst",
        ),
        rejections=report(
            f"{RESULTS}/report/rejections.html",
            category="Corpus",
            caption="../report/rejections.rst",
        ),
        clusters=report(
            f"{RESULTS}/report/dedup_clusters.png",
            category="Corpus",
            caption="../report/dedup_clusters.rst",
        ),
    log:
        f"{RESULTS}/logs/corpus_report/report.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        sources=SOURCES,
        examples=config["report"]["examples_per_rule"],
    script:
        "../scripts/corpus_report.py"


rule pack_report:
    input:
        stats=f"{RESULTS}/shards/stats.json",
    output:
        lengths=report(
            f"{RESULTS}/report/sample_lengths.png",
            category="Packing",
            caption="../report/sample_lengths.rst",
        ),
    log:
        f"{RESULTS}/logs/pack_report/report.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/pack_report.py"
