#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 2 minutes on the H200; a step that would start after $GPU_PREFILL_BUDGET_S,
# default 105 s, is skipped and says so): correctness first, then the bench, heuristic configs ("default", no shipped
# data), each row's configs alternated on one workload, the floor (useful FLOPs at the bf16 matmul rate) beside each
# time:
#   0. correctness: the check matrix's snake-order and overlapped-item cases; the whole matrix (about 2 minutes for
#      prefill) is `swajit check --device cuda` of the final run;
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K-32K): the default against
#      the persistent grid's snake order (_sn) and overlapped items (_ov); 32 kv heads in sections of 8 q heads
#      (SWAJIT_PREFILL_HEAD_SECTION); at seq 4096 and 8192 ping-pong beside;
#   2. head_dim 256 (FA3's 128 x 80 tile beside, its check cases first) and 64, paged 16 shuffled (a box a page; bar:
#      within 5% of step 1's contiguous rows);
#   3. head sections checked, the first use (generate + NVRTC + module load) of the overlapped tile, the varlen batch
#      of tools/bench/prefill_peers.py.
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

d128_sn=bm128_bn128_st2_mt1_wg_ws2_tma_pt_sn      # the head_dim 128 default with snake order
d128_sn_ov=${d128_sn}_ov                          # ... and overlapped items
d128_ws3_sn=bm128_bn128_st2_mt1_wg_ws3_tma_pt_sn  # snake order with ping-pong
d64=bm192_bn128_st2_mt1_wg_ws1_tma_pt             # the head_dim 64 default
base=$carry/../mainI/swajit                       # session 6's binary (BASE rows), beside this carry in main's .carry
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness: the check matrix's snake-order and overlapped-item cases
  run_timeout=20 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "snake order"
  run_timeout=12 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "st2 overlapped items"

  # 1. the grid: the default (round-robin items), snake order (odd rounds of unequal items backwards), with
  #    overlapped items
  run_timeout=25 bench --seq 4096,8192,16384,32768 --num-kv-heads 32 --configs "default,$d128_sn,$d128_sn_ov"
  run_timeout=25 bench --seq 4096,8192,16384,32768 --num-kv-heads 8 --configs "default,$d128_sn,$d128_sn_ov"
  #    32 kv heads: the items of 8 q heads at a time (their K/V windows fit L2; all 32 heads' do not)
  SWAJIT_PREFILL_HEAD_SECTION=8 run_timeout=15 bench --seq 16384,32768 --num-kv-heads 32 --configs "default,$d128_sn_ov"
  #    seq 4096 and 8192: snake order with ping-pong (ws3) beside
  run_timeout=10 bench --seq 4096,8192 --num-kv-heads 32 --configs "$d128_sn_ov,$d128_ws3_sn"

  # 2. head_dim 256 (FA3's 128 x 80 tile) and 64, paged 16 shuffled
  run_timeout=12 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "st2, head_dim 256"
  run_timeout=12 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 256 \
    --configs "default,bm128_bn80_st2_mt1_wg_ws1_tma,bm128_bn80_st2_mt1_wg_ws2_tma,bm128_bn64_st2_mt1_wg_ws2_tma"
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 \
    --configs "default,bm192_bn128_st2_mt1_wg_ws2_tma_pt_sn_pr24,bm192_bn128_st2_mt1_wg_ws2_tma_pt_sn_ov_pr24"
  run_timeout=10 bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --shuffle-pages --configs "default,$d128_sn_ov"

  # 3. head sections checked, first use of the overlapped tile, the varlen batch
  SWAJIT_PREFILL_HEAD_SECTION=2 run_timeout=12 step stdbuf -oL "$swajit" check --device cuda --family prefill \
    --filter "snake order"
  run_timeout=8 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --snake-order true --overlap-items true --jit-time
  run_timeout=10 bench --q-lens "$varlen" --prefix-len 4096 --page-size 16 --num-kv-heads 8 --configs "default,$d128_sn_ov"
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
