# pack: hold out documents, get a tokenizer, pack sentences into Megatron shards.


rule heldout_split:
    input:
        expand(f"{RESULTS}/dedup/{{source}}.parquet", source=SOURCES),
    output:
        **{lang: f"{RESULTS}/heldout/{lang}.jsonl" for lang in LANGS},
        stats=f"{RESULTS}/heldout/stats.json",
    log:
        f"{RESULTS}/logs/heldout_split/heldout.log",
    benchmark:
        f"{RESULTS}/benchmarks/heldout_split/heldout.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        sources=SOURCES,
        settings=config["pack"]["heldout"],
        seed=config["pack"]["seed"],
    script:
        "../scripts/heldout_split.py"


rule train_tokenizer:
    input:
        docs=expand(f"{RESULTS}/dedup/{{source}}.parquet", source=SOURCES),
        heldout=[rules.heldout_split.output[lang] for lang in LANGS],
    output:
        model=f"{RESULTS}/tokenizer/tokenizer.model",
        config=f"{RESULTS}/tokenizer/tokenizer_config.json",
        stats=f"{RESULTS}/tokenizer/stats.json",
    log:
        f"{RESULTS}/logs/train_tokenizer/tokenizer.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_tokenizer/tokenizer.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        settings=config["pack"]["tokenizer"],
        base_model=config["model"]["base"],  # its tokenizer, unless pack.tokenizer.path is set
        seed=config["pack"]["seed"],
        max_length=config["pack"]["max_length"],
    script:
        "../scripts/train_tokenizer.py"


rule pack_shards:
    input:
        docs=expand(f"{RESULTS}/dedup/{{source}}.parquet", source=SOURCES),
        heldout=[rules.heldout_split.output[lang] for lang in LANGS],
        tokenizer=rules.train_tokenizer.output.model,
    output:
        shards=expand(
            f"{RESULTS}/shards/{{source}}_{{k}}.{{ext}}",
            source=SOURCES,
            k=range(config["pack"]["workers"]),
            ext=["bin", "idx"],
        ),
        blend=f"{RESULTS}/shards/blend.json",
        stats=f"{RESULTS}/shards/stats.json",
    log:
        f"{RESULTS}/logs/pack_shards/pack.log",
    benchmark:
        f"{RESULTS}/benchmarks/pack_shards/pack.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: config["pack"]["workers"]
    resources:
        mem_mb=lambda wc, threads: 1500 * threads,
        runtime=480,
    params:
        sources=SOURCES,
        langs={s: source_lang(s) for s in SOURCES},
        pack=config["pack"],
    script:
        "../scripts/pack_shards.py"
