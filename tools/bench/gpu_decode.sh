#!/usr/bin/env bash
# Issue 14 (paged decode speed) on the GPU machine: correctness first, then decode timed beside its floor.
# The producer-warp loaders (DecodeConfig::producer, `--producer`): 1 = one producer warp issues the cp.async chunks
# and the compute warps wait on per-stage mbarriers (no block barrier per tile); 2 = the producer moves each token
# row with one bulk copy (cp.async.bulk) into 16-byte-padded rows; 3 = as 2 with K and V on their own mbarriers.
# Device run B (session 4): at head_dim 128 all three were ~2x slower than the default (40% of the floor), 8-bit
# 4x slower; at head_dim 256 (Gemma 3) 32-token tiles with producer 2 were 25% faster at batch 32 / 128, which the
# heuristic now takes when every SM has a (sequence, kv head) pair. At head_dim 128 the heuristic now takes the
# tuner's H200 winner bn32 wn2 st3 once the pairs fill two blocks per SM (batch 128 here; runs C/D: 529.2 us against
# 558.5). This script checks every loader and those configs, then times the heuristic on the grid (bf16,
# int8, fp8) and Gemma, with the former defaults forced beside it.
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_decode.sh CARRY_DIR LOG_DIR   (about 100 s)
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder (it grows to tens of MB), no shipped winners: heuristic or forced configs.
export SWAJIT_DB=$(mktemp -d)/decode.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $*"; }
limited() { timeout 45 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command

step "check: the producer-warp cases (loaders 1-3: head_dim 64/128/256, q4, sinks, splits, page 7, HND strided,"
echo "     128 rows, ragged capacity schedule, Gemma's bn32 wn2 st3, int8 and fp8), then 8-bit, q_seqlen, learned sinks"
for filter in "producer" "KV, " "q_seqlen" "learned sink"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, then bench decode flags
  local name=$1; shift
  step "bench $name: $* ($(( $(date +%s) - start ))s into the script)"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|floor|error"
}
# bf16 grid (run B default: 11.2 / 13.8, 46.3 / 49.9, 146.0 / 152.4, 560.3 / 583.5 us; FlashInfer tc, run A:
# 15.3 / 15.6, 48.3 / 51.2, 145.5 / 148.9, 511.6 / 526.6)
grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench bf16_default
grid=(--batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench bf16_former_default_bn64_wn4_st3 --block-n 64 --warps-n 4 --stages 3 --splits 0
bench bf16_pw2 --producer 2 --splits 0
# 8-bit (run A: fp8 b32 92.0 / 97.2, b128 342.1 / 365.0; run B fp8 producer 2: 563 / 2343)
grid=(--batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench int8_default --kv-quant int8
bench fp8_default --kv-quant fp8
bench fp8_sinks_default --kv-quant fp8 --sink-logits
# Gemma 3 head_dim 256 (32 q / 16 kv heads, window 1024): the heuristic takes bn32 wn2 st3 producer 2 from batch 32
# (512 pairs >= 132 SMs); run B: b8 55.5, b32 211.6 -> 159.3, b128 817.9 -> 613.4 us
grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50 --num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024)
bench gemma_d256_default
bench gemma_d256_bn64_pw0 --block-n 64 --warps-n 4 --stages 2 --splits 0
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
