#!/usr/bin/env bash
# Issues 14 and 19 (bf16 paged decode) on the GPU machine: correctness first, then the ragged distributions and the
# uniform grid, each row with its floor and % of it, beside BASE binaries on the very same rows in the same run:
# - mainI: session 6's end (the scheduled kernel with a one-item copy of the item body beside its loop, and the direct
#   kernel, all in one module), mainH: session 5's end (one kernel, one copy of the item body).
# - this tree: each module holds one grid (DecodeConfig::direct_grid, chosen per call), the scheduled kernel one copy.
# Usage (binaries from tools/bench/prepare_gpu_carry.sh, run from a checkout of main with its .carry/):
#   gpu_decode.sh CARRY_DIR LOG_DIR        (about 100 s; every bench row takes about a second, a first compile 1-3 s)
# BASE rows use CARRY_DIR/../mainI and CARRY_DIR/../mainH when they are there (main's .carry/mainI, .carry/mainH).
# FlashInfer on the same ragged lengths: tools/bench/ragged_peer.py LOG_DIR/lengths/<distribution> (printed at the end).
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
libs=$carry/lib:$carry/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH=$libs
# A fresh database outside the log folder (it grows to tens of MB), no shipped winners: heuristic or forced configs.
db_dir=$(mktemp -d)
export SWAJIT_DB=$db_dir/decode.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $*  ($(( $(date +%s) - start ))s into the script)"; }
limited() { local s=$1; shift; timeout "$s" "$@"; }  # a hung kernel (an mbarrier never completing) costs at most $s
rows() { grep -E "^\| [0-9]|error|FAIL"; }

step "test_decode_gpu: graph replays as lengths change (scheduled grid; direct grid from equal host lengths)"
limited 40 "$carry/test_decode_gpu" -tc="work schedule*" > "$logs/test_decode_gpu.log" 2>&1 || failed+=" test_decode_gpu"
grep -E "test cases|assertions|Status" "$logs/test_decode_gpu.log"
step "check: the capacity schedule over 16 kv heads (ragged and uniform), the direct kernel (batch 1 cuts, ragged num_splits 1)"
for filter in "capacity schedule, 16 kv heads" "direct kernel"; do
  limited 60 "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1 || failed+=" check[$filter]"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, binary dir ("new": this tree; "new_one_item": with the one-item path), then bench decode flags
  local name=$1 dir=$2; shift 2
  local bin=$swajit lib=$libs
  case $dir in
    new) ;;
    new_one_item) export SWAJIT_DECODE_ONE_ITEM_PATH=1 ;;
    *) bin=$carry/../$dir/swajit lib=$carry/../$dir/lib:$libs
       [ -x "$bin" ] || { echo "(no $bin: $name skipped)"; return; }
       export SWAJIT_DB=$db_dir/$dir.db ;;
  esac
  step "bench $name: $*"
  LD_LIBRARY_PATH=$lib limited 40 "$bin" bench decode "$@" 2>&1 | tee "$logs/bench_$name.log" | rows
  export SWAJIT_DB=$db_dir/decode.db
  unset SWAJIT_DECODE_ONE_ITEM_PATH
}
# Ragged, q1, the regressed rows (session 7 run B, us: mainI log-uniform 41.8 / 126.9 / 210.2, bimodal 50.0 / 85.5 /
# 145.1; mainH 28.4 / 120.0 / 206.3 and 43.8 / 73.7 / 136.2; FlashInfer (session 6 run C) 29.6 / 112.9 / 206.4 and
# 72.0 / 96.4 / 150.4). Bar: 85% of the floor, faster than FlashInfer.
mkdir -p "$logs/lengths/log-uniform" "$logs/lengths/bimodal"
ragged=(--q-seqlen 1 --seed 1 --reps 20)
for who in new new_one_item mainH mainI; do
  bench "ragged_log-uniform_$who" $who --batch 8,32,64 --distribution log-uniform:128:131072 "${ragged[@]}" \
    $([ $who = new ] && echo --write-lengths "$logs/lengths/log-uniform")
  bench "ragged_bimodal_$who" $who --batch 32,64,128 --distribution bimodal:512:131072:0.125 "${ragged[@]}" \
    $([ $who = new ] && echo --write-lengths "$logs/lengths/bimodal")
done
# The uniform grid with the lengths on the device (the scheduled grid, one item a block): what the one-item copy was
# for (run B: b128 q4 577.1 without it, 545.7 with it (mainI); b8 q4 51.1 / 49.0; q1 b128 521.0 / 532.4).
for who in new new_one_item mainI; do
  bench "grid_$who" $who --kv-len 32768 --q-seqlen 1,4 --reps 20 --batch 8,128
done
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in log-uniform bimodal; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/$dist"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
