#!/usr/bin/env bash
# Issue 15's 8-bit point on the GPU machine (under 110 s on the H200): 8-bit K/V prefill against bf16, 32 q heads,
# head_dim 128, window 4096 causal, useful TFLOP/s and the floor (useful FLOPs at the bf16 matmul rate) on each row.
#   0. correctness: the f16 cases of the check matrix's "tma widened" ones (8-bit K/V moved by TMA into a staging
#      slot and widened in shared memory by two producer warps per tensor, both MMAs in fp16);
#   1. int8 and fp8 at kv 8, seq 8192 / 32768: the TMA-widened tile with bf16 MMAs and with f16 ones (the heuristic's
#      row-gather tile, bm192_bn64_st3 ws1, is BASE: 266-282 TFLOP/s in run B), then bf16's default on those rows;
#   2. the f16 tile paged (page 16, pages in order and shuffled), with a per-tensor scale, at kv 32 (bf16 beside);
#   3. int8 on the other TMA-widened tiles (not persistent, ws1, 64-token tiles, ping-pong), bf16 paged shuffled;
#   4. BASE: session 6's binary (.carry/mainI) on one int8 row; the f16 tile's first use (JIT); then the rest of the
#      "tma widened" check cases.
# The ratio 8-bit / bf16 of each row is printed at the end (bar: 0.95).
# Usage: gpu_prefill8.sh CARRY_DIR LOG_DIR   (CARRY_DIR: tools/bench/prepare_gpu_carry.sh's binaries)
#   MATMUL_TFLOPS: the bf16 matmul rate for the floor column (default 700; 686-796 measured on the H200).
set -uo pipefail
db_name=prefill8.db run_timeout=60
source "$(dirname "$0")/gpu_run_common.sh"
export LD_LIBRARY_PATH=$carry/lib:$carry/../lib:$PWD/.carry/lib  # lib/ beside the binaries, or main's
export SWAJIT_SHIPPED=0  # "default" is the heuristic
SWAJIT_DB=$(mktemp -d)/prefill8.db  # the compiled kernels stay out of the logs
export SWAJIT_DB
budget_s=${GPU_PREFILL8_BUDGET_S:-100}
step() {
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }
base=$carry/../mainI/swajit  # session 6's binary (lib/ beside it): .carry/mainI beside .carry/h_prefill8
[ -x "$base" ] || base=$PWD/.carry/mainI/swajit

tma8=bm128_bn128_st2_mt1_wg_ws2_tma_pt        # the bf16 default's tile, 8-bit widened in shared memory (1 staged pair)
f16=${tma8}_f16                               # the same with the MMAs in fp16 (1-2 instructions a widened pair, not 5-6)
tma8_np=bm128_bn128_st2_mt1_wg_ws2_tma         # not persistent: one Q buffer, so 2 staged pairs
tma8_pp=bm128_bn128_st2_mt1_wg_ws3_tma_pt      # ping-pong between the consumer warpgroups
tma8_ws1=bm128_bn128_st2_mt1_wg_ws1_tma_pt     # without S(t+1) before the softmax of t
tma8_bn64=bm128_bn64_st3_mt1_wg_ws2_tma_pt     # 64-token tiles, 3 stages
# Session 7 run B: a kernel's first use (NVRTC) costs about 3-4 s here and a row's workload (32K tokens, the sampled
# reference) about 5 s, so the rows below are few and ordered by what they decide.
{
  # 0. correctness of the f16 MMAs (int8 and fp8; the bf16-widened cases all passed in run B), the rest at the end
  run_timeout=40 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma widened f16, persistent ws2 bm128 bn128 st2,"
  ok_f16=$((!status))
  variants=",$tma8" extra=""
  ((ok_f16)) && variants+=",$f16" extra="${tma8_np}_f16,${tma8_ws1}_f16,${tma8_bn64}_f16,${tma8_pp}_f16"
  ((ok_f16)) || echo "==== CHECK FAILED: f16 configs not timed"
  # 1. int8 and fp8 (kv 8): the bf16-widened tile and the f16 one; then bf16's default on the same rows
  for quant in int8 fp8; do
    run_timeout=35 bench --seq 8192,32768 --num-kv-heads 8 --kv-quant "$quant" --configs "${variants#,}"
  done
  run_timeout=25 bench --seq 8192,32768 --num-kv-heads 8
  # 2. paged 16 (pages in order / shuffled), a per-tensor scale, kv 32 (with bf16 beside it)
  best=${f16}; ((ok_f16)) || best=$tma8
  run_timeout=20 bench --seq 32768 --num-kv-heads 8 --kv-quant int8 --page-size 16 --configs "$best"
  run_timeout=20 bench --seq 32768 --num-kv-heads 8 --kv-quant fp8 --page-size 16 --shuffle-pages --configs "$best"
  run_timeout=15 bench --seq 8192 --num-kv-heads 8 --kv-quant fp8 --per-tensor-scale --configs "$best"
  run_timeout=20 bench --seq 32768 --num-kv-heads 32 --kv-quant int8 --configs "$best"
  run_timeout=15 bench --seq 32768 --num-kv-heads 32
  # 3. the other TMA-widened tiles (int8, kv 8, seq 8192)
  [ -n "$extra" ] && run_timeout=30 bench --seq 8192 --num-kv-heads 8 --kv-quant int8 --configs "$extra"
  run_timeout=15 bench --seq 32768 --num-kv-heads 8 --page-size 16 --shuffle-pages
  # 4. BASE (session 6's binary, its heuristic: the row-gather 8-bit tile)
  if [ -x "$base" ]; then
    LD_LIBRARY_PATH=$(dirname "$base")/lib run_timeout=15 step stdbuf -oL "$base" bench prefill --matmul-tflops "$mm" \
      --reps 10 --seq 8192 --num-kv-heads 8 --kv-quant int8
  else
    echo "==== BASE binary not found at $base"
  fi
  # first use (generate + NVRTC + module load) of the f16 tile, fresh (the database is not used)
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local_kvfp8 --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --f16-mma true --jit-time
  # the rest of the TMA-widened check cases while time is left
  run_timeout=30 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma widened"
  echo "==== gpu_prefill8.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill8.log"
rc=${PIPESTATUS[0]}
# 8-bit / bf16 per (kv heads, seq, paged or not): the bf16 default rows of step 1 against every 8-bit row
awk -F'|' '/^==== .*bench prefill/ { quant = ($0 ~ /--kv-quant int8/) ? "int8" : ($0 ~ /--kv-quant fp8/) ? "fp8" : "bf16";
             paged = (($0 ~ /--page-size/) ? (($0 ~ /shuffle/) ? " paged16 shuffled" : " paged16") : "") (($0 ~ /per-tensor/) ? " per-tensor scale" : ""); base = ($0 ~ /mainI/) ? " BASE" : "" }
           /^\| [0-9]/ { key = $2 "|" $3; gsub(/ /, "", key); t = $5 + 0;
             if (quant == "bf16" && paged == "") bf16[key] = t;
             else if (quant == "bf16") rows[++n] = sprintf("bf16%s kv %s seq %s %s: %.1f TFLOP/s", paged, $2, $3, $8, t) SUBSEP key SUBSEP t;
             else if (t > 0) rows[++n] = sprintf("%s%s%s kv %s seq %s %s: %.1f TFLOP/s", quant, paged, base, $2, $3, $8, t) SUBSEP key SUBSEP t }
           END { print "==== 8-bit / bf16 (default bf16 of the same kv heads and seq, contiguous)";
                 for (i = 1; i <= n; ++i) { split(rows[i], r, SUBSEP); printf "%s  -> %.2fx\n", r[1], (bf16[r[2]] > 0 ? r[3] / bf16[r[2]] : 0) } }' \
  "$logs/gpu_prefill8.log" | tee "$logs/ratios.txt"
exit "$rc"
