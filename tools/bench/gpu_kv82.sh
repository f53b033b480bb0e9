#!/usr/bin/env bash
# Issue 14, phase 2 (branch s3-kv82) on the GPU machine: correctness first, then decode timed with the floor.
# What the branch changes: fp8 e4m3 K/V widened by the hardware pair conversion (cvt.rn.f16x2.e4m3x2) into fp16
# mmas; the 8-bit heuristic tile is block_n 128 over 4 warp columns, 3 stages (same bytes per stage as bf16 block_n
# 64) instead of bn64 wn4 st5; the K/V tile loads unrolled so a thread's block_table reads issue together.
# The former 8-bit default is forced (--block-n 64 --warps-n 4 --stages 5) beside the new one in the same run;
# the former fp8 software widening is main's binary (run B: fp8 b32 146.1 us, b128 550 us; int8 133.6 / 498).
# Compare the bf16 rows with FlashInfer's tensor-core decode and the fp8 rows with its fp8-KV decode of the same
# device run (../shared/peers/flashinfer_peer.py, batch 32 and 128, kv 32768, q 1 and 4).
# Usage, from a checkout of s3-kv82 with .carry/ made by tools/bench/prepare_gpu_carry.sh:
#   tools/bench/gpu_kv82.sh CARRY_DIR LOG_DIR      (about 1.5 minutes: 2 checks, the matrix, 6 bench runs of 4 rows)
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=$logs/kv82.db  # a fresh database: every row runs the heuristic or the forced config
swajit=$carry/swajit
failed=""

echo "==== check: every 8-bit decode case (heuristic = bn128 wn4 st3; the former default bn64 wn4 st5 and bn128 wn8"
echo "     st3 forced), then the GPU suite's decode correctness matrix: expect PASS lines and 'Status: SUCCESS'"
"$swajit" check --device cuda --filter "int8 KV" > "$logs/kv82_check.log" 2>&1 || failed+=" int8-check"
"$swajit" check --device cuda --filter "fp8 KV" >> "$logs/kv82_check.log" 2>&1 || failed+=" fp8-check"
grep -E "^(PASS|FAIL)|passed|rror" "$logs/kv82_check.log"
grep -q "^FAIL" "$logs/kv82_check.log" && failed+=" check-FAIL-lines"
"$carry/test_decode_gpu" -tc="correctness matrix against the reference" > "$logs/kv82_tests.log" 2>&1 || failed+=" test_decode_gpu"
tail -n 4 "$logs/kv82_tests.log"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"
step() { echo; echo "==== $*"; }

grid=(--batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
step "bench bf16, heuristic (run B: b32 169.7/181.9, b128 637.5/683.7 us; FlashInfer tc 145.8/148.6, 499.7/513.6)"
"$swajit" bench decode "${grid[@]}" 2>&1 | tee "$logs/kv82_bf16.log" | grep -E "^\| [0-9]|floor"
for quant in int8 fp8; do
  step "bench $quant, new heuristic (bn128 wn4 st3) (run B heuristic bn64 wn4 st5: int8 133.6/147.7, 498/553; fp8 146.1/?, 550/605)"
  "$swajit" bench decode "${grid[@]}" --kv-quant $quant 2>&1 | tee "$logs/kv82_${quant}.log" | grep -E "^\| [0-9]|floor"
  configs=(64:4:5)
  [ $quant = int8 ] && configs+=(128:8:3)
  for cfg in "${configs[@]}"; do
    set -- ${cfg//:/ }
    step "bench $quant forced block_n=$1 warps_n=$2 stages=$3"
    "$swajit" bench decode "${grid[@]}" --kv-quant $quant --block-n $1 --warps-n $2 --stages $3 2>&1 |
      tee "$logs/kv82_${quant}_bn$1_wn$2_st$3.log" | grep -E "^\| [0-9]|floor"
  done
done
[ -z "$failed" ]
