#!/usr/bin/env bash
# Issue 16 shape (a) on the lent GPU (under 2 minutes): correctness first (the whole sparse check matrix on CUDA: every
# case on the default path, the tensor-core kernels for 16-bit caches, and again on the CUDA-core kernel, the cases
# named "[CUDA cores]"), then `swajit bench sparse` on shape a (64 q / 8 kv heads, d128; batch 1, 32, 128; topk 512 /
# 2048; kv 32768 / 131072) beside the floor (max(bytes / read bandwidth, FLOPs / matmul rate), both measured in the
# run), the gather tiles beside the heuristic's at batch 32 and 128, then `swajit tune --family sparse_decode` on the
# topk-2048 kv-32768 row of batch 128 and the bench again: each tuned row (config "(tuned)") beside the heuristic's
# time (last column). The FlashInfer / torch rows of the same shapes: tools/bench/sparse_peers.py a --batch 1,32,128.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_sparse.sh CARRY LOGDIR
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=/tmp/swajit_sparse_$$.db  # fresh, and not under LOGDIR (it comes back to the lead)
export SWAJIT_SHIPPED=0                    # the heuristic until this run's tuner writes winners
batches=1,32,128

echo "==== correctness: test_decode_gpu, the whole sparse matrix (default path + [CUDA cores] copies)"
start=$SECONDS
timeout 60 $bin/test_decode_gpu -tc="sparse decode correctness*" > "$out/sparse_matrix.log" 2>&1; rc=$?
echo "test_decode_gpu sparse matrix: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc) ($((SECONDS - start)) s)"
grep -B2 -A8 "ERROR" "$out/sparse_matrix.log" | head -60; grep -E "test cases|assertions" "$out/sparse_matrix.log"

echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
mm=$(timeout 30 bash "$here/matmul_tflops.sh")
echo "matmul: ${mm:=0} TFLOP/s"

echo "==== bench sparse, shape a, the heuristic (us, floor us, % of floor: >= 80% wanted at batch >= 32)"
timeout 60 $bin/swajit bench sparse --shape a --batch $batches --reps 20 --matmul-tflops "$mm" 2>&1 | tee "$out/bench_default.log"

echo "==== gather tiles and the L2 prefetch beside the heuristic's (batch 32, 128; splits from the heuristic's model)"
for tile in "32 2 false" "64 3 false" "64 2 true" "32 2 true"; do
  set -- $tile
  timeout 25 $bin/swajit bench sparse --shape a --batch 32,128 --reps 10 --matmul-tflops "$mm" --block-n $1 --stages $2 \
    --l2-prefetch $3 --splits 0 2>&1 | grep -E "^\| a|rror" | tee -a "$out/bench_tiles.log"
done

echo "==== splits at batch 32 (the heuristic's tile): 1, 2, 3, 4"
for splits in 1 2 3 4; do
  timeout 15 $bin/swajit bench sparse --shape a --batch 32 --reps 10 --matmul-tflops "$mm" --splits $splits 2>&1 \
    | grep -E "^\| a \| 32 \| 32768|rror" | tee -a "$out/bench_splits.log"
done

echo "==== tune --family sparse_decode: shape a, topk 2048, kv 32768, batch 128, then the bench with the winner"
unset SWAJIT_SHIPPED
timeout 60 $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 128 --shard 1/4 --quick-reps 5 --final-reps 20 2>&1 \
  | tee "$out/tune.log" | grep -E "^\||tuned in|rror"
timeout 30 $bin/swajit bench sparse --shape a --batch 128 --reps 20 --matmul-tflops "$mm" 2>&1 | tee "$out/bench_tuned.log"
