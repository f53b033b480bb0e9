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
# - producer 4 (TMA page boxes: no loads in the compute warps) with min_blocks (`--min-blocks 2`, key _oc2: registers
#   capped for 2 blocks an SM; uncapped the 160-thread blocks ran one an SM): the 8-bit default on sm_90 since run B2.
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_kv8.sh CARRY_DIR LOG_DIR [mid]
# `mid` (a mid-session run, under 90 s): the default against the session-5 default; without it (the final run, about
# 2 minutes): also pages_first alone and int8 integer scores, and FlashInfer fp8 beside them.
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
tile128=(--block-n 128 --warps-n 4 --stages 3 --splits 0)  # the 8-bit tile (heuristic.cpp)
# 32 q / 8 kv heads, d128, page 16, window 4096, kv 32768; % of the halved floor on every row. The default (heuristic)
# is producer 4 + min_blocks 2 (+ pages_first for tiles the TMA producer gathers); beside it the session-5 default
# (the same tile, every warp loading, no knob) and, in the final run, pages_first alone (the fallback for layouts TMA
# cannot read). Run B2 (session 6), q1 b32 / b128 / b256: fp8 85.0 / 288.3 / 555.0 us (72% / 84% / 88%) against
# 96.3 / 343.8 / 684.8; int8 85.5 / 296.2 / 568.4 against 103.3 / 372.5 / 739.4 (FlashInfer fp8, session 5 run C:
# 118.1 / 422.0 at b32 / b128).
grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1,4 --reps 15)
for q in fp8 int8; do
  bench ${q}_default --kv-quant $q
  bench ${q}_session5_default --kv-quant $q "${tile128[@]}"
  [ "$mode" != mid ] && bench ${q}_pages_first --kv-quant $q "${tile128[@]}" --pages-first true
done
[ "$mode" != mid ] && bench int8_tma_oc2_integer --kv-quant int8 "${tile128[@]}" --producer 4 --min-blocks 2 --integer-scores true
grid=(--batch 32,128,256 --kv-len 32768 --q-seqlen 1,4 --sink-logits --reps 15)
for q in fp8 int8; do bench ${q}_sinks_default --kv-quant $q; done
# bf16 reference rows (its own floor; its default is helper decode's), and the knobs on bf16 for the lead: pages first
# on the b128 tile (bn32 wn2), TMA pages with 2 blocks an SM (214 -> 168 registers).
grid=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
bench bf16_default --batch 32,128
bench bf16_b128_pages_first --batch 128 --block-n 32 --warps-n 2 --stages 3 --splits 0 --pages-first true
[ "$mode" = mid ] && bench bf16_tma_oc2 --batch 32,128 --block-n 64 --warps-n 4 --stages 3 --splits 0 --producer 4 --min-blocks 2

if [ $fi_ok = 1 ]; then
  step "FlashInfer 0.7.2 fp8-KV decode (tensor cores and CUDA cores), the same grid (its floor: bytes / its own probe)"
  timeout 40 python3 "$here/decode_peers.py" --cases fp8 --batches 32,128,256 --budget-s 35 "${jit_cache[@]}" 2>&1 |
    grep -vE "INFO|Warning" | tee "$logs/fi_fp8.log" | grep -E "kind=decode_peer|rror"
fi
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
