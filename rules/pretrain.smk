# pretrain: a base model (the demo initialises a tiny one), then continued pretraining.
import json


rule init_base_model:
    input:
        tokenizer=f"{RESULTS}/tokenizer/tokenizer.model",
    output:
        model=directory(f"{RESULTS}/pretrain/base"),
        stats=f"{RESULTS}/pretrain/base_stats.json",
    log:
        f"{RESULTS}/logs/init_base_model/init.log",
    conda:
        "../envs/corpus.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        init=config["model"]["init"],
    script:
        "../scripts/init_base_model.py"


# `cama pretrain` is the launcher (src/cama/train/launch.py): one process, torchrun on this
# node (gloo on CPU, NCCL on GPUs), or srun + torchrun across the nodes of a Slurm allocation;
# its training processes die with it. `gpu` is the job's total (Slurm's --gpus); the launcher
# gets the GPUs per node. Checkpoints go to an undeclared folder: Snakemake deletes declared
# outputs before a run, and a rerun after a kill must find them to resume.
rule pretrain:
    input:
        blend=f"{RESULTS}/shards/blend.json",
        base=get_base_model(),
    output:
        model=protected(directory(f"{RESULTS}/pretrain/model")),
        stats=f"{RESULTS}/pretrain/stats.json",
        curve=report(
            f"{RESULTS}/pretrain/loss.png",
            category="Pretraining",
            caption="../report/pretrain_loss.rst",
        ),
    log:
        f"{RESULTS}/logs/pretrain/pretrain.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/pretrain.tsv"
    conda:
        "../envs/corpus.yaml"
    threads: 2
    resources:
        gpu=0,
        nodes=1,
        procs=2,  # training processes on a node without GPUs (gloo); with GPUs, one per GPU
        mem_mb=8000,
        runtime=120,
    params:
        settings=json.dumps(config["pretrain"]),
        checkpoints=f"{RESULTS}/pretrain/checkpoints",
        tensorboard=f"{RESULTS}/pretrain/tensorboard",
        gpus_per_node=lambda wc, resources: resources.gpu // max(resources.nodes, 1),
    shell:
        "cama pretrain --gpus {params.gpus_per_node} --tasks {resources.procs}"
        " --threads {threads} --"
        " --blend {input.blend} --base-model {input.base} --out-model {output.model}"
        " --checkpoint-dir {params.checkpoints} --stats {output.stats}"
        " --curve {output.curve} --tensorboard {params.tensorboard}"
        " --settings {params.settings:q} > {log} 2>&1"
