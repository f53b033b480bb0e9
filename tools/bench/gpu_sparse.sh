#!/usr/bin/env bash
# Issue 16 on the lent GPU (under 2 minutes): correctness first (the whole sparse check matrix on CUDA: every case on
# the default path, the tensor-core kernels for 16-bit caches, and again on the CUDA-core kernel, the cases named
# "[CUDA cores]"), then `swajit bench sparse` on shapes (a) and (b) beside the floor (max(bytes / read bandwidth,
# FLOPs / matmul rate), both measured in the run), the column-split kernel beside the default on shape a, one shape
# tuned (`swajit tune --family sparse_decode`) beside the heuristic, and last the peers (sparse_peers.py: FlashInfer
# page-size-1 decode fi_cc / fi_tc and torch gather + SDPA on a; torch and FlashInfer MLA on b) on the same rows.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_sparse.sh CARRY LOGDIR [--no-peers]
# PEER_SHAPES (a, b or all; default b), PEER_BATCHES (default 128), PEER_BUDGET_S (default 25) size the peers; the full table of the bench
# rows: python3 tools/bench/sparse_peers.py all --batch 1,32,128 --budget-s 300 (about 5 minutes).
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
peers=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=/tmp/swajit_sparse_$$.db  # not under LOGDIR: it comes back to the lead
batches=1,32,128

echo "==== correctness: test_decode_gpu, the whole sparse matrix (default path + [CUDA cores] copies), kernels compiled in parallel"
start=$SECONDS
timeout 150 $bin/test_decode_gpu -tc="sparse decode correctness*" > "$out/sparse_matrix.log" 2>&1; rc=$?
echo "test_decode_gpu sparse matrix: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc) ($((SECONDS - start)) s)"
grep -B2 -A8 "ERROR" "$out/sparse_matrix.log" | head -80; grep -E "test cases|assertions" "$out/sparse_matrix.log"

echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
mm=$(bash "$here/matmul_tflops.sh")
echo "matmul: ${mm} TFLOP/s"

echo "==== swajit bench sparse, the default (heuristic) configs: a (kv 32768 / 131072, topk 512 / 2048) and b (MLA, without / with window 128 + sinks)"
timeout 120 $bin/swajit bench sparse --shape a,b --batch $batches --reps 20 --matmul-tflops "${mm:-0}" 2>&1 | tee "$out/bench_default.log"

echo "==== the column-split tensor-core kernel on shape a (token_split off), batch 128"
timeout 60 $bin/swajit bench sparse --shape a --batch 128 --reps 10 --matmul-tflops "${mm:-0}" --token-split false --splits 0 2>&1 \
  | grep "^| a" | tee "$out/bench_column_split.log"

echo "==== tune --family sparse_decode, one shape (a, topk 2048, kv 131072, batch 128: item 3 of 4), winner vs heuristic"
timeout 90 $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 128 --shard 3/4 --quick-reps 5 --final-reps 20 2>&1 \
  | tee "$out/tune.log" | grep -E "^\||tuned in|error"

[ "$peers" = "--no-peers" ] && exit 0
# FlashInfer's page-size-1 decode and MLA wrapper when its wheels are carried in .whl/ (../shared/peers/README.md);
# torch gather + SDPA always.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
else
  echo "==== no .whl/: the FlashInfer rows are skipped"
fi
echo "==== peers (sparse_peers.py), the same rows"
timeout $((${PEER_BUDGET_S:-25} + 30)) python3 -W ignore::DeprecationWarning "$here/sparse_peers.py" ${PEER_SHAPES:-b} --batch ${PEER_BATCHES:-128} --budget-s ${PEER_BUDGET_S:-25} 2>&1 | tee "$out/sparse_peers.log" | grep -v "^kind="
