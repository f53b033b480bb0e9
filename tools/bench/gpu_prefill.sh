#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 100 s on the H200; a step that would start after $GPU_PREFILL_BUDGET_S, default
# 95 s, is skipped and says so): correctness first, then the bench, heuristic configs ("default", no shipped data),
# each row's configs alternated on one workload, the floor (useful FLOPs at the bf16 matmul rate) beside each time:
#   0. the whole prefill check matrix (the head_dim 128 default, bm128_bn128_st2_mt1_wg_ws2_tma_pt, is every
#      d128 case's config where TMA applies, and forced on the "... (the d128 default), ..." cases elsewhere);
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096): the default against the old one
#      (ws1_tma, the shipped H200 winners' tile) and ping-pong (ws3_tma_pt);
#   2. head_dim 64 on the TMA tiles (FA3's 128 and 192 rows x 128 tokens) against its default (wgmma oc2);
#   3. paged (pages of 16 tokens, in order: one TMA box a tile; shuffled: a box a page, one lane each) against
#      contiguous (step 1's 8-kv-head rows; bar: within 5%), and 64-token tiles 4 stages deep;
#   4. first use (generate + NVRTC + module load) of the default;
#   5. the other rows tools/bench/prefill_peers.py times for FlashInfer (head_dim 256, GQA 32/4, varlen, 8-bit) and
#      the GPU suite's prefill cases but the matrix and the tuner.
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
budget_s=${GPU_PREFILL_BUDGET_S:-95}
step() {  # run(), unless the script is past its time budget
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}

old_default=bm128_bn128_st2_mt1_wg_ws1_tma        # session 5's default and the shipped H200 winners' tile
ping_pong=bm128_bn128_st2_mt1_wg_ws3_tma_pt
small_tiles=bm128_bn64_st4_mt1_wg_ws2_tma_pt      # paged: twice the tiles in flight, half the boxes each
d64_tiles=bm128_bn128_st2_mt1_wg_ws2_tma_pt,bm128_bn128_st4_mt1_wg_ws2_tma_pt,bm192_bn128_st2_mt1_wg_ws2_tma_pt,bm192_bn128_st2_mt1_wg_ws1_tma_pt,bm128_bn128_st3_mt1_wg_ws3_tma_pt
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness: the whole prefill matrix
  run_timeout=50 step stdbuf -oL "$swajit" check --device cuda --family prefill

  # 1. the grid: the default against the old default and ping-pong
  run_timeout=25 bench --seq 8192,16384 --num-kv-heads 8 --configs "default,$old_default,$ping_pong"
  run_timeout=25 bench --seq 4096,32768 --num-kv-heads 32 --configs "default,$old_default"

  # 2. head_dim 64: its default (wgmma oc2) against the TMA tiles
  run_timeout=25 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 --configs "default,$d64_tiles"

  # 3. paged 16 in order and shuffled (contiguous: step 1's rows)
  run_timeout=20 bench --seq 8192 --num-kv-heads 8 --page-size 16 --configs "default,$small_tiles"
  run_timeout=20 bench --seq 8192 --num-kv-heads 8 --page-size 16 --shuffle-pages --configs "default,$old_default,$small_tiles"

  # 4. first use of the default (generate + NVRTC + module load; the database is not used)
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --jit-time

  # 5. the FlashInfer peer rows and the GPU suite's prefill cases (device-side errors, bad pages, 8-bit and varlen
  #    paged workloads, streams)
  run_timeout=20 bench --seq 8192 --num-kv-heads 4 --configs "default,$old_default"
  run_timeout=20 bench --q-lens "$varlen" --prefix-len 4096 --page-size 16 --num-kv-heads 8 --configs "default,$old_default"
  run_timeout=30 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
