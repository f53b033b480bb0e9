#!/usr/bin/env bash
# Times builds against each other on the GPU machine: the same `swajit` arguments run with each carried build in
# turn (.carry/<build>/swajit, made by tools/bench/prepare_gpu_carry.sh and copied aside), alternated over rounds so
# that drift of the machine shows as spread, not as a difference. Logs in $OUT/ab_<label>.log.
# Usage: tools/bench/gpu_ab.sh LABEL "BUILD..." ROUNDS SWAJIT_ARGS...
set -uo pipefail
label=$1 builds=$2 rounds=$3
shift 3
out=${OUT:-/tmp/swajit-out}
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for build in $builds; do
    echo "==== $label round $round build $build: swajit $*"
    LD_LIBRARY_PATH=$PWD/.carry/$build/lib .carry/$build/swajit "$@" 2>&1
  done
done | tee -a "$out/ab_$label.log"
