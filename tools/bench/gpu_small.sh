#!/usr/bin/env bash
# Issues 14 and 19 where the grid is small (bf16 decode, 32 q / 8 kv heads, d128, page 16, window 4096; it replaces
# session 7's gpu_decode.sh, with batch 128 on the uniform grid): correctness
# first (test_decode_gpu's work-schedule cases, the check matrix's direct-kernel and capacity-schedule cases with the
# defaults and with the knobs that stay off), then the rows the issues measure (uniform b1 / b8 / b32, ragged b8-b128
# of both distributions, q1 and q4), each with its floor and % of it, beside session 7's binary (BASE: CARRY/../mainJ,
# when carried) and this tree with session 8's new defaults off. Where the time goes: SWAJIT_DECODE_TIMELINE=1 swajit
# bench decode ... (tools/bench/RESULTS.md, session 8 run B).
# Usage (binaries from tools/bench/prepare_gpu_carry.sh, run from a checkout of main with its .carry/):
#   gpu_small.sh CARRY_DIR LOG_DIR        (about 100 s)
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
# The defaults (the direct grid's early trigger and prefetch), then the knobs that stay off.
check decode_check "direct kernel|capacity schedule, q_seqlen|learned sink logits, split" SWAJIT_DB=$db_dir/check.db
check decode_check_knobs "direct kernel" SWAJIT_DB=$db_dir/check_knobs.db SWAJIT_DECODE_KV_EVICT_FIRST=1 \
  SWAJIT_DECODE_TIMELINE=1
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

# The rows (issue 14: b1 <= 8 us, b8 >= 85%, b32 >= 92% of the floor, faster than FlashInfer: session 7's final run
# 14.6 / 48.0 / 142.9 us at q1; issue 19: >= 85% on every ragged row), this tree, then session 7's binary (BASE,
# mainJ) on the same rows, then this tree with the K/V evict-first hint on.
rows_of() {  # name, binary
  bench "$1_grid" "$2" "${grid[@]}" --batch 1,8,32,128 --q-seqlen 1,4
  bench "$1_loguniform" "$2" "${loguniform[@]}" --batch 8,32,64,128 --q-seqlen 1 --reps 20 --write-lengths "$logs/lengths/log-uniform"
  bench "$1_bimodal" "$2" "${bimodal[@]}" --batch 8,32,64,128 --q-seqlen 1 --reps 20 --write-lengths "$logs/lengths/bimodal"
  bench "$1_loguniform_q4" "$2" "${loguniform[@]}" --batch 8,32 --q-seqlen 4 --reps 20 --write-lengths "$logs/lengths/log-uniform"
  bench "$1_bimodal_q4" "$2" "${bimodal[@]}" --batch 8,32 --q-seqlen 4 --reps 20 --write-lengths "$logs/lengths/bimodal"
}
rows_of default new
rows_of BASE mainJ
(export SWAJIT_DECODE_KV_EVICT_FIRST=1
 bench evict_first_grid new "${grid[@]}" --batch 1,8 --q-seqlen 1,4
 bench evict_first_bimodal new "${bimodal[@]}" --batch 8,32 --q-seqlen 1,4 --reps 20)
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
rm -rf "$db_dir"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in log-uniform bimodal; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/$dist"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
