#!/usr/bin/env bash
# Issue 13's one-GPU run (README, "On one GPU"): the demo corpus, a TinyLlama-1.1B-shape model
# pretrained on it, LoRA, then bits per byte and IE F1 of base, pretrained and LoRA.
# One device command, from the repository root, with the wheels carried:
#
#   bash benchmarks/gpu1/run.sh            # run(command=..., carry=[".whl-gpu1"], timeout_s=600)
#
# It installs the wheels (benchmarks/gpu1/fetch_wheels.sh made them) and cama into $SITE, runs
# the workflow with config/gpu-1.yaml to results/eval/ie.json and results/eval/bpb.json under
# `timeout`, so that it ends inside the 10-minute call, and copies to $OUT (at most 8 files):
#   ie.json  bpb.json  pretrain-stats.json  lora-stats.json   the results, as far as they exist
#   snakemake-tail.log   the last 400 lines of this and earlier calls' snakemake output
#   status.txt           per call: time, GPU, disk, snakemake's exit status, what is done
#   results.tgz          per-rule benchmark tsv's, every rule's log (tail), the IE generations
# and prints the F1 table and the bits per byte when they exist. Run it again (while the
# machine is warm, results/ is still there) to continue: snakemake redoes only what is missing
# or was cut (--rerun-incomplete); LoRA resumes from its last checkpoint, pretraining too where
# it has one (config/gpu-1.yaml keeps only the last: disk).
#
# Settings (environment): OUT (required), WHEELS (.whl-gpu1; empty: the Python has them
# already), SITE (/tmp/site), PYTHON (python3), BUDGET (570: seconds for the whole script),
# CORES (16), GPUS (1; 0: the CPU), CONFIGS ("config/config.yaml config/gpu-1.yaml").
# Extra arguments go to snakemake. A CPU check of this script: benchmarks/gpu1/cpu-check.sh.
set -uo pipefail
start=$SECONDS
cd "$(dirname "$0")/../.."
: "${OUT:?OUT: the folder the results are copied to}"
WHEELS=${WHEELS-.whl-gpu1}
SITE=${SITE:-/tmp/site}
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-570}
CORES=${CORES:-16}
GPUS=${GPUS:-1}
read -r -a configs <<<"${CONFIGS:-config/config.yaml config/gpu-1.yaml}"
mkdir -p "$OUT" results/gpu1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}

# 1. the wheels and cama (no index there; cama's build uses the image's setuptools)
wheels=()
[ -n "$WHEELS" ] && wheels=("$WHEELS"/*.whl)
if ! "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
    --upgrade --target "$SITE" "${wheels[@]}" . >results/gpu1/install.log 2>&1; then
    cat results/gpu1/install.log
    echo "run.sh: installing ${#wheels[@]} wheels and cama into $SITE failed" >&2
    exit 3
fi
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH} PATH=$SITE/bin:$PATH
echo "run.sh: installed ${#wheels[@]} wheels and cama into $SITE in $((SECONDS - start)) s"

# 2. the workflow, stopped in time to copy the results (timeout TERMs the whole process group,
# KILLs it 15 s later; a job cut short is redone by the next call)
gpu_args=()
if [ "$GPUS" -gt 0 ]; then
    gpu_args=(--resources "gpu=$GPUS" --set-resources "pretrain:gpu=$GPUS" "eval_bpb:gpu=$GPUS"
        "lora:gpu=$GPUS" "eval_ie_generate:gpu=$GPUS" "eval_cases:gpu=$GPUS")
fi
left=$((BUDGET - (SECONDS - start) - 40))
echo "run.sh: snakemake for at most $left s"
echo "=== call at $(date -u +%FT%TZ), $left s ===" >>results/gpu1/snakemake.log
timeout -k 15 "$left" "$PY" -m snakemake --cores "$CORES" --configfile "${configs[@]}" \
    "${gpu_args[@]}" --rerun-incomplete --keep-going --printshellcmds \
    results/eval/ie.json results/eval/bpb.json "$@" >>results/gpu1/snakemake.log 2>&1
rc=$?

# 3. what came of it -> $OUT
{
    echo "call ended $(date -u +%FT%TZ) after $((SECONDS - start)) s; snakemake exit status $rc" \
        "$([ $rc -eq 124 ] && echo '(stopped by timeout: run again to continue)')"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
    df -h . | tail -1
    du -sh results/pretrain/checkpoints results/lora/checkpoints 2>/dev/null
    for f in pretrain/base pretrain/model lora/adapter lora/merged eval/ie/base.jsonl \
        eval/ie/pretrained.jsonl eval/ie/lora.jsonl eval/bpb.json eval/ie.json; do
        [ -e "results/$f" ] && echo "done: $f" || echo "missing: $f"
    done
    echo "seconds per heavy rule (results/benchmarks/; every other rule: in results.tgz):"
    for r in train_tokenizer pack_shards init_base_model pretrain lora_data lora merge_lora \
        eval_bpb eval_ie_generate; do
        for t in results/benchmarks/$r/*.tsv; do [ -e "$t" ] && echo "  ${t#results/benchmarks/} $(tail -1 "$t" | cut -f1)"; done
    done
} >>results/gpu1/status.txt 2>&1
cp results/gpu1/status.txt "$OUT/status.txt"
tail -n 400 results/gpu1/snakemake.log >"$OUT/snakemake-tail.log"
for f in eval/ie.json eval/bpb.json; do [ -f "results/$f" ] && cp "results/$f" "$OUT/"; done
[ -f results/pretrain/stats.json ] && cp results/pretrain/stats.json "$OUT/pretrain-stats.json"
[ -f results/lora/stats.json ] && cp results/lora/stats.json "$OUT/lora-stats.json"
rm -rf results/gpu1/logs && mkdir -p results/gpu1/logs
(cd results && find logs -name '*.log' 2>/dev/null | while read -r f; do
    mkdir -p "gpu1/$(dirname "$f")" && tail -n 300 "$f" >"gpu1/$f"
done)
tar -czf "$OUT/results.tgz" -C results gpu1/logs gpu1/install.log \
    $(cd results && ls -d benchmarks eval/ie eval/ie_table.html pretrain/base_stats.json lora/data/stats.json 2>/dev/null)
ls -la "$OUT"
tail -n 25 results/gpu1/status.txt
"$PY" benchmarks/gpu1/summary.py results/eval/ie.json results/eval/bpb.json
exit $rc
