#!/usr/bin/env bash
# Check benchmarks/gpu1/run.sh on a CPU, as the device would run it: in a copy of the working
# tree, the workflow of config/gpu-1.yaml shrunk by cpu-check.yaml (2-layer model, a few steps;
# the 32k tokenizer and the whole DAG as on the GPU), cut short by a first call's budget and
# finished by a second call, each copying its results to its own OUT. A few minutes on 2 cores.
#
#   PYTHON=/path/to/venv/bin/python benchmarks/gpu1/cpu-check.sh     # a Python with cama's dependencies
#
# The wheels are not installed here (WHEELS empty: they are cp312 builds for the image; the
# bundle is checked by check_wheels.py and by installing it into a Python 3.12). FIRST and
# SECOND are the two calls' budgets in seconds; WORK the folder (/tmp/cama-gpu1-check).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${WORK:-/tmp/cama-gpu1-check}
rm -rf "$work"
mkdir -p "$work/tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -I{} sh -c '[ -e "$1" ] && cp --parents -P "$1" "$2" || true' _ {} "$work/tree")
run() {
    env WHEELS= SITE="$work/site" GPUS=0 CORES=2 OUT="$work/$1" BUDGET="$2" \
        CONFIGS="config/config.yaml config/gpu-1.yaml benchmarks/gpu1/cpu-check.yaml" \
        bash "$work/tree/benchmarks/gpu1/run.sh"
}
rc=0
run out1 "${FIRST:-150}" || rc=$?
echo "cpu-check: first call exit status $rc (124: cut by its budget, as meant)"
run out2 "${SECOND:-900}"
for f in ie.json bpb.json pretrain-stats.json lora-stats.json status.txt snakemake-tail.log results.tgz; do
    [ -s "$work/out2/$f" ] || { echo "cpu-check: $work/out2/$f missing" >&2; exit 1; }
done
echo "cpu-check: both calls done; the second call's outputs are all in $work/out2"
