#!/usr/bin/env bash
# Issue 15 on the GPU machine: prefill correctness with each new knob forced (tma; warp specialization with 8-bit
# K/V), then first-use JIT times, then the prefill bench grid with each knob against today's default, alternated over
# rounds in one run, 8-bit K/V, and the rows the FlashInfer peers time. About 4-5 minutes on the H200.
# Usage (from a checkout of branch s3-prefill): tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate measured in the same run (floor column); default 700 (686-714 measured on
#   the H200 in earlier runs: the peers print kind=ceiling_mm_bf16 for this run).
# Compare with the FlashInfer peer rows of the same run: flashinfer_peer.py prefill (grid rows, fa3/fa2) and
# tools/bench/prefill_peers.py (head_dim 64/256, GQA 32/4, varlen chunked paged rows).
set -uo pipefail
db_name=prefill_fresh.db run_timeout=150
source "$(dirname "$0")/gpu_run_common.sh"

# The compared configs: "default" is the runtime's choice (H200: bm192_bn64_st3_mt1_wg_ws1 before s3-prefill2, now with _tma), then the TMA producer
# with each warp-specialized mode, and today's ping-pong without TMA for reference. One process per row set: each row's
# workload is built once and the configs alternate on it (--rounds).
grid_configs=default,bm192_bn64_st3_mt1_wg_ws1_tma,bm192_bn64_st3_mt1_wg_ws2_tma,bm128_bn64_st3_mt1_wg_ws3,bm128_bn64_st3_mt1_wg_ws3_tma
d256_configs=default,bm64_bn64_st2_mt1_wg_ws1_tma,bm64_bn64_st2_mt1_wg_ws2_tma  # 192 rows or 3 stages overflow smem
varlen=512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192  # = prefill_peers.py VARLEN_Q_LENS

{
  # 1. correctness: every prefill case of the check matrix (the tma cases force the new knob), then the GPU suite's
  #    prefill cases
  run "$swajit" check --device cuda --filter tma
  run "$swajit" check --device cuda
  run "$carry/test_decode_gpu" -tc="*prefill*"

  # 2. first use of one kernel with a fresh database: generate + NVRTC + module load, per variant
  for config in bm192_bn64_st3_mt1_wg_ws1 bm192_bn64_st3_mt1_wg_ws1_tma bm192_bn64_st3_mt1_wg_ws2_tma \
                bm128_bn64_st3_mt1_wg_ws3 bm128_bn64_st3_mt1_wg_ws3_tma; do
    IFS=_ read -r bm bn st mt wg ws tma <<<"$config"
    flags="--block-m ${bm#bm} --block-n ${bn#bn} --stages ${st#st} --wgmma true --warp-specialize ${ws#ws}"
    [ -n "$tma" ] && flags="$flags --tma true"
    run "$swajit" gen --key prefill_bf16_d128_contig_g4_local $flags --jit-time
  done

  # 3. the issue's grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K..32K), configs alternated
  #    over two rounds; then the paged path (pages of 16 and 64 tokens) beside the contiguous rows above
  run "$swajit" bench prefill --matmul-tflops "$mm" --configs "$grid_configs" --rounds 2
  for page in 16 64; do
    run "$swajit" bench prefill --matmul-tflops "$mm" --page-size "$page" --seq 8192,32768 \
      --configs default,bm192_bn64_st3_mt1_wg_ws1_tma
  done

  # 4. 8-bit K/V: today's default (all warps widen each tile) against the warp-specialized path whose producer widens
  #    (target: >= 0.95x the bf16 rows of step 3)
  for quant in int8 fp8; do
    run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --kv-quant "$quant" --seq 8192,32768 \
      --configs default,bm192_bn64_st3_mt1_wg_ws1,bm128_bn64_st3_mt1_wg_ws3
  done

  # 5. the rows tools/bench/prefill_peers.py times for FlashInfer (the same shapes)
  run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --seq 8192,32768 --num-kv-heads 8 --head-dim 64 \
    --configs "$grid_configs"
  run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --seq 8192,32768 --num-kv-heads 8 --head-dim 256 \
    --configs "$d256_configs"
  run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --seq 8192,32768 --num-kv-heads 4 --configs "$grid_configs"
  run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --num-kv-heads 8 --page-size 16 --prefix-len 4096 \
    --q-lens "$varlen" --configs default,bm192_bn64_st3_mt1_wg_ws1_tma,bm128_bn64_st3_mt1_wg_ws3_tma
  echo "==== gpu_prefill.sh done, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
