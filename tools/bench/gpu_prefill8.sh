#!/usr/bin/env bash
# Issue 15's 8-bit point on the GPU machine (under 2 minutes on the H200): 8-bit K/V prefill against bf16, 32 q
# heads, head_dim 128, window 4096 causal, useful TFLOP/s and the floor (useful FLOPs at the bf16 matmul rate) on each
# row. "default" is the heuristic: for 8-bit K/V at head_dim 128 (bf16 q) the TMA tile with fp16 MMAs and Q.K^T on the
# 8-bit tensor cores from the stored K tiles (bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_sk, since session 8 run B; "_sn"
# at seq <= 8192). Configs timed against it (key suffixes):
#   _sv      stored_v: P.V on the 8-bit tensor cores from V tiles the producer transposes (fp8 only; session 15).
#   _f16     without _sk: the session-7 default, K and V widened to fp16 in shared memory by the producer warps.
#   (Knobs that lost and are not timed here: _wr widen_rows (run B, 1-6%), _sk_wa widen_ahead and ws1 _sk (run B2,
#   0-5%); tools/bench/RESULTS.md, session 8.)
#   0. correctness: the check matrix's 8-bit cases on the default (`K/V, contiguous`), the `wa` cases, the GPU suite's
#      8-bit prefill cases;
#   1. fp8 and int8 (kv 8, seq 8192 / 32768): default and _f16 alternated on one workload; bf16's default;
#   2. --ncu: ncu of one launch of the fp8 and the int8 default (seq 8192, kv 8): stall reasons, shared-memory bank
#      conflicts, the SASS lines' stall samples (LOG_DIR/ncu_*_sass.csv);
#   3. paged 16 shuffled and kv 32 (default against _f16); BASE (session 7's binary, .carry/mainJ) on the fp8 / int8
#      rows; the JIT time of the default.
# The ratio 8-bit / bf16 of each row is printed at the end (bar: 0.95).
# Usage: gpu_prefill8.sh CARRY_DIR LOG_DIR [--ncu]   (CARRY_DIR: tools/bench/prepare_gpu_carry.sh's binaries)
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
base=$carry/../mainJ/swajit  # session 7's final binary (lib/ beside it): .carry/mainJ beside .carry/h_prefill8
[ -x "$base" ] || base=$PWD/.carry/mainJ/swajit
ncu_wanted=0  # --ncu: the profiles of step 2
for arg in "${@:3}"; do [ "$arg" = --ncu ] && ncu_wanted=1; done

# The 8-bit default and the configs beside it; at seq <= 8192 (window 4096) the default takes snake order (_sn).
configs() {  # configs QUANT SNAKE: "default,[fp8: default + _sv,]<the session-7 default>" keys
  local sv=""
  [ "$1" = fp8 ] && sv="bm128_bn128_st2_mt1_wg_ws2_tma_pt${2:-}_f16_sk_sv,"
  echo "default,${sv}bm128_bn128_st2_mt1_wg_ws2_tma_pt${2:-}_f16"
}
# ncu of one launch (the bench's second launch of the prefill kernel) at seq 8192, kv 8: NAME BENCH_ARGS...
profile() {
  command -v ncu >/dev/null || { echo "==== no ncu"; return; }
  local name=$1; shift
  echo "==== ncu $name: $*"
  timeout 40 ncu --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis_Tables \
    --section SourceCounters --section LaunchStats --section Occupancy \
    --metrics l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_shared_st.sum,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,smsp__cycles_active.avg,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum \
    --kernel-name regex:swajit_prefill --launch-skip 1 --launch-count 1 -f -o "$logs/ncu_$name" \
    "$swajit" bench prefill --reps 2 --seq 8192 --num-kv-heads 8 "$@" > "$logs/ncu_$name.log" 2>&1
  echo "rc $?"
  timeout 20 ncu --import "$logs/ncu_$name.ncu-rep" --print-units base > "$logs/ncu_${name}_details.txt" 2>&1
  grep -E "bank_conflicts|wavefronts|inst_executed_op_shared|gmma|Duration|Throughput|Warp Cycles|Issued|Stall|stall|Registers|Shared Memory Configuration|Eligible|Active Warps" \
    "$logs/ncu_${name}_details.txt" | cut -c1-150 | head -60
  timeout 20 ncu --import "$logs/ncu_$name.ncu-rep" --page source --csv --print-source sass > "$logs/ncu_${name}_sass.csv" 2>&1
  echo "sass lines: $(wc -l < "$logs/ncu_${name}_sass.csv")"
  rm -f "$logs/ncu_$name.ncu-rep"
}
{
  # 0. correctness (8-bit tolerance 1e-2; the error of each case is printed)
  run_timeout=30 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "K/V, contiguous"
  run_timeout=40 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma sk sv"
  run_timeout=25 step "$carry/test_decode_gpu" -tc="prefill: 8-bit*"
  # 1. fp8 and int8 (kv 8): default and the session-7 default; bf16's default
  for quant in fp8 int8; do
    run_timeout=25 bench --seq 8192 --num-kv-heads 8 --kv-quant $quant --configs "$(configs $quant _sn)"
    run_timeout=30 bench --seq 32768 --num-kv-heads 8 --kv-quant $quant --configs "$(configs $quant)"
  done
  run_timeout=20 bench --seq 8192,32768 --num-kv-heads 8
  # 2. ncu of the fp8 and int8 defaults
  if ((ncu_wanted)); then
    profile fp8_sv --kv-quant fp8 --configs bm128_bn128_st2_mt1_wg_ws2_tma_pt_sn_f16_sk_sv
  fi
  # 3. paged 16 shuffled, kv 32; BASE
  for quant in fp8 int8; do
    run_timeout=20 bench --seq 32768 --num-kv-heads 8 --kv-quant $quant --page-size 16 --shuffle-pages --configs "$(configs $quant)"
  done
  run_timeout=15 bench --seq 32768 --num-kv-heads 8 --page-size 16 --shuffle-pages
  run_timeout=20 bench --seq 32768 --num-kv-heads 32 --kv-quant fp8 --configs "$(configs fp8)"
  run_timeout=15 bench --seq 32768 --num-kv-heads 32
  if [ -x "$base" ]; then
    for quant in fp8 int8; do
      LD_LIBRARY_PATH=$(dirname "$base")/lib run_timeout=15 step stdbuf -oL "$base" bench prefill --matmul-tflops "$mm" \
        --reps 10 --seq 8192 --num-kv-heads 8 --kv-quant $quant
    done
  else
    echo "==== BASE binary not found at $base"
  fi
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local_kvfp8 --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --f16-mma true --stored-k-scores true --jit-time
  run_timeout=15 step "$swajit" gen --key prefill_bf16_d128_contig_g4_local_kvfp8 --block-m 128 --block-n 128 --stages 2 \
    --wgmma true --warp-specialize 2 --tma true --persistent true --f16-mma true --stored-k-scores true --stored-v true --jit-time
  run_timeout=30 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma sk,"
  echo "==== gpu_prefill8.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill8.log"
rc=${PIPESTATUS[0]}
# 8-bit / bf16 per (kv heads, seq, paged or not): the bf16 default rows against every 8-bit row
awk -F'|' '/^==== .*bench prefill/ { quant = ($0 ~ /--kv-quant int8/) ? "int8" : ($0 ~ /--kv-quant fp8/) ? "fp8" : "bf16";
             paged = (($0 ~ /--page-size/) ? (($0 ~ /shuffle/) ? " paged16 shuffled" : " paged16") : "") (($0 ~ /per-tensor/) ? " per-tensor scale" : ""); base = ($0 ~ /mainJ/) ? " BASE" : "" }
           /^\| [0-9]/ { key = $2 "|" $3 "|" paged; gsub(/ /, "", key); t = $5 + 0;
             if (quant == "bf16") bf16[key] = t;
             else if (t > 0) rows[++n] = sprintf("%s%s%s kv %s seq %s %s: %.1f TFLOP/s", quant, paged, base, $2, $3, $8, t) SUBSEP key SUBSEP t }
           END { print "==== 8-bit / bf16 (bf16 default of the same kv heads, seq and paging)";
                 for (i = 1; i <= n; ++i) { split(rows[i], r, SUBSEP); printf "%s  -> %.2fx\n", r[1], (bf16[r[2]] > 0 ? r[3] / bf16[r[2]] : 0) } }' \
  "$logs/gpu_prefill8.log" | tee "$logs/ratios.txt"
exit "$rc"
