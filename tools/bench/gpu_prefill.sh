#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 2 minutes on the H200; a step that would start after $GPU_PREFILL_BUDGET_S,
# default 105 s, or whose cap could run past it by more than 15 s, is skipped and says so): correctness first, then
# the bench, heuristic configs ("default", no shipped data), each row's configs alternated on one workload, the
# floor (useful FLOPs at the bf16 matmul rate) beside each time:
#   0. correctness: the check matrix's snake-order, overlapped-item and head_dim 256 TMA tile cases, its producer
#      register cases in head sections of one q head, and the GPU
#      suite's prefill cases but the matrix and the tuner (device-side errors, bad pages, 8-bit and varlen paged
#      workloads, streams); the whole matrix (about 2 minutes for prefill) is `swajit check --device cuda`;
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K-32K): the default (snake
#      order up to seq 8192; from 16384 at 32 kv heads, items 8 q heads at a time) with session 6's default beside,
#      and session 6's binary (BASE: ../mainI/swajit beside the carry, when there) on the same rows;
#   2. the rows tools/bench/prefill_peers.py times for FlashInfer: head_dim 64 and 256 (its producer at 24 registers
#      beside), GQA 32/4, the varlen batch;
#   3. paged (pages of 16 tokens in order: one TMA box a tile; shuffled: a box a page) against step 1's contiguous
#      rows (bar: within 5%);
#   4. first use (generate + NVRTC + module load) of the head_dim 128 (contiguous, paged 16) and 256 defaults;
#   5. as time allows: kv 32 at seq 32768 with and without head sections (SWAJIT_PREFILL_HEAD_SECTION=32: all q
#      heads at a time, the order before run B3; step 1 has it at seq 16384), overlapped items at seq 4096.
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
  if ((SECONDS > budget_s || SECONDS + run_timeout > budget_s + 15)); then
    echo "==== SKIPPED (past ${budget_s} s, or its ${run_timeout} s cap would end past $((budget_s + 15)) s): $*"
    status=1
    return
  fi
  run "$@"
}

s6_default=bm128_bn128_st2_mt1_wg_ws2_tma_pt       # session 6's head_dim 128 default (round-robin items)
d256_pr24=bm128_bn64_st2_mt1_wg_ws2_tma_pr24      # the head_dim 256 default with the producer at 24 registers (ptxas:
                                                  # 8 bytes of spills against the default's 80)
base=$carry/../mainI/swajit                       # session 6's binary (BASE rows), beside this carry in main's .carry
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness: the check matrix's snake-order (overlapped items among them) and head_dim 256 tile cases, the GPU
  #    suite's prefill cases but the matrix and the tuner (device-side errors, bad pages, 8-bit and varlen paged
  #    workloads, streams); the whole matrix is `swajit check --device cuda` of the final run
  run_timeout=20 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "snake order"
  run_timeout=12 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "st2, head_dim 256"
  # head sections of one q head (the check's workloads are too small for the default's sections) with the producer
  # at 24 and 40 registers (40: the paged head_dim 128 default's)
  SWAJIT_PREFILL_HEAD_SECTION=1 run_timeout=12 step stdbuf -oL "$swajit" check --device cuda --family prefill \
    --filter "st2 pr"
  run_timeout=15 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"

  # 1. the grid (its FlashInfer rows: prefill_peers.py / flashinfer_peer.py prefill): the default, session 6's
  #    default beside, and session 6's binary (BASE) at seq 4096 and 16384
  run_timeout=20 bench --seq 4096,8192,16384 --num-kv-heads 32 --configs "default,$s6_default"  # 32768: step 5
  # the order before head sections (all 32 q heads at a time; the default takes 8 at a time from seq 16384 at 32 kv
  # heads: their K/V windows fit half of L2, all 32 heads' do not), against the row above
  SWAJIT_PREFILL_HEAD_SECTION=32 run_timeout=12 bench --seq 16384 --num-kv-heads 32
  run_timeout=20 bench --seq 4096,8192,16384,32768 --num-kv-heads 8 --configs "default,$s6_default"
  [[ -x $base ]] && SWAJIT_DB=$(mktemp -d)/base.db run_timeout=20 step stdbuf -oL "$base" bench prefill \
    --matmul-tflops "$mm" --reps 10 --seq 4096,16384 --num-kv-heads 32,8

  # 2. the rows of tools/bench/prefill_peers.py: head_dim 64 and 256, GQA 32/4, the varlen batch
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64
  run_timeout=12 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 256 --configs "default,$d256_pr24"
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 4
  run_timeout=10 bench --q-lens "$varlen" --prefix-len 4096 --page-size 16 --num-kv-heads 8

  # 3. paged 16, pages in order (one box a tile) and shuffled (a box a page) against step 1's contiguous kv 8 rows
  #    (bar: within 5%)
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --page-size 16
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --shuffle-pages

  # 4. first use of the head_dim 128 default at seq <= 8192 (snake order) and of the head_dim 256 default (generate +
  #    NVRTC + module load; the database is not used)
  run_timeout=8 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --snake-order true --jit-time
  run_timeout=8 step "$swajit" gen --key prefill_bf16_d128_p16_nhd_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --snake-order true --producer-registers 40 --jit-time
  run_timeout=8 step "$swajit" gen --key prefill_bf16_d256_contig_g4_local --block-m 128 --block-n 64 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --jit-time

  # 5. as time allows: 32 kv heads at seq 32768 (its workload takes over 8 s to set up) with head sections (the
  #    default) and without, and overlapped items at seq 4096
  run_timeout=25 bench --seq 32768 --num-kv-heads 32
  SWAJIT_PREFILL_HEAD_SECTION=32 run_timeout=25 bench --seq 32768 --num-kv-heads 32
  run_timeout=8 bench --seq 4096 --num-kv-heads 32,8 --configs "default,${s6_default}_sn_ov"
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
