#!/usr/bin/env bash
# Run B3 only (session 7, issue 15; removed after the run, the final run uses gpu_prefill.sh): paged 16 against
# contiguous with the consumers' register budget raised (_pr40), 32 kv heads in sections of 8 q heads alternated
# with the default process by process, head_dim 64 with snake order. Under 110 s; steps past 100 s are skipped.
# Usage: tools/bench/gpu_prefill_b3.sh CARRY_DIR LOG_DIR
set -uo pipefail
db_name=prefill_fresh.db run_timeout=12
source "$(dirname "$0")/gpu_run_common.sh"
export SWAJIT_SHIPPED=0
SWAJIT_DB=$(mktemp -d)/prefill_fresh.db
export SWAJIT_DB
budget_s=${GPU_PREFILL_BUDGET_S:-100}
step() {
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }
d128=bm128_bn128_st2_mt1_wg_ws2_tma_pt
d64=bm192_bn128_st2_mt1_wg_ws1_tma_pt
{
  # 1. paged 16 (in order: one box a tile; shuffled: a box a page) against contiguous, kv 8 (bar: within 5%)
  bench --seq 8192,32768 --num-kv-heads 8
  bench --seq 8192 --num-kv-heads 8 --page-size 16 --configs "default,${d128}_sn_pr40"
  bench --seq 32768 --num-kv-heads 8 --page-size 16 --configs "default,${d128}_pr40"
  bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --shuffle-pages
  # 2. head sections (items 8 q heads at a time: their K/V windows fit L2) alternated process by process, kv 32
  for round in 1 2; do
    echo "==== round $round at $SECONDS s: default, then SWAJIT_PREFILL_HEAD_SECTION=8"
    run_timeout=14 bench --seq 16384,32768 --num-kv-heads 32
    SWAJIT_PREFILL_HEAD_SECTION=8 run_timeout=14 bench --seq 16384,32768 --num-kv-heads 32
  done
  # 3. head_dim 64 with snake order (the head_dim 128 rule's rows)
  bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 --configs "default,${d64}_sn"
  echo "==== gpu_prefill_b3.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
