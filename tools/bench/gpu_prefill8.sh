#!/usr/bin/env bash
# Issue 15's 8-bit point on the GPU machine (under 2 minutes on the H200): 8-bit K/V prefill against bf16, 32 q
# heads, head_dim 128, window 4096 causal, useful TFLOP/s and the floor (useful FLOPs at the bf16 matmul rate) on each
# row. "default" is the heuristic: for 8-bit K/V at head_dim 128 the TMA-widened tile with fp16 MMAs
# (bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16, since session 7 run B3).
#   0. correctness: the check matrix's "tma widened f16" cases (8-bit K/V moved by TMA into a staging slot, widened in
#      shared memory by two producer warps per tensor, both MMAs in fp16) and the GPU suite's 8-bit prefill cases (on
#      the new default);
#   1. int8 and fp8 at kv 8, seq 8192 / 32768: the default beside the row-gather tile it replaced (BASE config,
#      bm192_bn64_st3 ws1) and the same TMA tile widened to bf16; bf16's default on those rows;
#   2. the default paged (page 16, pages in order and shuffled), with a per-tensor scale, at kv 32 (bf16 beside);
#   3. ws1 (S(t+1) not issued early) against the default (run B3: 371.5 against 357.1, one row);
#   4. BASE: session 6's binary (.carry/mainI) on one int8 row; the default's first use (JIT); the other "tma widened"
#      check cases while time is left.
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
budget_s=${GPU_PREFILL8_BUDGET_S:-110}
step() {
  if ((SECONDS > budget_s)); then echo "==== SKIPPED (past ${budget_s} s): $*"; status=1; return; fi
  run "$@"
}
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }
base=$carry/../mainI/swajit  # session 6's binary (lib/ beside it): .carry/mainI beside .carry/h_prefill8
[ -x "$base" ] || base=$PWD/.carry/mainI/swajit

tma8=bm128_bn128_st2_mt1_wg_ws2_tma_pt        # the default's tile widened to bf16 (no f16_mma)
rows8=bm192_bn64_st3_mt1_wg_ws1                # the 8-bit default before run B3: row gathers widened by the producer
ws1=bm128_bn128_st2_mt1_wg_ws1_tma_pt_f16      # the default without S(t+1) issued before the softmax of t
# Session 7 runs B / B3: a kernel's first use costs about 2-4 s in a check, a row's workload (32K tokens, the sampled
# reference) about 5 s, so the rows below are few and ordered by what they decide.
{
  # 0. correctness
  run_timeout=40 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma widened f16"
  run_timeout=25 step "$carry/test_decode_gpu" -tc="prefill: 8-bit*"
  # 1. int8 and fp8 (kv 8): the default, the row-gather tile, the TMA tile widened to bf16; bf16's default
  for quant in int8 fp8; do
    run_timeout=35 bench --seq 8192,32768 --num-kv-heads 8 --kv-quant "$quant" --configs "default,$rows8,$tma8"
  done
  run_timeout=20 bench --seq 8192,32768 --num-kv-heads 8
  # 2. paged 16 (pages in order / shuffled), a per-tensor scale, kv 32 (with bf16 beside it)
  run_timeout=20 bench --seq 32768 --num-kv-heads 8 --kv-quant int8 --page-size 16
  run_timeout=20 bench --seq 32768 --num-kv-heads 8 --kv-quant fp8 --page-size 16 --shuffle-pages
  run_timeout=15 bench --seq 32768 --num-kv-heads 8 --page-size 16 --shuffle-pages
  run_timeout=15 bench --seq 8192 --num-kv-heads 8 --kv-quant fp8 --per-tensor-scale
  run_timeout=20 bench --seq 32768 --num-kv-heads 32 --kv-quant fp8
  run_timeout=15 bench --seq 32768 --num-kv-heads 32
  # 3. ws1 against the default
  run_timeout=25 bench --seq 8192,32768 --num-kv-heads 8 --kv-quant int8 --configs "default,$ws1"
  # 4. BASE (session 6's binary, its heuristic: the row-gather 8-bit tile), first use, the other check cases
  if [ -x "$base" ]; then
    LD_LIBRARY_PATH=$(dirname "$base")/lib run_timeout=15 step stdbuf -oL "$base" bench prefill --matmul-tflops "$mm" \
      --reps 10 --seq 8192 --num-kv-heads 8 --kv-quant int8
  else
    echo "==== BASE binary not found at $base"
  fi
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local_kvfp8 --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --f16-mma true --jit-time
  run_timeout=30 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma widened,"
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
