# lora: instruction records -> token ids (the chat template) -> a LoRA adapter -> the merged model.
import json
import os


rule lora_data:
    input:
        train=f"{RESULTS}/instruct/train.jsonl",
        val=f"{RESULTS}/instruct/val.jsonl",
        model=f"{RESULTS}/pretrain/model",
    output:
        train=f"{RESULTS}/lora/data/train.parquet",
        val=f"{RESULTS}/lora/data/val.parquet",
        rejected=f"{RESULTS}/lora/data/rejected.jsonl",
        stats=f"{RESULTS}/lora/data/stats.json",
    log:
        f"{RESULTS}/logs/lora_data/lora_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/lora_data/lora_data.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        out_dir=lambda wc, output: os.path.dirname(output.train),
        cutoff_len=config["lora"]["cutoff_len"],
        overlong=config["lora"]["overlong"],
    script:
        "../scripts/lora_data.py"


# The launcher (src/cama/train/launch.py) starts one process, torchrun on this node, or srun +
# torchrun across a Slurm allocation. Checkpoints go to an undeclared folder, as pretrain's:
# a rerun after a kill must find them to resume.
rule lora:
    input:
        train=rules.lora_data.output.train,
        val=rules.lora_data.output.val,
        base=f"{RESULTS}/pretrain/model",
    output:
        adapter=protected(directory(f"{RESULTS}/lora/adapter")),
        stats=f"{RESULTS}/lora/stats.json",
        curve=report(
            f"{RESULTS}/lora/loss.png",
            category="LoRA",
            caption="../report/lora_loss.rst",
        ),
    log:
        f"{RESULTS}/logs/lora/lora.log",
    benchmark:
        f"{RESULTS}/benchmarks/lora/lora.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        gpu=0,
        nodes=1,
        procs=2,  # training processes on a node without GPUs (DDP over gloo); with GPUs, one per GPU
        mem_mb=8000,
        runtime=240,
    params:
        data=lambda wc, input: os.path.dirname(input.train),
        settings=json.dumps(config["lora"]),
        checkpoints=f"{RESULTS}/lora/checkpoints",
        tensorboard=f"{RESULTS}/lora/tensorboard",
        gpus_per_node=lambda wc, resources: resources.gpu // max(resources.nodes, 1),
    shell:
        "cama lora --gpus {params.gpus_per_node} --tasks {resources.procs}"
        " --threads {threads} --"
        " --data {params.data} --base-model {input.base} --out-adapter {output.adapter}"
        " --checkpoint-dir {params.checkpoints} --stats {output.stats}"
        " --curve {output.curve} --tensorboard {params.tensorboard}"
        " --settings {params.settings:q} > {log} 2>&1"


rule merge_lora:
    input:
        base=f"{RESULTS}/pretrain/model",
        adapter=rules.lora.output.adapter,
    output:
        protected(directory(f"{RESULTS}/lora/merged")),
    log:
        f"{RESULTS}/logs/merge_lora/merge.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_lora/merge.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        dtype=config["lora"]["merge"]["dtype"],
        max_shard_size=config["lora"]["merge"]["max_shard_size"],
    shell:
        "cama merge --base {input.base} --adapter {input.adapter} --out {output}"
        " --dtype {params.dtype} --max-shard-size {params.max_shard_size} > {log} 2>&1"
