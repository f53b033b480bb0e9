#!/usr/bin/env bash
# Issue 14 (paged decode speed) on the GPU machine: correctness first, then decode timed beside its floor, the default
# (heuristic) config against each knob forced:
# - fused merge (DecodeConfig::fused_merge, `--fused-merge true`): a split-KV call launches no merge grid, the last
#   block of each cut (sequence, kv head) merges its items. Run B2 (session 5): slower at batch 1 (12.7 / q4 22.7 us
#   against 11.8 / 13.3), level at batch 8: off by default.
# - TMA page producer (DecodeConfig::producer 4, `--producer 4`): a producer warp moves each page of a tile with one
#   TMA box per 128 bytes of channels. Run B2: level with the default at head_dim 128 (b32 146.6 vs 151.1, b128 536.1
#   vs 528.3, b256 1041.5 vs 1051.7), 3-4% slower for fp8, 20% faster than producer 2 at Gemma's head_dim 256
#   (144.3 / 528.4 vs 173.7 / 660.1 us, 83% / 91% of the floor), which the heuristic now takes there.
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_decode.sh CARRY_DIR LOG_DIR   (about 90 s)
# Each bench row prints its floor (KV bytes in the window over the measured read bandwidth) and % of it.
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder (it grows to tens of MB), no shipped winners: heuristic or forced configs.
export SWAJIT_DB=$(mktemp -d)/decode.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $*"; }
limited() { timeout 60 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command

step "check: fused merge (every head_dim, q 1-8, sinks, capacity schedule, producer 2, 8-bit), producer 4 (TMA pages:"
echo "     pages 8-64, NHD/HND strided, tails and empty sequences, sinks apart, fused), the other producers"
for filter in "fused merge" "producer"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
step "test_decode_gpu: bad block_table entry (merge grid, fused, TMA), graph replays, graph beside eager calls"
limited "$carry/test_decode_gpu" -tc="decode: a sequence with an out-of-range*,work schedule*,concurrent streams: a graph*" \
  > "$logs/test_decode_gpu.log" 2>&1 || failed+=" test_decode_gpu"
tail -n 4 "$logs/test_decode_gpu.log"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, then bench decode flags
  local name=$1; shift
  step "bench $name: $* ($(( $(date +%s) - start ))s into the script)"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|floor|error"
}
# bf16, 32 q / 8 kv heads, d128, page 16, window 4096. Run B2: b1 11.8 / 13.3, b8 46.4 / 49.9 us (FlashInfer tc,
# session 4 run D: 14.6 / 14.9, 48.3 / 51.2).
grid=(--batch 1,8 --kv-len 32768 --q-seqlen 1,4 --reps 50)
bench small_default
bench small_fused --block-n 64 --warps-n 4 --stages 3 --splits 0 --fused-merge true
bench small_pw4 --block-n 64 --warps-n 4 --stages 3 --splits 0 --producer 4
# Run B2 q1: b32 151.1, b128 528.3, b256 1051.7 us (FlashInfer, run D: 145.0, 513.4, 998.1).
grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1,4 --reps 30)
bench large_default
bench large_pw4_bn64 --block-n 64 --warps-n 4 --stages 3 --splits 0 --producer 4
# fp8 KV, % of the halved floor (run B2: b32 95.8 (63%), b128 348.3 (69%); FlashInfer tc fp8, run D: 117.0 / 420.6)
grid=(--batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 30 --kv-quant fp8)
bench fp8_default
bench fp8_pw4_bn128 --block-n 128 --warps-n 4 --stages 3 --splits 0 --producer 4
# Gemma 3 head_dim 256 (32 q / 16 kv, window 1024): the heuristic now takes bn32 wn2 st3 producer 4 from batch 32
# (run B2 forced: 144.3 / 528.4 us); the former default, producer 2, beside it (run B2: 173.7 / 660.1).
grid=(--batch 8,32,128 --kv-len 32768 --q-seqlen 1 --reps 30 --num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024)
bench gemma_default
bench gemma_former_pw2 --block-n 32 --warps-n 2 --stages 3 --splits 0 --producer 2
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
