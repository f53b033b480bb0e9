#!/usr/bin/env bash
# Issues 14 and 19 (bf16 paged decode) on the GPU machine: correctness first, then the uniform grid and the ragged
# distributions (q1 and q4), each row with its floor and % of it, beside BASE binaries on the same rows:
# .carry/mainH (session 5's end), found beside CARRY_DIR (CARRY_DIR/../mainH).
# Each decode module holds one grid's kernel (DecodeConfig::direct_grid, picked per call: num_splits 1, batch 1, pairs
# too short to cut, equal lengths the host knows take the direct grid; device-only lengths the scheduled one).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh, run from a checkout of main with its .carry/):
#   gpu_decode.sh CARRY_DIR LOG_DIR        (about 105 s: the checks about 55 s, then 32 bench rows of about a second)
# FlashInfer on the same ragged lengths: tools/bench/ragged_peer.py LOG_DIR/lengths/<distribution> (printed at the end).
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs/lengths/log-uniform" "$logs/lengths/bimodal"
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
step "check: the capacity schedule over 16 kv heads (ragged, uniform, fused merge), the direct kernel (batch 1 cuts, ragged num_splits 1)"
for filter in "capacity schedule, 16 kv heads" "direct kernel"; do
  limited 60 "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1 || failed+=" check[$filter]"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, binary ("new": this tree, or a directory beside CARRY_DIR), then bench decode flags
  local name=$1 dir=$2; shift 2
  local bin=$swajit lib=$libs
  if [ "$dir" != new ]; then
    bin=$carry/../$dir/swajit lib=$carry/../$dir/lib:$libs
    [ -x "$bin" ] || { echo "(no $bin: $name skipped)"; return; }
    export SWAJIT_DB=$db_dir/$dir.db
  fi
  step "bench $name: $*"
  LD_LIBRARY_PATH=$lib limited 40 "$bin" bench decode "$@" 2>&1 | tee "$logs/bench_$name.log" | rows
  export SWAJIT_DB=$db_dir/decode.db
}
# bf16, 32 q / 8 kv heads, d128, page 16, window 4096, kv 32768. Bars (issue 14): faster than FlashInfer (session 6
# run C: b1 14.6, b256 996.2 / 1024.6; session 5: b8 48.2, b32 145.5, b128 511.8), 92% of the floor at b >= 32,
# b1 <= 8 us, q4 <= 1.10x q1.
bench grid_default new --kv-len 32768 --q-seqlen 1,4 --reps 20 --batch 1,8,32,128,256
bench grid_host_lengths new --kv-len 32768 --q-seqlen 1 --reps 20 --batch 32,256 --host-lengths true
# Ragged (issue 19): 85% of the floor and faster than FlashInfer on every row (session 6 run C, FlashInfer q1:
# log-uniform 29.6 / 112.9 / 206.4 / 336.5 / 606.4, bimodal 17.9 / 72.0 / 96.4 / 150.4 / 257.9).
for dist in log-uniform:128:131072 bimodal:512:131072:0.125; do
  name=${dist%%:*}
  bench "ragged_$name" new --batch 8,32,64,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 20 \
    --write-lengths "$logs/lengths/$name"
  bench "ragged_${name}_q4" new --batch 8,64,256 --q-seqlen 4 --distribution "$dist" --seed 1 --reps 20 \
    --write-lengths "$logs/lengths/$name"
done
# BASE on the rows session 6 regressed, q1: mainH (session 5's end; session 7 run B2: log-uniform 28.3 / 120.8 /
# 206.3, bimodal 43.7 / 73.9 / 136.8; this tree then 28.1 / 117.3 / 194.7 and 43.1 / 71.6 / 132.0).
bench BASE_ragged_log-uniform_mainH mainH --batch 8,32,64 --q-seqlen 1 --distribution log-uniform:128:131072 --seed 1 --reps 20
bench BASE_ragged_bimodal_mainH mainH --batch 32,64,128 --q-seqlen 1 --distribution bimodal:512:131072:0.125 --seed 1 --reps 20
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in log-uniform bimodal; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/$dist"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
