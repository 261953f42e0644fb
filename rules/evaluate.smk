# evaluate: bits per byte of the base, the pretrained and the merged (published) model on the
# held-out documents; IE micro-F1 of every model the workflow makes; the case gallery
# (src/cama/evaluate/).

EVAL_MODELS = get_eval_models()
# bits per byte needs whole HF folders: every model but "lora" (the merged one is the same model)
BPB_MODELS = {m: v["model"] for m, v in EVAL_MODELS.items() if not v["adapter"]}


rule eval_bpb:
    input:
        unpack(lambda wildcards: BPB_MODELS),
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
        models=list(BPB_MODELS),
        langs=LANGS,
        settings=config["evaluate"]["bpb"],
    script:
        "../scripts/eval_bpb.py"


IE_MODELS = [m for m in config["evaluate"]["ie"]["models"] if m in EVAL_MODELS]
CASE_MODELS = {
    m: preset
    for m, preset in config["evaluate"]["cases"]["models"].items()
    if m in EVAL_MODELS
}


wildcard_constraints:
    model="|".join(EVAL_MODELS),


rule eval_ie_generate:
    input:
        unpack(get_model_inputs),
        sets=expand(f"{RESULTS}/instruct/eval/{{ieset}}.jsonl", ieset=IE_SETS),
    output:
        f"{RESULTS}/eval/ie/{{model}}.jsonl",
    log:
        f"{RESULTS}/logs/eval_ie_generate/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_ie_generate/{{model}}.tsv"
    conda:
        "../envs/corpus.yaml"
    # one thread: two models generate side by side on the demo's 2 cores, and a shared CPU
    # makes multi-threaded decoding of a small model 10x slower (measured); a GPU does the work
    threads: 1
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=240,
    params:
        names=IE_SETS,
        settings=config["evaluate"]["ie"],
    script:
        "../scripts/eval_ie_generate.py"


rule eval_ie:
    input:
        generations=expand(f"{RESULTS}/eval/ie/{{model}}.jsonl", model=IE_MODELS),
        sets=expand(f"{RESULTS}/instruct/eval/{{ieset}}.jsonl", ieset=IE_SETS),
    output:
        ie=f"{RESULTS}/eval/ie.json",
        table=report(
            f"{RESULTS}/eval/ie_table.html",
            category="Evaluation",
            caption="../report/ie_table.rst",
        ),
        plot=report(
            f"{RESULTS}/eval/ie_f1.png",
            category="Evaluation",
            caption="../report/ie_f1.rst",
        ),
    log:
        f"{RESULTS}/logs/eval_ie/ie.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        names=IE_SETS,
        models=IE_MODELS,
        paths={m: EVAL_MODELS[m] for m in IE_MODELS},
        settings=config["evaluate"]["ie"],
    script:
        "../scripts/eval_ie.py"


rule eval_cases:
    input:
        cases=get_cases_file(),
        models=[
            path
            for m in CASE_MODELS
            for path in EVAL_MODELS[m].values()
            if path is not None
        ],
    output:
        md=f"{RESULTS}/eval/cases.md",
        jsonl=f"{RESULTS}/eval/cases.jsonl",
        html=report(
            f"{RESULTS}/eval/cases.html",
            category="Evaluation",
            caption="../report/cases.rst",
        ),
    log:
        f"{RESULTS}/logs/eval_cases/cases.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_cases/cases.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        gpu=0,
        mem_mb=8000,
        runtime=120,
    params:
        models={m: {**EVAL_MODELS[m], "preset": p} for m, p in CASE_MODELS.items()},
        generation=config["evaluate"]["cases"]["generation"],
    script:
        "../scripts/eval_cases.py"
