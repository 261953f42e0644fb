# clean: filter each source, then deduplicate across all of them.


rule filter_source:
    input:
        f"{RESULTS}/docs/{{source}}.parquet",
    output:
        kept=f"{RESULTS}/clean/{{source}}.parquet",
        rejected=f"{RESULTS}/clean/{{source}}.rejected.parquet",
        scores=f"{RESULTS}/clean/{{source}}.scores.parquet",
        stats=f"{RESULTS}/clean/{{source}}.stats.json",
    log:
        f"{RESULTS}/logs/filter_source/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/filter_source/{{source}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=480,
    params:
        lang=lambda wc: source_lang(wc.source),
        settings=lambda wc: source_filter_settings(config, wc.source),
    script:
        "../scripts/filter_source.py"


rule dedup_corpus:
    input:
        expand(f"{RESULTS}/clean/{{source}}.parquet", source=SOURCES),
    output:
        docs=expand(f"{RESULTS}/dedup/{{source}}.parquet", source=SOURCES),
        clusters=f"{RESULTS}/dedup/clusters.parquet",
        stats=f"{RESULTS}/dedup/stats.json",
    log:
        f"{RESULTS}/logs/dedup_corpus/dedup.log",
    benchmark:
        f"{RESULTS}/benchmarks/dedup_corpus/dedup.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=480,
    params:
        sources=SOURCES,
        langs={s: source_lang(s) for s in SOURCES},
        settings=config["dedup"],
    script:
        "../scripts/dedup_corpus.py"
