#!/usr/bin/env bash
# Issue 15 on the GPU machine, mid-session run B2 (under 90 s on the H200; a step that would start after
# $GPU_PREFILL_BUDGET_S, default 75 s, is skipped and says so): correctness first, then the bench, heuristic configs
# ("default", no shipped data), each row's configs alternated on one workload, the floor (useful FLOPs at the bf16
# matmul rate) beside each time:
#   0. the check cases run B could not reach: page 1 (its row-gather kernels failed to compile in run B) and every
#      persistent TMA case (the head_dim 128 default forced across the matrix, the head_dim 64 tiles);
#   1. head_dim 64: the new default (FA3's 192 x 128 tile, ws1, persistent) against the old one, the producer
#      register knob (_pr<N>) and 3 stages;
#   2. the GPU suite's prefill cases but the matrix and the tuner;
#   3. head_dim 128: the producer register knob against the default, contiguous and paged shuffled.
# Usage: tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate of the same run (floor column; prefill_peers.py prints kind=ceiling_mm_bf16);
#   default 700 (686-792 measured on the H200).
# FlashInfer beside it: tools/bench/prefill_peers.py (head_dim 64/256, GQA, varlen) and flashinfer_peer.py prefill.
set -uo pipefail
db_name=prefill_fresh.db run_timeout=60
source "$(dirname "$0")/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # "default" is the heuristic, what an untuned GPU gets
SWAJIT_DB=$(mktemp -d)/prefill_fresh.db  # not under LOG_DIR: the compiled kernels would make the logs too large
export SWAJIT_DB
budget_s=${GPU_PREFILL_BUDGET_S:-75}
step() {  # run(), unless the script is past its time budget
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}

old_default=bm128_bn128_st2_mt1_wg_ws1_tma        # session 5's default and the shipped H200 winners' tile
d128=bm128_bn128_st2_mt1_wg_ws2_tma_pt            # the head_dim 128 default
d64=bm192_bn128_st2_mt1_wg_ws1_tma_pt             # the head_dim 64 default (run B)
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness: page 1 (row gathers), every forced case of the defaults and the other persistent TMA tiles
  run_timeout=10 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "page 1"
  run_timeout=10 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "paged 1,"
  run_timeout=35 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter persistent

  # 1. head_dim 64: the new default against the old one (wgmma oc2) and the producer register knob (_pr24: the
  #    consumers get 160 registers, FA3's split for 3 consumer warpgroups), with ws2 which spilled at 152
  run_timeout=20 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 \
    --configs "default,bm128_bn64_st2_mt1_wg_oc2,${d64}_pr24,bm192_bn128_st2_mt1_wg_ws2_tma_pt_pr24,bm192_bn128_st3_mt1_wg_ws1_tma_pt"

  # 2. the GPU suite's prefill cases but the matrix and the tuner (device-side errors, bad pages, 8-bit and varlen
  #    paged workloads, streams: all on the head_dim 128 default)
  run_timeout=25 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"
  # 3. head_dim 128: the producer register knob (_pr24: FA3's 24 / 240; _pr40: the paged consumers' spills 49 -> 17
  #    instructions), contiguous and paged shuffled
  run_timeout=15 bench --seq 16384 --num-kv-heads 8 --configs "default,${d128}_pr24,${d128}_pr40"
  run_timeout=15 bench --seq 8192 --num-kv-heads 8 --page-size 16 --shuffle-pages --configs "default,${d128}_pr24,${d128}_pr40"

  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
