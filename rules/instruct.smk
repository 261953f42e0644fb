# instruct: instruction sources and IE evaluation sets -> records -> train/val (src/cama/instruct/).


rule download_instruct_source:
    output:
        directory(f"{RESULTS}/raw/instruct/{{name}}"),
    log:
        f"{RESULTS}/logs/download_instruct_source/{{name}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download_instruct_source/{{name}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        spec=lambda wc: instruct_spec(wc.name),
        settings=config["download"],
        workdir=workflow.basedir,
    script:
        "../scripts/download_instruct_source.py"


rule convert_instruct_source:
    input:
        f"{RESULTS}/raw/instruct/{{isource}}",
    output:
        records=f"{RESULTS}/instruct/sources/{{isource}}.jsonl",
        quarantine=f"{RESULTS}/instruct/sources/{{isource}}.quarantine.parquet",
        stats=f"{RESULTS}/instruct/sources/{{isource}}.stats.json",
    log:
        f"{RESULTS}/logs/convert_instruct_source/{{isource}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert_instruct_source/{{isource}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        spec=lambda wc: config["instruct"]["sources"][wc.isource],
        ie=config["instruct"]["ie"],
        seed=config["instruct"]["seed"],
    script:
        "../scripts/convert_instruct_source.py"


rule build_ie_eval_set:
    input:
        f"{RESULTS}/raw/instruct/{{ieset}}",
    output:
        records=f"{RESULTS}/instruct/eval/{{ieset}}.jsonl",
        quarantine=f"{RESULTS}/instruct/eval/{{ieset}}.quarantine.parquet",
        stats=f"{RESULTS}/instruct/eval/{{ieset}}.stats.json",
    log:
        f"{RESULTS}/logs/build_ie_eval_set/{{ieset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_ie_eval_set/{{ieset}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        spec=lambda wc: config["evaluate"]["ie"]["sets"][wc.ieset],
        ie=config["instruct"]["ie"],
        seed=config["instruct"]["seed"],
    script:
        "../scripts/build_ie_eval_set.py"


rule assemble_instruct:
    input:
        records=get_instruct_records(),
        eval_sets=expand(f"{RESULTS}/instruct/eval/{{ieset}}.jsonl", ieset=IE_SETS),
        heldout=expand(f"{RESULTS}/heldout/{{lang}}.jsonl", lang=["zh", "en", "code"]),
        decontaminate=config["instruct"]["decontaminate"]["files"],
        tokenizer=f"{RESULTS}/tokenizer/tokenizer.model",
    output:
        train=f"{RESULTS}/instruct/train.jsonl",
        val=f"{RESULTS}/instruct/val.jsonl",
        rejected=f"{RESULTS}/instruct/rejected.jsonl",
        stats=f"{RESULTS}/instruct/stats.json",
    log:
        f"{RESULTS}/logs/assemble_instruct/assemble.log",
    benchmark:
        f"{RESULTS}/benchmarks/assemble_instruct/assemble.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        inputs=get_instruct_inputs(),
        eval_sets=IE_SETS,
        langs=["zh", "en", "code"],
        settings=config["instruct"],
        dedup=config["dedup"],
        translation_stats=get_translation_stats(),
    script:
        "../scripts/assemble_instruct.py"


rule instruct_report:
    input:
        stats=f"{RESULTS}/instruct/stats.json",
    output:
        table=report(
            f"{RESULTS}/report/instruct_table.html",
            category="Instructions",
            caption="../report/instruct_table.rst",
        ),
        plot=report(
            f"{RESULTS}/report/instruct_mix.png",
            category="Instructions",
            caption="../report/instruct_mix.rst",
        ),
    log:
        f"{RESULTS}/logs/instruct_report/report.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/instruct_report.py"


rule translate_instruct_source:
    input:
        f"{RESULTS}/instruct/sources/{{tsource}}.jsonl",
    output:
        records=f"{RESULTS}/instruct/translated/{{tsource}}.jsonl",
        rejected=f"{RESULTS}/instruct/translated/{{tsource}}.rejected.jsonl",
        stats=f"{RESULTS}/instruct/translated/{{tsource}}.stats.json",
    log:
        f"{RESULTS}/logs/translate_instruct_source/{{tsource}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/translate_instruct_source/{{tsource}}.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=1440,
    params:
        spec=lambda wc: config["instruct"]["sources"][wc.tsource],
        settings=config["instruct"]["translate"],
        cache=f"{RESULTS}/instruct/cache/translate.sqlite",
    script:
        "../scripts/translate_instruct_source.py"
