#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 2 minutes on the H200; a step that would start after $GPU_PREFILL_BUDGET_S,
# default 105 s, is skipped and says so): correctness first, then the bench, heuristic configs ("default", no shipped
# data), each row's configs alternated on one workload, the floor (useful FLOPs at the bf16 matmul rate) beside each
# time:
#   0. correctness: the check matrix's persistent TMA cases (the head_dim 128 default forced across windows, sinks,
#      GQA, strides, paged 8/16/32/128/256 and varlen with kv 0 and 1; the head_dim 64 tiles; the producer register
#      knob), the head_dim 64 cases, and the GPU suite's prefill cases but the matrix and the tuner (device-side
#      errors, bad pages, 8-bit and varlen paged workloads, streams); the whole matrix (about 2 minutes for prefill)
#      is `swajit check --device cuda` of the final run;
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K-32K): the default, and on
#      two rows session 5's default (ws1_tma, the shipped H200 winners' tile) beside it;
#   2. the rows tools/bench/prefill_peers.py times for FlashInfer: head_dim 64 (session 5's default beside), 256,
#      GQA 32/4, the varlen batch;
#   3. paged (pages of 16 tokens in order: one TMA box a tile; shuffled: a box a page, one producer lane each)
#      against contiguous (step 1's 8-kv-head rows; bar: within 5%);
#   4. first use (generate + NVRTC + module load) of the head_dim 128 and 64 defaults.
# Usage: tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate of the same run (floor column; prefill_peers.py prints kind=ceiling_mm_bf16);
#   default 700 (686-792 measured on the H200).
# FlashInfer beside it: tools/bench/prefill_peers.py (step 2's rows) and flashinfer_peer.py prefill (the grid).
set -uo pipefail
db_name=prefill_fresh.db run_timeout=60
source "$(dirname "$0")/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # "default" is the heuristic, what an untuned GPU gets
SWAJIT_DB=$(mktemp -d)/prefill_fresh.db  # not under LOG_DIR: the compiled kernels would make the logs too large
export SWAJIT_DB
budget_s=${GPU_PREFILL_BUDGET_S:-105}
step() {  # run(), unless the script is past its time budget
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}

old_default=bm128_bn128_st2_mt1_wg_ws1_tma        # session 5's default and the shipped H200 winners' tile
d64_old=bm128_bn64_st2_mt1_wg_oc2                 # the head_dim 64 default of session 5
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness: the head_dim 64 cases (its new default among them), every forced case of the defaults and the
  #    other persistent TMA tiles, and
  #    the GPU suite's prefill cases but the matrix and the tuner (device-side errors, bad pages, 8-bit and varlen
  #    paged workloads, streams: all on the head_dim 128 default). The whole matrix: `swajit check` of the final run.
  run_timeout=20 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "head_dim 64"
  run_timeout=40 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter persistent
  run_timeout=25 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"

  # 1. the grid (its FlashInfer rows: flashinfer_peer.py prefill), session 5's default beside it on two rows
  run_timeout=25 bench --seq 4096,8192,16384,32768 --num-kv-heads 8
  run_timeout=25 bench --seq 4096,8192,16384,32768 --num-kv-heads 32
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 8 --configs "default,$old_default"

  # 2. the rows of tools/bench/prefill_peers.py: head_dim 64 (the old default beside), 256, GQA 32/4, varlen
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 --configs "default,$d64_old"
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 256
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 4
  run_timeout=15 bench --q-lens "$varlen" --prefix-len 4096 --page-size 16 --num-kv-heads 8

  # 3. paged 16, pages in order and shuffled (contiguous: step 1's kv 8 rows; bar: within 5%)
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 8 --page-size 16
  run_timeout=15 bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --shuffle-pages

  # 4. first use of the defaults (generate + NVRTC + module load; the database is not used)
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --jit-time
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d64_contig_g4_local --block-m 192 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 1 --tma true --persistent true --jit-time
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
