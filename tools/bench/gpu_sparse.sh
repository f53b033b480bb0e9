#!/usr/bin/env bash
# Issue 16 shape (a) on the lent GPU (under 2 minutes). Usage, from the root of a checkout (binaries built by
# tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_sparse.sh CARRY LOGDIR [final|diag|diag2]
# final (the default): correctness first (`swajit check --family sparse_decode` on CUDA: the whole matrix, each case on
#   the default path and again on the CUDA-core kernel, "[CUDA cores]"), then `swajit bench sparse` on shape a (64 q /
#   8 kv heads, d128; batch 1, 32, 128; topk 512 / 2048; kv 32768 / 131072) with the heuristic's configs beside the
#   floor (selected bytes / read bandwidth measured in the run: shape a's FLOPs take a twentieth of that), the same rows on session 7's
#   binary (BASE: CARRY/../mainJ/swajit, when there), then `swajit tune --family sparse_decode` on preset a at batch 32
#   and 128 and the bench with its winners (each tuned config beside the heuristic's time, the last column).
# diag2: V moved against K (--v-gap), staggered V and narrow warps beside the heuristic, direct launches (--eager),
#   BASE and FlashInfer (sparse_peers.py) on the topk-2048 rows.
# diag (the mid-session runs): the checks of the new cases only, the default bench, then what the time is made of:
#   kv 32768 against kv 131072 on the same selection pattern (random pages, consecutive pages, pages of one token,
#   indices spread over the first 32768 positions only), the selection size at batch 32 (fixed cost + cost per tile),
#   no rows read (--empty-selection), the tuner (which also compiles every config in parallel into the database), the
#   pipelines (tile x stages) beside the heuristic in the same process, and ncu on one batch-128 topk-2048 call at each
#   kv length.
# Every time is a CUDA graph replay (one call per replica cache, L2 evicted before each replay), as the peers are timed;
# FlashInfer / torch on the same rows: python3 tools/bench/sparse_peers.py a --batch 1,32,128.
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
mode=${3:-${MODE:-final}}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# libsqlite3 beside the binaries, else the carry root's or BASE's
export LD_LIBRARY_PATH=$PWD/$bin/lib:$PWD/$bin/../lib:$PWD/$bin/../mainJ/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=/tmp/swajit_sparse_$$.db  # fresh, and not under LOGDIR (it comes back to the lead)
export SWAJIT_SHIPPED=0                    # the heuristic until this run's tuner writes winners
base=$bin/../mainJ

# The rows of a bench log, or its last lines when it has none (an error, a timeout).
rows_or_tail() { grep -q "^| a" "$1" && grep -E "^\| (a|shape) " "$1" || tail -5 "$1"; }
bench() {  # bench LOG ARGS...: shape a, 10 reps, the rows printed
  local log=$1
  shift
  timeout 30 $bin/swajit bench sparse --shape a --reps 10 --matmul-tflops "$mm" "$@" > "$out/$log" 2>&1
  rows_or_tail "$out/$log"
}

if [ "$mode" = diag2 ]; then
  # Run B found the kv-131072 rows' slowness is not the kv length: it follows the process (kv 32768 took 311 us
  # in a fresh process, kv 131072 with indices over 32768 positions 275), and ncu timed both kernels at 275-279 us.
  # Here: the V cache moved against K (--v-gap), each time beside V rows copied half a tile from K rows (_sv), narrow
  # warps, and both; direct launches timed instead of graph replays; then the default bench, BASE and FlashInfer on the
  # same rows.
  echo "==== correctness: swajit check --family sparse_decode --filter 'staggered V'"
  timeout 30 $bin/swajit check --device cuda --family sparse_decode --filter "staggered V" > "$out/check_staggered.log" 2>&1
  echo "check rc=$?"
  grep -E "^FAIL" "$out/check_staggered.log" | head -12
  grep -v "^PASS" "$out/check_staggered.log" | tail -3
  mm=0
  configs=bn64_st3_mma_ts_sv,bn32_st3_mma_ts_nw,bn32_st3_mma_ts_nw_sv,bn64_st3_mma_ts
  for gap in 0 256 4096 2097152 0; do
    echo "==== batch 128 topk 2048, V $gap bytes into its allocation: the heuristic, then $configs"
    bench bench_gap$gap.log --batch 128 --topk 2048 --v-gap $gap --configs $configs
  done
  echo "==== batch 128 topk 2048, direct launches timed instead of graph replays (--eager): the heuristic, then $configs"
  bench bench_eager.log --batch 128 --topk 2048 --eager --configs $configs
  echo "==== batch 32, topk 512 and 2048, kv 131072: the same configs"
  bench bench_b32.log --batch 32 --kv-len 131072 --configs $configs
  echo "==== bench sparse, shape a, the heuristic"
  bench bench_default.log --batch 1,32,128
  if [ -x "$base/swajit" ]; then
    echo "==== BASE (session 7's binary, $base): the same rows"
    LD_LIBRARY_PATH=$PWD/$base/lib timeout 25 "$base/swajit" bench sparse --shape a --batch 1,32,128 --reps 10 \
      --matmul-tflops "$mm" > "$out/bench_base.log" 2>&1
    rows_or_tail "$out/bench_base.log"
  fi
  if [ $SECONDS -lt 80 ]; then
    echo "==== FlashInfer (page size 1, the selection as the page table), topk 2048, batch 32 and 128"
    timeout $((105 - SECONDS)) python3 "$here/sparse_peers.py" a --batch 32,128 --topk 2048 --peers fi_cc,fi_tc \
      --budget-s $((95 - SECONDS)) > "$out/peers.log" 2>&1
    grep -E "^shape=a" "$out/peers.log" || tail -3 "$out/peers.log"
  fi
  echo "(diag2 done in $SECONDS s)"
  exit 0
fi

if [ "$mode" = diag ]; then
  for filter in "deep pipeline" "narrow warps"; do
    echo "==== correctness: swajit check --family sparse_decode --filter '$filter' (the new cases, default + [CUDA cores])"
    timeout 30 $bin/swajit check --device cuda --family sparse_decode --filter "$filter" > "$out/check_${filter// /_}.log" 2>&1
    echo "check rc=$?"
    grep -E "^FAIL" "$out/check_${filter// /_}.log" | head -12
    grep -v "^PASS" "$out/check_${filter// /_}.log" | tail -3
  done
  mm=0  # shape a's floors are its bytes (its FLOPs take a twentieth of that time)
else
  echo "==== correctness: swajit check --device cuda --family sparse_decode (the matrix, default path + [CUDA cores])"
  start=$SECONDS
  timeout 45 $bin/swajit check --device cuda --family sparse_decode > "$out/check.log" 2>&1; rc=$?
  echo "swajit check sparse decode: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc) ($((SECONDS - start)) s)"
  grep -E "^FAIL" "$out/check.log" | head -12
  grep -v "^PASS" "$out/check.log" | tail -4
  mm=0  # shape a's floors are its bytes (its FLOPs take a twentieth of that time at the H200's bf16 rate)
fi

echo "==== bench sparse, shape a, the heuristic (us, floor us, % of floor: >= 80% wanted at batch >= 32)"
bench bench_default.log --batch 1,32,128
if [ "$mode" != diag ] && [ -x "$base/swajit" ]; then
  echo "==== BASE (session 7's binary, $base): the same rows"
  LD_LIBRARY_PATH=$PWD/$base/lib timeout 25 "$base/swajit" bench sparse --shape a --batch 1,32,128 --reps 10 \
    --matmul-tflops "$mm" > "$out/bench_base.log" 2>&1
  rows_or_tail "$out/bench_base.log"
fi

if [ "$mode" = diag ]; then
  echo "==== tune --family sparse_decode: shape a, batch 32 and 128, kv 32768: compiles every config into the database"
  unset SWAJIT_SHIPPED
  for shard in 0/4 1/4; do
    timeout 25 $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 32,128 --shard $shard --quick-reps 3 \
      --final-reps 10 2>&1 | tee -a "$out/tune.log" | grep -E "^\| (a|shape) |tuned in|rror"
  done
  export SWAJIT_SHIPPED=0
  configs=${KNOB_CONFIGS:-bn64_st3_mma_ts,bn32_st3_mma_ts,bn32_st6_mma_ts,bn64_st3_mma_ts_nw,bn64_st2_mma_ts_nw,bn32_st3_mma_ts_nw,bn32_st4_mma_ts_nw,bn32_st6_mma_ts_nw}
  echo "==== pipelines beside the heuristic (its time last), batch 32 and 128: $configs"
  bench bench_pipelines.log --batch 32,128 --configs "$configs"
  export SWAJIT_DB=/tmp/swajit_sparse_diag_$$.db  # no tuned winners: the heuristic's configs from here on
  echo "==== kv 32768 vs 131072, topk 2048, the heuristic's config: random pages (again), consecutive pages,"
  echo "     pages of one token (FlashInfer's layout), kv 131072 with indices over its first 32768 positions"
  bench diag_random.log --batch 32,128 --topk 2048
  bench diag_contiguous.log --batch 128 --topk 2048 --contiguous-pages
  bench diag_page1.log --batch 128 --topk 2048 --page-size 1
  bench diag_span.log --batch 128 --topk 2048 --kv-len 131072 --index-span 32768
  if ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1); then
    for kv in 32768 131072; do
      [ $SECONDS -lt 85 ] || break
      echo "==== ncu: batch 128 topk 2048 kv $kv, the heuristic's kernel (ncu_kv$kv.log)"
      timeout 20 "$ncu" --clock-control none -k regex:sparse_decode --launch-skip 1 --launch-count 1 --section SpeedOfLight \
        --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
        --metrics dram__bytes_read.sum,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_sectors_srcunit_tex_op_read_lookup_hit.sum,lts__t_sector_op_read_hit_rate.pct \
        "$bin/swajit" bench sparse --shape a --batch 128 --topk 2048 --kv-len $kv --reps 3 > "$out/ncu_kv$kv.log" 2>&1
      grep -E "Duration|DRAM Throughput|L2 Cache Throughput|L2 Hit|Warp Cycles Per Issued|No Eligible|dram__bytes|lts__t_sector" "$out/ncu_kv$kv.log" | head -12
      grep -E "Stall|stall" "$out/ncu_kv$kv.log" | head -6
    done
  fi
  if [ $SECONDS -lt 95 ]; then
    echo "==== the selection size at batch 32 and 128, kv 32768 (fixed cost + cost per tile), then no rows read"
    bench diag_topk.log --batch 32,128 --kv-len 32768 --topk 64,512,2048
    bench diag_empty.log --batch 32,128 --kv-len 32768 --topk 512,2048 --empty-selection
  fi
  echo "(diag done in $SECONDS s)"
  exit 0
fi

echo "==== tune --family sparse_decode: shape a, batch 32 and 128 (kv 32768 and 131072 share a bucket); then the bench with the winners"
unset SWAJIT_SHIPPED
for shard in 0/4 1/4; do  # the preset's rows per batch: (512, 32768), (2048, 32768), (512, 131072), (2048, 131072)
  [ $SECONDS -lt 95 ] || break
  timeout 25 $bin/swajit tune --family sparse_decode --sparse-preset a --sparse-batch 32,128 --shard $shard --quick-reps 3 \
    --final-reps 10 2>&1 | tee -a "$out/tune.log" | grep -E "^\| (a|shape) |tuned in|rror"
done
[ $SECONDS -lt 110 ] && bench bench_tuned.log --batch 32,128
echo "(done in $SECONDS s)"
