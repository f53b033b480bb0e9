#!/usr/bin/env bash
# Issue 14, 8-bit KV decode (int8 / fp8 e4m3) on the GPU machine: correctness first, then the grid's 8-bit rows timed
# beside their floor (KV bytes in the window, 1 byte per element, over the read bandwidth measured in the same process)
# for the default (heuristic) config and each knob forced, bf16 as the reference, FlashInfer's fp8-KV decode last.
# Knobs (DecodeConfig, CLI flags of `swajit bench decode`):
# - pages_first (`--pages-first true`, key _pf): the cp.async loaders read a tile's block_table entries before checking
#   any. Without it each thread's entries were read one after another (every read sat behind the range check and
#   status report of the one before; SASS of the 8-bit tile loop: 8 dependent LDG round trips per tile).
# - integer_scores (`--integer-scores true`, key _is, int8 only): the scores on the integer tensor cores (mma s8,
#   int32 accumulators), Q quantized per row to 14 bits (hi and lo int8 operands), the K bytes fed as stored.
# - tiles: bn64 wn2 (32 tokens a warp, as the default's bn128 wn4, in 4 blocks an SM instead of 2), producer 4 (TMA
#   page boxes: no loads in the compute warps), min_blocks (`--min-blocks 2`, key _oc2: registers capped for 2 blocks
#   an SM).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_kv8.sh CARRY_DIR LOG_DIR [mid]   (about 100 s)
# `mid` (the mid-session run) adds the knob sweeps; without it: the default, the knobs on the default tile, and
# FlashInfer fp8 beside them.
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}} mode=${3:-final}
here=$(cd "$(dirname "$0")" && pwd) root=$PWD
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder, no shipped winners: heuristic or forced configs.
export SWAJIT_DB=$(mktemp -d)/kv8.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $* ($(( $(date +%s) - start ))s into the script)"; }
limited() { timeout 60 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command

# FlashInfer's fp8 decode modules build on the host CPU while swajit runs (timed on the GPU only at the end).
fi_ok=0
if [ "$mode" != mid ] && ls "$root"/.whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$root"/.whl/*.whl \
    > "$logs/fi_install.log" 2>&1 && fi_ok=1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  jit_cache=(); [ -e "$root/.peers/flashinfer_jit_h200.tgz" ] && jit_cache=(--jit-cache "$root/.peers/flashinfer_jit_h200.tgz")
  [ $fi_ok = 1 ] && (timeout 100 python3 "$here/decode_peers.py" --cases fp8 --jit-only "${jit_cache[@]}" > "$logs/fi_jit.log" 2>&1 &)
fi

step "check: every 8-bit decode case (int8 KV, fp8 KV: the loaders, tiles, TMA pages, integer scores) and pages first"
for filter in "int8 KV" "fp8 KV" "pages first" "min blocks"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/kv8_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
done
grep -E "^FAIL|passed" "$logs/kv8_check.log"
grep -q "^FAIL" "$logs/kv8_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, then bench decode flags (after the grid's)
  local name=$1; shift
  step "bench $name: $*"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | grep -E "^\| [0-9]|^measured|rror"
}
tile128=(--block-n 128 --warps-n 4 --stages 3 --splits 0)  # the 8-bit default tile (heuristic.cpp)
tile64=(--block-n 64 --warps-n 2 --stages 3 --splits 0)
# 32 q / 8 kv heads, d128, page 16, window 4096, kv 32768; % of the halved floor on every row. Session 5 run C: fp8
# b32 96.5 (63%) / q4 107.9, b128 347.3 (70%) / q4 385.5; int8 b32 104.9, b128 380.3 (FlashInfer fp8 118.1 / 422.0).
grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1,4 --reps 15)
# Producer 4 (TMA pages, `_tma_oc2`) with the registers capped for 2 blocks an SM (240 -> 168 registers, no spills;
# uncapped, its 160-thread blocks ran one an SM: session 5 run B2, 3-4% slower than the default).
for q in fp8 int8; do
  bench ${q}_default --kv-quant $q
  bench ${q}_session5_default --kv-quant $q "${tile128[@]}"  # no knob: the default before session 6
  bench ${q}_pages_first --kv-quant $q "${tile128[@]}" --pages-first true
  bench ${q}_tma_oc2 --kv-quant $q "${tile128[@]}" --producer 4 --min-blocks 2
done
bench int8_integer_pages_first --kv-quant int8 "${tile128[@]}" --integer-scores true --pages-first true
grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1,4 --sink-logits --reps 15)
for q in fp8 int8; do bench ${q}_sinks_default --kv-quant $q; done
# bf16 reference rows (its own floor), default and pages first on the heuristic's tiles (b32: bn64 wn4, b128: bn32 wn2).
grid=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
bench bf16_default --batch 32,128
[ "$mode" != mid ] && bench bf16_b32_pages_first --batch 32 --block-n 64 --warps-n 4 --stages 3 --splits 0 --pages-first true
bench bf16_b128_pages_first --batch 128 --block-n 32 --warps-n 2 --stages 3 --splits 0 --pages-first true
# bf16 TMA pages with 2 blocks an SM (214 -> 168 registers; uncapped one 160-thread block an SM: run B2 146.6 / 536.1).
[ "$mode" = mid ] && bench bf16_tma_oc2 --batch 32,128 --block-n 64 --warps-n 4 --stages 3 --splits 0 --producer 4 --min-blocks 2
if [ "$mode" = mid ]; then
  grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1 --reps 15)
  bench int8_integer_bn64 --kv-quant int8 "${tile64[@]}" --integer-scores true --pages-first true
  bench int8_tma_oc2_integer --kv-quant int8 "${tile128[@]}" --producer 4 --min-blocks 2 --integer-scores true
fi

if [ $fi_ok = 1 ]; then
  step "FlashInfer 0.7.2 fp8-KV decode (tensor cores and CUDA cores), the same grid (its floor: bytes / its own probe)"
  timeout 90 python3 "$here/decode_peers.py" --cases fp8 --batches 32,128,256 --budget-s 80 "${jit_cache[@]}" 2>&1 |
    grep -vE "INFO|Warning" | tee "$logs/fi_fp8.log" | grep -E "kind=decode_peer|rror"
fi
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
