# evaluate: bits per byte of the base and the pretrained model on the held-out documents.


rule eval_bpb:
    input:
        base=get_base_model(),
        pretrained=f"{RESULTS}/pretrain/model",
        heldout=[rules.heldout_split.output[lang] for lang in LANGS],
    output:
        bpb=f"{RESULTS}/eval/bpb.json",
        plot=report(
            f"{RESULTS}/eval/bpb.png",
            category="Evaluation",
            caption="../report/bpb.rst",
        ),
    log:
        f"{RESULTS}/logs/eval_bpb/bpb.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_bpb/bpb.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=60,
    params:
        langs=LANGS,
        settings=config["evaluate"]["bpb"],
    script:
        "../scripts/eval_bpb.py"
