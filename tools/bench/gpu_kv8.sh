#!/usr/bin/env bash
# Issue 14 on the GPU machine, helper kv8's rows: 8-bit KV (int8 / fp8 e4m3) at batch >= 32 and q_seqlen 4, and Gemma
# 3 (32 q / 16 kv heads, head_dim 256, window 1024) at batch 128 / 256. Correctness first, then each row timed beside
# its floor (KV bytes the window reads over the read bandwidth measured in the same process; 8-bit: 1 byte an
# element) for the default (heuristic) config, tiles and knobs forced, and BASE (session 7's final binary,
# .carry/mainJ, beside the carry folder).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_kv8.sh CARRY_DIR LOG_DIR [sweep|confirm|final]
# `sweep` (session 8 run B): ncu of one fp8 b32 q4 call and the tiles tried for each row; `confirm` (run B2): the new
# fp8 default against BASE, int8's tiles, ncu of Gemma 3 b128; without either (the final run): check, then the rows'
# default against BASE.
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}} mode=${3:-final}
here=$(cd "$(dirname "$0")" && pwd) root=$PWD
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib:$root/.carry/lib:$carry/../mainJ/lib:$root/.carry/mainJ/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder, no shipped winners: heuristic or forced configs.
export SWAJIT_DB=$(mktemp -d)/kv8.db SWAJIT_SHIPPED=0
swajit=$carry/swajit base=$carry/../mainJ/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $* ($(( $(date +%s) - start ))s into the script)"; }
limited() { timeout 45 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command

step "check: the Gemma 3 and fp8-default cases (final: the pages-ahead ones, 8-bit defaults among them, early tiles, blocks of 8 rows)"
filters=("gemma 3 shape" "fp8 default")
[ "$mode" = sweep ] && filters+=("early tiles")
[ "$mode" = confirm ] && filters+=("pages ahead" "early tiles, int8")
[ "$mode" = final ] && filters+=("pages ahead" "early tiles" "padding rows")  # (with the 8-bit defaults' tiles)
for filter in "${filters[@]}"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/kv8_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
done
grep -E "^FAIL|passed" "$logs/kv8_check.log"
grep -q "^FAIL" "$logs/kv8_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, binary, then bench decode flags (after the row's)
  local name=$1 binary=$2; shift 2
  step "bench $name: $*"
  limited "$binary" bench decode "${row[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|^measured|rror"
}

# Run B of session 8 (`sweep`): where 8-bit KV's time goes at b32 / q4 (ncu on one fp8 b32 q4 call) and which tiles
# stream better, and the head_dim 256 tiles (Gemma 3) at b128 / b256, each beside the default in the same process order.
# Tiles: bn<tokens> wn<warps splitting them> st<stages>; every warp loading reads the block_table a tile ahead (pa)
# and a tile's entries before checking any (pf); TMA pages (--producer 4) are the d256 default's loader.
if [ "$mode" = sweep ]; then
  fp8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant fp8)
  gemma=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 --reps 15)
  ahead=(--splits 0 --pages-first true --pages-ahead true)
  step "ncu: one fp8 b32 q4 call (the default: bn128 wn4 st3 pf pa, scheduled grid)"
  command -v ncu >/dev/null || echo "ncu not found"
  timeout 40 ncu --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
    --section ComputeWorkloadAnalysis --section InstructionStats --section LaunchStats --section Occupancy \
    --launch-count 1 -k regex:paged_decode "$swajit" bench decode --batch 32 --kv-len 32768 --q-seqlen 4 \
    --kv-quant fp8 --reps 1 --no-verify > "$logs/ncu_fp8_b32_q4.log" 2>&1
  grep -E "Duration|Throughput|Registers|Achieved Occupancy|Issue Slots|Executed Ipc|Stall|Warp Cycles|Pipe|pipe" \
    "$logs/ncu_fp8_b32_q4.log" | head -60
  row=("${fp8[@]}")
  bench fp8_default "$swajit" --batch 32,128
  bench fp8_default_host "$swajit" --batch 32 --host-lengths true  # the direct grid (session 7, TMA pages: 77.3 vs 85.6)
  bench fp8_bn64_wn2_st3 "$swajit" --batch 32,128 --block-n 64 --warps-n 2 --stages 3 "${ahead[@]}"
  row=("${gemma[@]}")
  tma=(--producer 4 --splits 0)
  bench gemma_default "$swajit" --batch 128,256  # TMA pages bn32 wn2 st3, two blocks an SM
  bench gemma_default_host "$swajit" --batch 128,256 --host-lengths true
  bench gemma_early "$swajit" --batch 128,256 --block-n 32 --warps-n 2 --stages 3 "${tma[@]}" --early-tiles true
  bench gemma_bn16_wn1_st3 "$swajit" --batch 128 --block-n 16 --warps-n 1 --stages 3 "${tma[@]}"  # 4 blocks an SM
  bench gemma_bn16_wn1_st4 "$swajit" --batch 128 --block-n 16 --warps-n 1 --stages 4 "${tma[@]}"  # 3
  bench gemma_bn32_wn2_st2 "$swajit" --batch 128 --block-n 32 --warps-n 2 --stages 2 "${tma[@]}"  # 3
  row=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant int8)
  bench int8_default "$swajit" --batch 32,128  # TMA pages, min_blocks 2
  bench int8_allwarps_ahead "$swajit" --batch 32,128 --block-n 128 --warps-n 4 --stages 3 "${ahead[@]}"
fi

# Run B2 of session 8 (`confirm`): the new fp8 default (bn64 wn2 st3 once 2 x pairs exceed its resident blocks: b64
# and up) and the softmax that skips padding rows (blocks of at most 8 rows: q1) against BASE in the same run; int8
# at b128 on the halved every-warp tile and with the producer's early tiles; ncu of one Gemma 3 b128 call (why every
# d256 tile stopped at 91% in run B).
if [ "$mode" = confirm ]; then
  fp8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant fp8)
  int8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant int8)
  ahead=(--splits 0 --pages-first true --pages-ahead true)
  row=("${fp8[@]}")
  bench fp8_default "$swajit" --batch 32,64,128,256
  bench fp8_base "$base" --batch 32,128,256
  bench fp8_sinks_default "$swajit" --batch 128 --sink-logits
  bench fp8_bn64_wn2_st4 "$swajit" --batch 128 --block-n 64 --warps-n 2 --stages 4 "${ahead[@]}"
  # b32's scheduled grid without the merge grid behind it (the fused merge: nothing is cut at b32, so no block merges):
  # how much of the 8% the direct grid gains (run B: 73.4 against 79.9) the merge grid's launch is.
  bench fp8_b32_fused "$swajit" --batch 32 --block-n 128 --warps-n 4 --stages 3 "${ahead[@]}" --fused-merge true
  row=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
  bench bf16_b32_default "$swajit" --batch 32
  bench bf16_b32_fused "$swajit" --batch 32 --block-n 64 --warps-n 4 --stages 3 --splits 0 --pages-ahead true --fused-merge true
  row=("${int8[@]}")
  bench int8_default "$swajit" --batch 32,128
  bench int8_early "$swajit" --batch 32,128 --block-n 128 --warps-n 4 --stages 3 --producer 4 --min-blocks 2 --splits 0 --early-tiles true
  bench int8_allwarps_bn64 "$swajit" --batch 128 --block-n 64 --warps-n 2 --stages 3 "${ahead[@]}"
  step "ncu: one Gemma 3 b128 call (the default: TMA pages bn32 wn2 st3)"
  timeout 40 ncu --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
    --section ComputeWorkloadAnalysis --print-details all --launch-count 1 -k regex:paged_decode "$swajit" bench decode \
    --batch 128 --num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 \
    --reps 1 --no-verify > "$logs/ncu_gemma_b128.log" 2>&1
  grep -E "Duration|Throughput|Issue Slots|Executed Ipc|Stall|stall|Warp Cycles|SM Frequency" "$logs/ncu_gemma_b128.log" | head -40
fi

# The final run: the issue's rows on the defaults, then BASE (session 7's final binary) on some of them. Session 8
# run B2 (s8-kv8 at 8ec6b0e), fp8 q1 / q4: b32 79.3 / 86.5, b64 140.7 / 151.1, b128 269.8 / 286.7, b256 525.8 / 557.6
# us (76% / 70%, 85% / 80%, 89% / 84%, 91% / 87% of the halved floor; BASE b128 284.7 / 305.0); FlashInfer fp8
# (session 7 call 1) b32 / b128 / b256 116.3 / 414.8 / 805.8. int8 b128 (every warp, halved tile) 295.1 / 314.0.
# Gemma 3 (run B) b128 / b256 527.4 / 1031.5 (FlashInfer 513.0 / 987.9).
if [ "$mode" = final ]; then
  fp8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant fp8)
  int8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant int8)
  gemma=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 --reps 15)
  row=("${fp8[@]}"); bench fp8_default "$swajit" --batch 32,64,128,256
  row=("${fp8[@]}"); bench fp8_sinks_default "$swajit" --batch 32,128 --sink-logits
  row=("${int8[@]}"); bench int8_default "$swajit" --batch 32,128,256
  row=("${gemma[@]}"); bench gemma_default "$swajit" --batch 1,8,32,128,256
  row=("${fp8[@]}"); bench fp8_base "$base" --batch 32,128
  row=("${int8[@]}"); bench int8_base "$base" --batch 128
  row=("${gemma[@]}"); bench gemma_base "$base" --batch 128
fi
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
