#!/usr/bin/env bash
# Session 8 run B2 (issue 15; removed after the run): under 110 s on the H200.
#   0. correctness: softmax chains (with dynamic items and the TMA store), the TMA store;
#   1. the grid's default against dynamic items (_dy), the TMA store (_ts) and the softmax's 4 chains (_ch), alone and
#      together, the producer at 40 registers (the TMA store's consumers spill at 224), the floor beside each time
#      (BASE = session 7's binary ran in run B: the default's config).
# Usage: gpu_prefill_b2.sh CARRY_DIR LOG_DIR
set -uo pipefail
db_name=prefill_b.db run_timeout=60
here=$(cd "$(dirname "$0")" && pwd)
source "$here/gpu_run_common.sh"
export LD_LIBRARY_PATH=$carry/lib:$carry/../lib:$carry/../mainJ/lib
export SWAJIT_SHIPPED=0
SWAJIT_DB=$(mktemp -d)/prefill_b.db
export SWAJIT_DB
mm=${MATMUL_TFLOPS:-790}
budget_s=${GPU_PREFILL_BUDGET_S:-105}
step() {
  if ((SECONDS + run_timeout > budget_s + 10)); then
    echo "==== SKIPPED (past ${budget_s} s): $*"
    return
  fi
  run "$@"
}
d128=bm128_bn128_st2_mt1_wg
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }
{
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
  # the new combinations (dynamic items, TMA store and softmax chains together, paged), and the TMA store's cases
  # that run B's cap cut (ping-pong, strided)
  run_timeout=14 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "softmax chains"
  run_timeout=16 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "TMA store"
  run_timeout=25 bench --seq 4096 --num-kv-heads 32,8 --configs "default,${d128}_ws2_tma_pt_dy,${d128}_ws2_tma_pt_dy_ts,\
${d128}_ws2_tma_pt_dy_ch,${d128}_ws2_tma_pt_dy_ts_ch,${d128}_ws2_tma_pt_dy_ts_ch_pr40"
  run_timeout=18 bench --seq 32768 --num-kv-heads 8 --configs "default,${d128}_ws2_tma_pt_ch,${d128}_ws2_tma_pt_ts_ch,\
${d128}_ws2_tma_pt_ts_ch_pr40"
  run_timeout=18 bench --seq 8192 --num-kv-heads 32,8 --configs "default,${d128}_ws2_tma_pt_dy_ch,${d128}_ws2_tma_pt_dy_ts_ch,\
${d128}_ws2_tma_pt_sn_ch"
  run_timeout=18 bench --seq 16384 --num-kv-heads 32 --configs "default,${d128}_ws2_tma_pt_ch,${d128}_ws2_tma_pt_ts_ch"
  # paged 16 shuffled at seq 8192 (kv 8): the default (snake order, the producer at 40 registers) against dynamic items
  # and softmax chains on it
  run_timeout=12 bench --seq 8192 --num-kv-heads 8 --page-size 16 --shuffle-pages --configs \
    "default,${d128}_ws2_tma_pt_dy_ch_pr40,${d128}_ws2_tma_pt_dy_ts_ch_pr40"
  echo "==== gpu_prefill_b2.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill_b2.log"
exit "${PIPESTATUS[0]}"
