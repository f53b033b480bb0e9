#!/usr/bin/env bash
# Issue 14 on the GPU machine, helper kv8's rows: 8-bit KV (int8 / fp8 e4m3) at batch 32 and q_seqlen 4, pages of one
# token, Gemma 3 (32 q / 16 kv heads, head_dim 256, window 1024) at batch 8. Correctness first, then each row timed
# beside its floor (KV bytes the window reads over the read bandwidth measured in the same process; 8-bit: 1 byte an
# element) for the default (heuristic) config, each knob forced and BASE (session 6's binary, .carry/mainI).
# Knobs (DecodeConfig, CLI flags of `swajit bench decode`, key suffixes):
# - pages_ahead (`--pages-ahead true`, _pa): the every-warp loader reads the block_table entries of the tile it copies
#   next a tile step earlier (registers), so their latency passes during a tile's math. Pages of one token: one entry
#   per row, a DRAM round trip per tile that every warp waited for before its copies.
# - pages_first (`--pages-first true`, _pf): a tile's entries read before any is checked (session 6).
# - producer 4 + min_blocks 2 (TMA pages, _pw4_oc2): the 8-bit default on sm_90 (session 6).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_kv8.sh CARRY_DIR LOG_DIR [explore|explore2|verify]
# `explore` (run B), `explore2` (run B2): the knobs and tiles tried for each row; without it (the final run): check, then the rows'
# default against BASE; `verify`: the final run's rows with fewer checks and int8 on the fp8 default's loaders.
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}} mode=${3:-final}
here=$(cd "$(dirname "$0")" && pwd) root=$PWD
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib:$root/.carry/lib:$root/.carry/mainI/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder, no shipped winners: heuristic or forced configs.
export SWAJIT_DB=$(mktemp -d)/kv8.db SWAJIT_SHIPPED=0
swajit=$carry/swajit base=$root/.carry/mainI/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $* ($(( $(date +%s) - start ))s into the script)"; }
limited() { timeout 45 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command

step "check: pages ahead (page 1, 7, HND, 8-bit, d64 / d256), page-1 and 8-bit cases of the matrix"
filters=("pages ahead" "page_size 1" "gemma 3 shape")
[ "$mode" = final ] && filters+=("fp8 KV")  # every fp8 case: the fp8 default changed (every warp loading, ahead)
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
wide=(--block-n 64 --warps-n 4 --stages 3 --splits 0)    # the 16-bit default tile (heuristic.cpp), b32 and under
narrow=(--block-n 32 --warps-n 2 --stages 3 --splits 0)  # the heuristic's 16-bit tile at b128 / b256 (head_dim 128)

# (b) Pages of one token, grid shape (32 q / 8 kv heads, d128, window 4096, kv 32768), q1. Session 6 run C: b32 272.7,
# b128 812.2, b256 1601.6 us against FlashInfer 145.9 / 520.7 / 1018.3 (page 16: 151.7 / 532.2 / 1057.9).
row=(--page-size 1 --kv-len 32768 --q-seqlen 1 --reps 15)
if [ "$mode" = explore ]; then
  bench p1_default "$swajit" --batch 32,128,256
  bench p1_wide_ahead "$swajit" --batch 32,128,256 "${wide[@]}" --pages-ahead true
  bench p1_narrow_ahead "$swajit" --batch 128,256 "${narrow[@]}" --pages-ahead true
  bench p1_narrow_st4_ahead "$swajit" --batch 32,128,256 --block-n 32 --warps-n 2 --stages 4 --splits 0 --pages-ahead true
  bench p1_producer1_first "$swajit" --batch 32,128,256 --block-n 32 --warps-n 2 --stages 4 --splits 0 --producer 1 --pages-first true
fi

# (c) Gemma 3 (32 q / 16 kv heads, head_dim 256, window 1024, page 16), q1. Session 6 run C: b1 11.6, b8 57.4, b32
# 143.5 against FlashInfer 16.7 / 49.2 / 151.4. At b8 the default (bn64 wn4 st2, one block an SM) runs its 128 pairs
# uncut, one tile in flight each.
row=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 --reps 15)
if [ "$mode" = explore ]; then
  bench gemma_default "$swajit" --batch 1,8,32
  bench gemma_tma_narrow "$swajit" --batch 1,8,32 --block-n 32 --warps-n 2 --stages 3 --splits 0 --producer 4
  bench gemma_tma_narrow_sp4 "$swajit" --batch 8 --block-n 32 --warps-n 2 --stages 3 --splits 4 --producer 4
fi

# (a) 8-bit KV at b32 (256 pairs over 264 two-a-SM slots: one pair a block, uncut), q1 and q4. Session 6 run C: fp8
# 84.8 (72% of the halved floor) / 90.7.
row=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
if [ "$mode" = explore ]; then
  bench fp8_b32_default "$swajit" --batch 32 --kv-quant fp8
  bench fp8_b32_host "$swajit" --batch 32 --kv-quant fp8 --host-lengths true
  bench fp8_b32_bn64_oc3 "$swajit" --batch 32 --kv-quant fp8 --block-n 64 --warps-n 2 --stages 4 --splits 0 --producer 4 --min-blocks 3 --pages-first true
fi

# Run B2: pages_ahead beyond pages of one token (16-bit page 16 on the heuristic's tiles, Gemma 3 every warp loading,
# 8-bit every warp loading against the TMA pages), and the new defaults (page 1: pages_ahead; Gemma b8: TMA bn32).
if [ "$mode" = explore2 ]; then
  row=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
  bench p16_default "$swajit" --batch 32,128,256
  bench p16_wide_ahead "$swajit" --batch 32 "${wide[@]}" --pages-ahead true
  bench p16_narrow_ahead "$swajit" --batch 128,256 "${narrow[@]}" --pages-ahead true
  row=(--page-size 1 --kv-len 32768 --q-seqlen 1 --reps 15)
  bench p1_default "$swajit" --batch 1,32,128,256
  row=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 --reps 15)
  bench gemma_default "$swajit" --batch 1,8,32,128,256
  bench gemma_narrow_ahead "$swajit" --batch 128,256 "${narrow[@]}" --pages-ahead true
  row=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
  bench fp8_default "$swajit" --batch 32,128 --kv-quant fp8
  bench fp8_allwarps_ahead "$swajit" --batch 32,128 --kv-quant fp8 --block-n 128 --warps-n 4 --stages 3 --splits 0 --pages-first true --pages-ahead true
  row=(--page-size 1 --kv-len 32768 --q-seqlen 1 --reps 15)
  bench fp8_p1_default "$swajit" --batch 32,128 --kv-quant fp8
  bench fp8_p1_ahead "$swajit" --batch 32,128 --kv-quant fp8 --block-n 128 --warps-n 4 --stages 3 --splits 0 --pages-first true --pages-ahead true
fi

# The final run: the issue's rows on the defaults, BASE (session 6's binary) beside the changed ones. Run B2 (s7-kv8
# at d4fdcd5): page 1 q1 b1 / b32 / b128 / b256 10.8 / 136.8 / 507.8 / 998.4 us; Gemma b8
# 46.0; page 16 with pages ahead q1 135.1 / 507.3 / 988.1, q4 140.6 / 516.4 / 1008.5; fp8 every warp loading a tile
# step ahead b32 / b128 q1 79.8 / 288.0, q4 87.5 / 312.2.
if [ "$mode" = final ] || [ "$mode" = verify ]; then
  # The defaults first (fp8's is new and not yet timed at b256), BASE after them.
  fp8=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant fp8)
  p16=(--kv-len 32768 --q-seqlen 1,4 --reps 15)
  p1=(--page-size 1 --kv-len 32768 --q-seqlen 1 --reps 15)
  gemma=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768 --q-seqlen 1 --reps 15)
  row=("${fp8[@]}"); bench fp8_default "$swajit" --batch 32,128,256  # FlashInfer fp8 (s6 run C): 117.6 / 422.0 / 819.4
  row=("${p16[@]}"); bench p16_default "$swajit" --batch 32,128,256  # FlashInfer tc (s5/s6): 145.5 / 511.8 / 996.2
  row=("${p1[@]}"); bench p1_default "$swajit" --batch 1,32,128,256  # FlashInfer (s6 run C): 15.5 / 145.9 / 520.7 / 1018.3
  row=("${gemma[@]}"); bench gemma_default "$swajit" --batch 1,8,32,128,256  # FlashInfer (s6 C): 16.7 / 49.2 / 151.4 / 523.9 / 1012.0
  row=("${fp8[@]}"); bench fp8_base "$base" --batch 32,256
  row=("${p16[@]}"); bench p16_base "$base" --batch 32,128
  row=("${p1[@]}"); bench p1_base "$base" --batch 32,128
  row=("${gemma[@]}"); bench gemma_base "$base" --batch 8
  row=("${fp8[@]}"); bench fp8_sinks_default "$swajit" --batch 32 --sink-logits
  row=(--kv-len 32768 --q-seqlen 1,4 --reps 15 --kv-quant int8)
  bench int8_default "$swajit" --batch 32
  # (verify: int8 every warp loading a tile step ahead, the fp8 default's loaders, against its TMA pages)
  [ "$mode" = verify ] && bench int8_allwarps_ahead "$swajit" --batch 32,128 --block-n 128 --warps-n 4 --stages 3 --splits 0 --pages-first true --pages-ahead true
fi
echo "==== done in $(( $(date +%s) - start )) s"
[ -z "$failed" ]
