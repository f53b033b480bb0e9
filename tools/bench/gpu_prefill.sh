#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 2 minutes on the H200; a step that would start after $GPU_PREFILL_BUDGET_S,
# default 105 s, or whose cap could run past it by more than 15 s, is skipped and says so): correctness first, then
# the bench, heuristic configs ("default", no shipped data), each row's configs alternated on one workload, the
# floor (useful FLOPs at the bf16 matmul rate) beside each time:
#   0. correctness: the check matrix's cases of session 8's knobs (dynamic items, the TMA store, softmax chains), its
#      snake-order cases (head_dim 64's default), and the GPU suite's prefill cases but the matrix and the tuner
#      (device-side errors, bad pages on TMA tiles, 8-bit and varlen paged workloads, streams); the whole matrix
#      (about 2 minutes for prefill) is `swajit check --device cuda`;
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K-32K): the default, with
#      session 7's default config beside where it differs, and session 7's binary (BASE: ../mainJ/swajit beside the
#      carry, when there) on the same rows; at seq 4096 the default less one of session 8's knobs at a time;
#   2. paged (pages of 16 tokens shuffled: a TMA box a page) at seq 32768 against step 1's contiguous row (bar: within
#      5%), in the middle of step 1's rows;
#   3. first use (generate + NVRTC + module load) of the head_dim 128 defaults (contiguous up to seq 8192 and
#      beyond, paged 16 up to 8192);
#   4. as time allows: the rows tools/bench/prefill_peers.py times for FlashInfer (head_dim 64 and 256, GQA 32/4).
# Usage: tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate of the same run (floor column; prefill_peers.py prints kind=ceiling_mm_bf16);
#   default 790 (686-798 measured on the H200).
# FlashInfer beside it: tools/bench/prefill_peers.py (step 4's rows) and flashinfer_peer.py prefill (the grid).
set -uo pipefail
db_name=prefill_fresh.db run_timeout=60
source "$(dirname "$0")/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # "default" is the heuristic, what an untuned GPU gets
SWAJIT_DB=$(mktemp -d)/prefill_fresh.db  # not under LOG_DIR: the compiled kernels would make the logs too large
export SWAJIT_DB
budget_s=${GPU_PREFILL_BUDGET_S:-105}
step() {  # run(), unless the script is past its time budget
  if ((SECONDS > budget_s || SECONDS + run_timeout > budget_s + 15)); then
    echo "==== SKIPPED (past ${budget_s} s, or its ${run_timeout} s cap would end past $((budget_s + 15)) s): $*"
    status=1
    return
  fi
  run "$@"
}

d128=bm128_bn128_st2_mt1_wg
s7_ramp=${d128}_ws2_tma_pt_sn  # session 7's default at seq <= 8192 (snake order); beyond: ${d128}_ws2_tma_pt
base=$carry/../mainJ/swajit   # session 7's binary (BASE rows), beside this carry in main's .carry
export LD_LIBRARY_PATH=$carry/lib:$carry/../lib:$carry/../mainJ/lib
mm=${MATMUL_TFLOPS:-790}
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness (the "dynamic items" cases include softmax chains with the TMA store, paged)
  run_timeout=25 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "dynamic items"
  run_timeout=16 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "TMA store"
  run_timeout=15 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"

  # 1. the grid: the default (seq <= 8192: dynamic items, the TMA store and softmax chains, _dy_ts_ch; beyond:
  #    round-robin with softmax chains, _ch) against session 7's default config and BASE; at seq 4096 the default
  #    less one knob at a time
  run_timeout=25 bench --seq 4096 --num-kv-heads 32,8 --configs "default,$s7_ramp,${d128}_ws2_tma_pt_dy_ts,\
${d128}_ws2_tma_pt_dy_ch,${d128}_ws2_tma_pt_sn_ts_ch"
  [[ -x $base ]] && SWAJIT_DB=$(mktemp -d)/base.db run_timeout=12 step stdbuf -oL "$base" bench prefill \
    --matmul-tflops "$mm" --reps 10 --seq 4096 --num-kv-heads 32,8
  run_timeout=20 bench --seq 16384,32768 --num-kv-heads 8 --configs "default,${d128}_ws2_tma_pt,${d128}_ws2_tma_pt_ts_ch_pr40"
  # 2. paged 16 shuffled against step 1's contiguous kv 8 rows (bar: within 5%)
  run_timeout=12 bench --seq 32768 --num-kv-heads 8 --page-size 16 --shuffle-pages
  run_timeout=15 bench --seq 8192 --num-kv-heads 32,8 --configs "default,$s7_ramp"
  run_timeout=12 bench --seq 16384 --num-kv-heads 32 --configs "default,${d128}_ws2_tma_pt"
  [[ -x $base ]] && SWAJIT_DB=$(mktemp -d)/base.db run_timeout=15 step stdbuf -oL "$base" bench prefill \
    --matmul-tflops "$mm" --reps 10 --seq 8192,32768 --num-kv-heads 8

  # 3. first use of the head_dim 128 defaults (generate + NVRTC + module load; the database is not used)
  for knobs in "--dynamic-items true --tma-store true --softmax-chains true" "--softmax-chains true"; do
    run_timeout=8 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local --block-m 128 --block-n 128 --stages 2 \
      --wgmma true --warp-specialize 2 --tma true --persistent true $knobs --jit-time
  done
  run_timeout=8 step "$swajit" gen --key prefill_bf16_d128_p16_nhd_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --dynamic-items true --tma-store true \
    --softmax-chains true --producer-registers 40 --jit-time

  # 4. as time allows: the rows of tools/bench/prefill_peers.py
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64
  run_timeout=12 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 256
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 4
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
