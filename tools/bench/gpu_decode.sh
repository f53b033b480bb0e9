#!/usr/bin/env bash
# Issue 14 (paged decode speed) on the GPU machine: correctness first, then decode timed beside its floor.
# What it measures: the producer-warp loaders (DecodeConfig::producer, `--producer`): 1 = one producer warp issues the
# cp.async chunks and the compute warps wait on per-stage mbarriers (no block barrier per tile); 2 = the same warp
# moves each token row with one bulk copy (cp.async.bulk, TMA engine) into 16-byte-padded rows; 3 = as 2 with K and V
# completing on their own mbarriers (the scores start before V lands). Each is forced beside
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
failed="" start=$(date +%s)
step() { echo; echo "==== $*"; }
# A hung kernel (an mbarrier never completing) costs at most this long per command; a producer check that timed out
# skips the producer benches.
limited() { timeout 45 "$@"; }
producer_hung=0

step "check: the producer-warp cases (both loaders: head_dim 64/128/256, q4, sinks, splits, page 7, HND strided,"
echo "     128 rows, ragged capacity schedule, int8 and fp8), then the default's (prologue now fills every stage): fp8,"
echo "     q_seqlen 1..8"
for filter in "producer" "fp8 KV" "q_seqlen"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
  [ $rc -eq 124 ] && [ "$filter" = producer ] && producer_hung=1
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench() {  # name, then bench decode flags
  local name=$1; shift
  if [ $producer_hung = 1 ] && [[ "$*" == *--producer* ]]; then echo "==== skipped $name (producer check hung)"; return; fi
  step "bench $name: $* ($(( $(date +%s) - start ))s into the script)"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|floor|error"
}
# The default (producer 0) now requests every stage's tile in the prologue: batch 1's items of 3 tiles make one round
# trip to memory instead of two (the suspected batch-1 regression, 9.6 -> 11.2 us).
# bf16 (session 3 runs C/D, heuristic bn64 wn4 st3: 11.2 / 13.7, 45.6 / 49.3, 145.5 / 151.9, 558.5 / 580.5 us;
# FlashInfer tc 15.3 / 15.6, 48.3, 145.8 / 148.6, 499.7 / 513.6)
bench bf16_default
bench bf16_pw2 --producer 2 --splits 0
bench bf16_pw3 --producer 3 --splits 0
# 8-bit (heuristic bn128 wn4 st3; run A: fp8 b32 92.0 / 97.2 (q4), b128 342.1 / 365.0; runs C/D int8 97.3 / 369.9)
grid=(--batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench fp8_pw2 --kv-quant fp8 --producer 2 --block-n 128 --splits 0
bench fp8_pw3 --kv-quant fp8 --producer 3 --block-n 128 --splits 0
bench int8_pw2 --kv-quant int8 --producer 2 --block-n 128 --splits 0
# Gemma 3 head_dim 256 (32 q / 16 kv heads, window 1024; run A heuristic: b8 55.3, b32 213.7, b128 831.1 us, 55-59%):
# the heuristic's bn64 tile leaves 2 stages and 1 block per SM at d256; bn32 wn2 st3 keeps 2 blocks of 3 stages.
grid=(--batch 8,32,128 --kv-len 32768 --q-seqlen 1 --reps 50 --num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024)
bench gemma_d256_default
bench gemma_d256_bn32_wn2_st3 --block-n 32 --warps-n 2 --stages 3 --splits 0
bench gemma_d256_bn32_wn2_st3_pw2 --block-n 32 --warps-n 2 --stages 3 --splits 0 --producer 2
# the cp.async producer; more bytes in flight per SM: 3 blocks of 2 stages, or 2 blocks of 6 narrower stages
grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1 --reps 50)
bench bf16_pw1 --producer 1 --splits 0
bench bf16_pw2_st2 --producer 2 --stages 2 --splits 0
bench bf16_pw2_bn32_wn2_st6 --producer 2 --block-n 32 --warps-n 2 --stages 6 --splits 0
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
