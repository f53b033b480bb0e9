#!/usr/bin/env bash
# Issue 16 shape (a) on the lent GPU (under 2 minutes): correctness first (`swajit check --family sparse_decode` on
# CUDA: the whole sparse matrix, every case on the default path and again on the CUDA-core kernel, "[CUDA cores]"),
# then `swajit bench sparse` on shape a (64 q / 8 kv heads, d128; batch 1, 32, 128; topk 512 / 2048; kv 32768 /
# 131072) beside the floor (max(bytes / read bandwidth, FLOPs / matmul rate), both measured in the run) with the
# heuristic's configs, then `swajit tune --family sparse_decode` on the kv-32768 rows (topk 512 and 2048) of batch 1, 32
# and 128 and the bench again: each tuned row (config "(tuned)") beside the heuristic's time (last column). Every time is a
# CUDA graph replay (one call per replica cache, L2 evicted before each replay), as the peers are timed.
# With MODE=profile (or a third argument "profile") it ends with a short ncu profile of the batch-128 topk-2048 kernel.
# The FlashInfer / torch rows of the same shapes: python3 tools/bench/sparse_peers.py a --batch 1,32,128.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_sparse.sh CARRY LOGDIR [profile]
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
mode=${3:-${MODE:-}}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=/tmp/swajit_sparse_$$.db  # fresh, and not under LOGDIR (it comes back to the lead)
export SWAJIT_SHIPPED=0                    # the heuristic until this run's tuner writes winners

# The rows of a bench log, or its last lines when it has none (an error, a timeout).
rows_or_tail() { grep -q "^| a" "$1" && grep -E "^\| (a|shape) " "$1" || tail -5 "$1"; }

echo "==== correctness: swajit check --device cuda --family sparse_decode (the matrix, default path + [CUDA cores])"
start=$SECONDS
timeout 40 $bin/swajit check --device cuda --family sparse_decode > "$out/check.log" 2>&1; rc=$?
echo "swajit check sparse decode: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc) ($((SECONDS - start)) s)"
grep -v "^PASS" "$out/check.log" | tail -8

echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
mm=$(timeout 30 bash "$here/matmul_tflops.sh")
echo "matmul: ${mm:=0} TFLOP/s"

echo "==== bench sparse, shape a, the heuristic (us, floor us, % of floor: >= 80% wanted at batch >= 32)"
timeout 30 $bin/swajit bench sparse --shape a --batch 1,32,128 --reps 10 --matmul-tflops "$mm" > "$out/bench_default.log" 2>&1
head -2 "$out/bench_default.log"
rows_or_tail "$out/bench_default.log"

echo "==== tune --family sparse_decode: shape a, kv 32768, topk 512 and 2048, batch 1, 32, 128; then the bench with the winners"
unset SWAJIT_SHIPPED
for shard in 0/4 1/4; do  # the preset's rows per batch: (512, 32768), (2048, 32768), (512, 131072), (2048, 131072)
  timeout 40 $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 1,32,128 --shard $shard --quick-reps 3 \
    --final-reps 10 2>&1 | tee -a "$out/tune.log" | grep -E "^\| (a|shape) |tuned in|rror"
done
timeout 25 $bin/swajit bench sparse --shape a --batch 1,32,128 --reps 10 --matmul-tflops "$mm" > "$out/bench_tuned.log" 2>&1
rows_or_tail "$out/bench_tuned.log"

if [ "$mode" = profile ]; then
  echo "==== ncu: the batch-128 topk-2048 kv-32768 kernel (heuristic config; logs in ncu.log)"
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  export SWAJIT_SHIPPED=0 SWAJIT_DB=/tmp/swajit_sparse_ncu_$$.db
  # Per bench row at batch 128 (one replica): one call, one before the capture, 3 warm-up and --reps replays: skip
  # the topk-512 row's 8 launches.
  [ -n "$ncu" ] && timeout 25 "$ncu" -k regex:sparse_decode --launch-skip 8 --launch-count 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats $bin/swajit bench sparse --shape a --batch 128 --reps 3 > "$out/ncu.log" 2>&1
  grep -E "Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|Issued Warp|No Eligible|L2 Hit|Mem Busy|Max Bandwidth" "$out/ncu.log" | head -40
fi
