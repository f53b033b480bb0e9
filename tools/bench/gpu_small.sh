#!/usr/bin/env bash
# Issues 14 and 19 where the grid is small (bf16 decode, 32 q / 8 kv heads, d128, page 16, window 4096): correctness
# first, then where the time goes (SWAJIT_DECODE_TIMELINE=1: every block's %globaltimer stamps, median / max over
# blocks, for batch 1 and 8 of the uniform grid and bimodal batch 8 / 32, q1 and q4), then the rows the issues measure
# (uniform b1 / b8 / b32, ragged b8-b128 of both distributions, q1 and q4), each with its floor and % of it, beside
# session 7's binary (BASE: CARRY/../mainJ, when carried).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh, run from a checkout of main with its .carry/):
#   gpu_small.sh CARRY_DIR LOG_DIR        (under 110 s)
# FlashInfer on the same ragged lengths: tools/bench/ragged_peer.py LOG_DIR/lengths/<distribution>.
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:?usage: gpu_small.sh CARRY_DIR LOG_DIR}
mkdir -p "$logs/lengths/log-uniform" "$logs/lengths/bimodal"
logs=$(cd "$logs" && pwd)
libs=$carry/lib:$carry/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH=$libs
db_dir=$(mktemp -d)  # fresh databases (tens of MB: not in the logs), no shipped winners: heuristic or forced configs
export SWAJIT_DB=$db_dir/decode.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $*  ($(( $(date +%s) - start ))s into the script)"; }
rows() { grep -E "^\| [0-9]|^timeline|error|FAIL"; }

step "correctness: test_decode_gpu work schedule (graph replays as lengths change); check: direct kernel, capacity schedule"
timeout 30 "$carry/test_decode_gpu" -tc="work schedule*" > "$logs/test_decode_gpu.log" 2>&1 || failed+=" test_decode_gpu"
grep -E "test cases|assertions|Status" "$logs/test_decode_gpu.log"
check() {  # log name, filters (a|b), then environment assignments for the check
  local name=$1 filters=$2; shift 2
  local IFS='|'
  for filter in $filters; do
    env "$@" timeout 40 "$swajit" check --device cuda --filter "$filter" >> "$logs/$name.log" 2>&1 || failed+=" $name[$filter]"
  done
  grep -E "^FAIL|passed" "$logs/$name.log" | sed "s/^/$name: /"
  grep -q "^FAIL" "$logs/$name.log" && failed+=" $name-FAIL-lines"
}
knobs=(SWAJIT_DECODE_KV_EVICT_FIRST=1 SWAJIT_DECODE_EARLY_TRIGGER=1 SWAJIT_DECODE_PREFETCH=1)
check decode_check "direct kernel" SWAJIT_DB=$db_dir/check.db
check decode_check_knobs "direct kernel|capacity schedule, q_seqlen" SWAJIT_DB=$db_dir/check_knobs.db "${knobs[@]}"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, binary ("new": this tree, or a directory beside CARRY_DIR), then bench decode flags
  local name=$1 dir=$2; shift 2
  local bin=$swajit lib=$libs
  if [ "$dir" != new ]; then
    bin=$carry/../$dir/swajit lib=$carry/../$dir/lib:$libs
    [ -x "$bin" ] || { echo "(no $bin: $name skipped)"; return; }
  fi
  step "bench $name: $*"
  SWAJIT_DB=$db_dir/$dir.db LD_LIBRARY_PATH=$lib timeout 40 "$bin" bench decode "$@" 2>&1 | tee "$logs/bench_$name.log" | rows
}
grid=(--kv-len 32768 --reps 20)
bimodal=(--distribution bimodal:512:131072:0.125 --seed 1)
loguniform=(--distribution log-uniform:128:131072 --seed 1)

# 1. Where the time goes with the K/V copies evict-first in L2 (run B: 2-5 us from the lengths to the first copies).
(export SWAJIT_DECODE_TIMELINE=1 SWAJIT_DECODE_KV_EVICT_FIRST=1
 bench timeline_evict_first_uniform new "${grid[@]}" --batch 1,8 --q-seqlen 1
 bench timeline_evict_first_bimodal new "${bimodal[@]}" --batch 8 --q-seqlen 1,4 --reps 20)

# 2. The rows (issue 14: b1 <= 8 us, b8 >= 85%, b32 >= 92% of the floor; issue 19: >= 85% on every ragged row), this
# tree's default, the knobs, and session 7's binary (BASE, mainJ) on the same rows.
rows_of() {  # name, binary
  bench "$1_grid" "$2" "${grid[@]}" --batch 1,8,32 --q-seqlen 1,4
  bench "$1_loguniform" "$2" "${loguniform[@]}" --batch 8,32,128 --q-seqlen 1 --reps 20 --write-lengths "$logs/lengths/log-uniform"
  bench "$1_loguniform_q4" "$2" "${loguniform[@]}" --batch 8,32 --q-seqlen 4 --reps 20 --write-lengths "$logs/lengths/log-uniform"
  bench "$1_bimodal" "$2" "${bimodal[@]}" --batch 8,32,128 --q-seqlen 1 --reps 20 --write-lengths "$logs/lengths/bimodal"
  bench "$1_bimodal_q4" "$2" "${bimodal[@]}" --batch 8,32 --q-seqlen 4 --reps 20 --write-lengths "$logs/lengths/bimodal"
}
rows_of default new
(export SWAJIT_DECODE_KV_EVICT_FIRST=1; rows_of evict_first new)
(export "${knobs[@]}"; bench evict_first_early_trigger_prefetch_grid new "${grid[@]}" --batch 1,8 --q-seqlen 1,4)
rows_of BASE mainJ
# q4 without the scheduled module's one-item copy (its code is larger; run B: q4 starts 3-5 us later than q1)
(export SWAJIT_DECODE_ONE_ITEM_PATH=0; bench one_item_path_off_bimodal_q4 new "${bimodal[@]}" --batch 8,32 --q-seqlen 4 --reps 20)
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
rm -rf "$db_dir"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in log-uniform bimodal; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/$dist"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
