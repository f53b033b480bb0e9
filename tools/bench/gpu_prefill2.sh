#!/usr/bin/env bash
# Issue 15, phase 2, on the GPU machine (about 2 minutes on the H200): correctness first (the check matrix, whose
# default prefill cases now run the TMA producer at head_dim 128 and whose forced tma cases include block_n 128, then
# the GPU suite's prefill cases), then the bench: the new default (ws1 + TMA) against the old one (ws1, row gathers) and the
# block_n 128 TMA knob, one round over the issue's grid; paged 16 against contiguous at seq 8192; 8-bit K/V default
# (now the specialized path whose producer widens) against the old 8-bit default and bf16.
# Usage (from a checkout of branch s3-prefill2): tools/bench/gpu_prefill2.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate of the same run (the floor column); default 700 (686-714 measured on the H200).
# Compare with the FlashInfer peer rows of the same run: flashinfer_peer.py prefill, backend fa3 (grid rows: 32 and 8
# kv heads, seq 4K-32K); the bar is 1.10x fa3 on every row.
set -uo pipefail
db_name=prefill2_fresh.db run_timeout=100
source "$(dirname "$0")/gpu_run_common.sh"

old_default=bm192_bn64_st3_mt1_wg_ws1             # the default before this branch (row-gathered K/V)
# step 2: block_n 128 with TMA at 128 rows (FA3's hdim-128 tile: 2 consumer warpgroups; 168 registers, no real spills)
# without and with S(t+1) before softmax(t) and ping-pong
bn128=bm128_bn128_st3_mt1_wg_ws1_tma,bm128_bn128_st3_mt1_wg_ws2_tma,bm128_bn128_st2_mt1_wg_ws3_tma
old_8bit_default=bm128_bn64_st2_mt1_wg_oc2         # the 8-bit default before this branch (all warps widen)

{
  # 1. correctness: every check case (prefill's default cases now take TMA where the layout allows: the list is in
  #    test_nvrtc "the H200 default prefill config takes TMA ..."; the forced "tma ..." cases include the block_n 128
  #    knob), then the GPU suite's prefill cases
  run "$swajit" check --device cuda
  run "$carry/test_decode_gpu" -tc="*prefill*"

  # 2. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K..32K), one round
  run "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 --configs "default,$old_default,$bn128"

  # 3. paged (pages of 16 tokens: TMA boxes of whole pages) against contiguous at seq 8192: the issue's 5% bar
  run "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 --seq 8192 --configs "default,$old_default"
  run "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 --seq 8192 --page-size 16 --configs "default,$old_default"

  # 4. 8-bit K/V: the new default against the old one (bar: 0.95x the bf16 default rows of step 2/3)
  for quant in int8 fp8; do
    run "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 --kv-quant "$quant" --seq 8192,32768 \
      --configs "default,$old_8bit_default"
  done
  echo "==== gpu_prefill2.sh done, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill2.log"
exit "${PIPESTATUS[0]}"
