#!/usr/bin/env bash
# Re-create the wheel bundle for the GPU image from the pinned list, then check its closure:
#
#   benchmarks/gpu1/fetch_wheels.sh              # -> .whl-gpu1/ at the repository root (git-ignored)
#   benchmarks/gpu1/fetch_wheels.sh DIR [PIP_ARGS...]   # e.g. --find-links /work/main/.whl
#
# The image (python3 3.12.3, torch 2.11, transformers 5.17, ...) can reach no index, so every
# package it lacks travels as a wheel: `run` with carry [".whl-gpu1"] (benchmarks/gpu1/run.sh
# installs them). Exact versions from wheels.txt, no dependencies resolved by pip:
# check_wheels.py checks the closure instead, against image-packages.txt. Two steps more:
# the lines marked 'sdist only' (deepspeed, snakemake's connection-pool) have no wheel on PyPI
# and are built here from their sdists (pure Python; deepspeed without its ops); blingfire and
# PuLP ship every platform's binaries (58 MB together) and are slimmed to what Linux x86_64 runs
# (slim_wheel.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dest=${1:-$root/.whl-gpu1}
shift || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
platforms=()
for n in $(seq 39 -1 5); do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$tmp" -r <(grep -v '^[^#].*sdist only' "$here/wheels.txt") "$@"
mapfile -t sdists < <(grep '^[^#].*sdist only' "$here/wheels.txt" | cut -d' ' -f1)
python3 -m pip wheel -q --no-deps --no-binary=:all: -w "$tmp" "${sdists[@]}" "$@"
python3 "$here/slim_wheel.py" "$tmp"/blingfire-*.whl --drop 'blingfire/*.bin' 'blingfire/*.i2w' \
    'blingfire/*.dll' 'blingfire/*.pdb' 'blingfire/*.dylib'
python3 "$here/slim_wheel.py" "$tmp"/pulp-*.whl --drop 'pulp/tests/*' 'pulp/solverdir/cbc/osx/*' \
    'pulp/solverdir/cbc/win/*' 'pulp/solverdir/cbc/linux/arm64/*' 'pulp/solverdir/cbc/linux/i32/*'
rm -rf "$dest"
mkdir -p "$dest"
mv "$tmp"/*.whl "$dest"/
python3 "$here/check_wheels.py" "$dest"
