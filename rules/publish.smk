# publish: a weight diff against the base, the hub-ready folder (diff, LoRA, tokenizer, card,
# SHA256SUMS), and an upload when publish.repo_id is set. Inputs: get_publish_inputs().


rule weight_diff:
    input:
        base=get_publish_inputs()["base"],
        tuned=get_publish_inputs()["tuned"],
    output:
        diff=directory(f"{RESULTS}/diff"),
        stats=f"{RESULTS}/diff.stats.json",
    log:
        f"{RESULTS}/logs/weight_diff/diff.log",
    benchmark:
        f"{RESULTS}/benchmarks/weight_diff/diff.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        mem_mb=2000,  # a few chunks, whatever the model size (benchmarks/diff_memory.py)
        runtime=120,
    params:
        settings=config["publish"],
    script:
        "../scripts/weight_diff.py"


rule publish_folder:
    input:
        **get_publish_inputs(),
        diff=f"{RESULTS}/diff",
    output:
        folder=directory(f"{RESULTS}/publish"),
        stats=f"{RESULTS}/publish.stats.json",
        card=report(
            f"{RESULTS}/report/model_card.html",
            category="Publish",
            caption="../report/model_card.rst",
        ),
    log:
        f"{RESULTS}/logs/publish_folder/publish.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=config["publish"],
        sources=SOURCES,
    script:
        "../scripts/publish_folder.py"


# Runs only when publish.repo_id is set (get_publish_outputs). The token comes from HF_TOKEN.
rule publish_upload:
    input:
        folder=f"{RESULTS}/publish",
    output:
        record=f"{RESULTS}/publish.upload.json",
    log:
        f"{RESULTS}/logs/publish_upload/upload.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
    params:
        settings=config["publish"],
    script:
        "../scripts/publish_upload.py"
