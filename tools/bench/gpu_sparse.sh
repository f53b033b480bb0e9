#!/usr/bin/env bash
# Issue 16 shape (a) on the lent GPU (under 2 minutes): correctness first (`swajit check --family sparse_decode` on
# CUDA: the whole sparse matrix, every case on the default path and again on the CUDA-core kernel, "[CUDA cores]"),
# then `swajit bench sparse` on shape a (64 q / 8 kv heads, d128; batch 1, 32, 128; topk 512 / 2048; kv 32768 /
# 131072) beside the floor (max(bytes / read bandwidth, FLOPs / matmul rate), both measured in the run) with the
# heuristic's configs, the same rows on session 6's binary (BASE: CARRY/../mainI/swajit, when there), then `swajit tune
# --family sparse_decode` on the kv-32768 rows (topk 512 and 2048) of batch 1, 32 and 128 and the bench again: each
# tuned row (config "(tuned)") beside the heuristic's time (last column). Every time is a CUDA graph replay (one call
# per replica cache, L2 evicted before each replay), as the peers are timed.
# With MODE=profile (or a third argument "profile") it ends with a short ncu profile of the batch-128 topk-2048 kernel.
# With MODE=knobs (the mid-session runs) it skips the tuner and instead times each of KNOB_CONFIGS on batch 32 and 128
# right after the heuristic's
# config in the same process (`bench sparse --configs`), then (KNOB_NCU=1) profiles the batch-32 topk-512 and
# batch-128 kv-131072 topk-2048 kernels with ncu (stall reasons), and in what time is left tunes batch 128.
# The FlashInfer / torch rows of the same shapes: python3 tools/bench/sparse_peers.py a --batch 1,32,128.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_sparse.sh CARRY LOGDIR [profile|knobs]
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
timeout 50 $bin/swajit check --device cuda --family sparse_decode > "$out/check.log" 2>&1; rc=$?
echo "swajit check sparse decode: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc) ($((SECONDS - start)) s)"
grep -E "^FAIL" "$out/check.log" | head -12
grep -v "^PASS" "$out/check.log" | tail -4

if [ "$mode" = knobs ]; then
  mm=0  # shape a's floors are its bytes (its FLOPs take a twentieth of that time): no torch start-up in a short run
else
  echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
  mm=$(timeout 30 bash "$here/matmul_tflops.sh")
  echo "matmul: ${mm:=0} TFLOP/s"
fi

echo "==== bench sparse, shape a, the heuristic (us, floor us, % of floor: >= 80% wanted at batch >= 32)"
timeout 30 $bin/swajit bench sparse --shape a --batch 1,32,128 --reps 10 --matmul-tflops "$mm" > "$out/bench_default.log" 2>&1
head -2 "$out/bench_default.log"
rows_or_tail "$out/bench_default.log"

base=$bin/../mainI
if [ -x "$base/swajit" ]; then
  echo "==== BASE (session 6's binary, $base): the same rows"
  LD_LIBRARY_PATH=$PWD/$base/lib timeout 25 "$base/swajit" bench sparse --shape a --batch 1,32,128 --reps 10 \
    --matmul-tflops "$mm" > "$out/bench_base.log" 2>&1
  rows_or_tail "$out/bench_base.log"
fi

if [ "$mode" = knobs ]; then
  # the gather's knobs and tiles, each right after the heuristic's config on the same workload (last column)
  configs=${KNOB_CONFIGS:-bn64_st2_mma_ts_la,bn64_st2_mma_ts_tp,bn32_st3_mma_ts,bn64_st3_mma_ts,bn64_st2_mma_ts_pe,bn64_st2_mma_ts_la_pe,bn32_st3_mma_ts_pe}
  echo "==== knobs beside the heuristic, batch 32 and 128: $configs"
  timeout 45 $bin/swajit bench sparse --shape a --batch 32,128 --reps 10 --matmul-tflops "$mm" --configs "$configs" \
    > "$out/bench_knobs.log" 2>&1
  rows_or_tail "$out/bench_knobs.log"
  if [ -n "${KNOB_NCU:-}" ] && ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1); then
    export SWAJIT_SHIPPED=0
    for row in "32 512 32768" "128 2048 131072"; do
      set -- $row
      echo "==== ncu: batch $1 topk $2 kv $3, the heuristic's kernel (ncu_b$1_k$2.log)"
      timeout 15 "$ncu" -k regex:sparse_decode --launch-skip 1 --launch-count 1 --section SpeedOfLight \
        --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section SchedulerStats \
        --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
        "$bin/swajit" bench sparse --shape a --batch "$1" --topk "$2" --kv-len "$3" --reps 3 > "$out/ncu_b$1_k$2.log" 2>&1
      grep -E "Duration|DRAM Throughput|L2 Cache Throughput|L2 Hit|Achieved Occupancy|Warp Cycles Per Issued|No Eligible" "$out/ncu_b$1_k$2.log" | head -8
      grep -E "issue_stalled" "$out/ncu_b$1_k$2.log" | sort -k3 -g -r | head -6
    done
  fi
  # what time is left: the tuner's winners at batch 128 (kv 32768, topk 512 and 2048) beside the heuristic
  if [ $SECONDS -lt 80 ]; then
    echo "==== tune --family sparse_decode: shape a, batch 128, kv 32768, topk 512 and 2048"
    for shard in 0/4 1/4; do
      left=$((100 - SECONDS))
      [ $left -gt 5 ] || break
      timeout $left $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 128 --shard $shard \
        --quick-reps 3 --final-reps 10 2>&1 | tee -a "$out/tune.log" | grep -E "^\| (a|shape) |tuned in|rror"
    done
  fi
  exit 0
fi

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
