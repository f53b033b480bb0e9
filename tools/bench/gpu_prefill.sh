#!/usr/bin/env bash
# Issue 15 on the GPU machine (under 2 minutes on the H200; a step that would start after $GPU_PREFILL_BUDGET_S,
# default 95 s, is skipped and says so): correctness first (the check matrix's "persistent ..." cases), then the bench,
# heuristic configs ("default", no shipped data), each row's configs alternated on one workload:
#   1. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K-32K): the default (FA3's
#      tile with TMA, ws1) against the same tile on a persistent grid (_pt), with S(t+1) before softmax(t) (ws2),
#      and with ping-pong (ws3), each since K and V have their own stage barriers;
#   2. paged (pages of 16 tokens, in order: one TMA box a tile; shuffled: a box a page, or row gathers) against
#      contiguous (step 1's 8-kv-head rows), seq 8K and 32K (bar: within 5%), the default and the persistent grid;
#   3. 8-bit K/V (int8, fp8; bar: 0.95x bf16), the default (the producer widens row-gathered tiles) and FA3's tile;
#   4. the rows tools/bench/prefill_peers.py times for FlashInfer: head_dim 64 and 256, GQA 32/4, the varlen batch
#      (16 sequences of 512-8192 queries chunked after a paged prefix of 4096);
#   5. first use (generate + NVRTC + module load) of the default and persistent kernels;
#   6. the check matrix's other TMA knob cases ("tma ws...": every knob, the "in runs" cases the one-box paged tiles)
#      and the GPU suite's prefill cases but the matrix and the tuner (which compiles the whole config space).
# Usage: tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate of the same run (floor column; prefill_peers.py prints kind=ceiling_mm_bf16);
#   default 700 (686-714 measured on the H200).
# FlashInfer beside it: tools/bench/prefill_peers.py (rows of step 4) and flashinfer_peer.py prefill (grid rows).
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

fa3_tile=bm128_bn128_st2_mt1_wg_ws1_tma     # the default where TMA applies (tuned winner of session 3 run D)
persistent=bm128_bn128_st2_mt1_wg_ws1_tma_pt
fa3_gathers=bm128_bn128_st2_mt1_wg_ws1       # the same tile with K/V rows gathered by the producer warpgroup
overlap_persistent=bm128_bn128_st2_mt1_wg_ws2_tma_pt  # S(t+1) before softmax(t), persistent
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS
# Line-buffered: each row shows as it is timed (a row's workload of up to 32K tokens x 32 heads takes seconds to
# set up, so a call can run past its cap; its rows so far are kept).
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }

{
  # 0. correctness of the knobs timed below (the whole matrix takes longer than this script may: step 6 runs the
  #    rest of the TMA cases, and the whole matrix runs in the GPU suite and `swajit check`)
  run_timeout=30 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter persistent

  # 1. the grid: one row first (a timed row within seconds), then the rest, the knobs in calls of their own so a
  #    config that fails cannot take the others' rows with it
  run_timeout=20 bench --seq 8192 --num-kv-heads 8 --configs "default,$persistent,$overlap_persistent"
  run_timeout=60 bench --seq 4096,16384,32768 --configs "default,$persistent,$overlap_persistent"
  run_timeout=30 bench --seq 4096,16384 --configs "default,bm128_bn128_st2_mt1_wg_ws2_tma,bm128_bn128_st2_mt1_wg_ws3_tma_pt"

  # 2. paged 16 against contiguous (step 1's 8-kv-head rows)
  run_timeout=25
  bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --configs "default,$persistent,$overlap_persistent"
  bench --seq 8192,32768 --num-kv-heads 8 --page-size 16 --shuffle-pages \
    --configs "default,$persistent,$overlap_persistent,$fa3_gathers"

  # 3. 8-bit K/V: the default (the producer widens row-gathered tiles) and FA3's tile the same way
  bench --kv-quant int8 --seq 8192,32768 --num-kv-heads 8 --configs "default,$fa3_gathers"
  bench --kv-quant fp8 --seq 8192,32768 --num-kv-heads 8 --configs "default,$fa3_gathers"

  # 4. the FlashInfer peer rows (prefill_peers.py swajit_commands)
  bench --seq 8192,32768 --num-kv-heads 8 --head-dim 64 --configs "default,$fa3_tile,${fa3_tile}_pt"
  bench --seq 8192,32768 --num-kv-heads 8 --head-dim 256 \
    --configs default,bm128_bn64_st2_mt1_wg_ws1_tma,bm64_bn64_st2_mt1_wg_ws1_tma_pt  # (two 128-row Q tiles do not fit)
  bench --seq 8192,32768 --num-kv-heads 4 --configs "default,$persistent"
  bench --q-lens "$varlen" --prefix-len 4096 --page-size 16 --num-kv-heads 8 --configs "default,$persistent"

  # 5. first use of each variant (generate + NVRTC + module load; the database is not used)
  run_timeout=15
  for key_config in "contig_g4_local $fa3_tile" "contig_g4_local $persistent" "p16_nhd_g4_local $persistent" \
    "contig_g4_local $overlap_persistent"; do
    read -r key config <<<"$key_config"
    IFS=_ read -r bm bn st mt wg ws tma pt <<<"$config"
    flags="--block-m ${bm#bm} --block-n ${bn#bn} --stages ${st#st} --wgmma true --warp-specialize ${ws#ws} --tma true"
    [ -n "$pt" ] && flags="$flags --persistent true"
    step "$swajit" gen --key "prefill_bf16_d128_$key" $flags --jit-time
  done


  # 6. the other TMA knob cases of the check matrix, and the GPU suite's prefill cases but the matrix and the tuner
  #    (device-side errors, bad pages, 8-bit and varlen paged workloads, streams)
  run_timeout=40 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma ws"
  run_timeout=30 step "$carry/test_decode_gpu" \
    -tc="prefill: invalid*,prefill: 8-bit*,prefill: varlen*,paged prefill*,concurrent streams: decode and prefill*"
  echo "==== gpu_prefill.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
