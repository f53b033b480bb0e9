#!/usr/bin/env bash
# Issue 14 (paged decode speed) on the GPU machine: correctness first, then decode timed beside its floor.
# What it measures: the producer-warp loaders (DecodeConfig::producer, `--producer`): 1 = one producer warp issues the
# cp.async chunks and the compute warps wait on per-stage mbarriers (no block barrier per tile); 2 = the same warp
# moves each token row with one bulk copy (cp.async.bulk, TMA engine) into 16-byte-padded rows. Each is forced beside
# the heuristic default (producer 0) on the grid (32 q / 8 kv heads, d128, page 16, window 4096, kv 32768),
# bf16 and 8-bit, with the capacity schedule (--splits 0, as the heuristic).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_decode.sh CARRY_DIR LOG_DIR   (about 90 s)
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=$logs/decode.db SWAJIT_SHIPPED=0  # a fresh database, no shipped winners: heuristic or forced configs
rm -f "$SWAJIT_DB"
swajit=$carry/swajit
failed=""
step() { echo; echo "==== $*"; }
# A hung kernel (an mbarrier never completing) costs at most this long per command.
limited() { timeout 120 "$@"; }

step "check: the producer-warp cases (both loaders: head_dim 64/128/256, q4, sinks, splits, page 7, HND strided,"
echo "     128 rows, ragged capacity schedule, int8 and fp8), then the default's 8-bit, q_seqlen and ragged cases"
for filter in "producer" "int8 KV" "fp8 KV" "q_seqlen" "ragged batch"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1 || failed+=" check[$filter]"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench() {  # name, then bench decode flags
  local name=$1; shift
  step "bench $name: $*"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|floor|error"
}
# bf16 (session 3 runs C/D, heuristic bn64 wn4 st3: 11.2 / 13.7, 45.6 / 49.3, 145.5 / 151.9, 558.5 / 580.5 us;
# FlashInfer tc 15.3 / 15.6, 48.3, 145.8 / 148.6, 499.7 / 513.6)
bench bf16_default
bench bf16_pw1 --producer 1 --splits 0
bench bf16_pw2 --producer 2 --splits 0
bench bf16_pw2_bn32_wn2_st6 --producer 2 --block-n 32 --warps-n 2 --stages 6 --splits 0
bench bf16_pw2_st2 --producer 2 --stages 2 --splits 0
# 8-bit (heuristic bn128 wn4 st3; runs C/D: int8 b32 97.3 / b128 369.9, fp8 91.9 / 341.8 us)
for quant in int8 fp8; do
  bench ${quant}_default --kv-quant $quant
  bench ${quant}_pw2 --kv-quant $quant --producer 2 --block-n 128 --splits 0
done
[ -z "$failed" ]
