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

knobs_all=(SWAJIT_DECODE_EARLY_TRIGGER=1 SWAJIT_DECODE_PREFETCH=1 SWAJIT_DECODE_PROLOGUE_PAGES=1 SWAJIT_DECODE_CLUSTER_MERGE=1)
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
check decode_check "direct kernel" SWAJIT_DB=$db_dir/check.db
check decode_check_knobs "direct kernel|capacity schedule, q_seqlen" SWAJIT_DB=$db_dir/check_knobs.db "${knobs_all[@]}" SWAJIT_DECODE_TIMELINE=1
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

# 1. Where the time goes: the timeline build (its own modules: the stamps are compiled in only with the variable set).
export SWAJIT_DECODE_TIMELINE=1
bench timeline_uniform new "${grid[@]}" --batch 1,8 --q-seqlen 1,4
bench timeline_bimodal new "${bimodal[@]}" --batch 8,32 --q-seqlen 1,4 --reps 20
forced=(--block-n 64 --warps-n 4 --stages 3 --pages-ahead true --splits 0)  # batch 1's default, forced as is and fused
bench timeline_b1_forced new "${grid[@]}" --batch 1 --q-seqlen 1 "${forced[@]}"
bench timeline_b1_fused_merge new "${grid[@]}" --batch 1 --q-seqlen 1 "${forced[@]}" --fused-merge true
unset SWAJIT_DECODE_TIMELINE

# 2. The rows (issue 14: b1 <= 8 us, b8 >= 85%, b32 >= 92% of the floor; issue 19: >= 85% on every ragged row).
bench grid new "${grid[@]}" --batch 1,8,32 --q-seqlen 1,4
bench BASE_grid mainJ "${grid[@]}" --batch 1,8 --q-seqlen 1,4
bench ragged_loguniform new "${loguniform[@]}" --batch 8,32,64,128 --q-seqlen 1,4 --reps 20 --write-lengths "$logs/lengths/log-uniform"
bench ragged_bimodal new "${bimodal[@]}" --batch 8,32,64,128 --q-seqlen 1,4 --reps 20 --write-lengths "$logs/lengths/bimodal"

# 3. Knobs (generator variables, compiled in only when set; tools/bench/RESULTS.md session 8): the merge grid triggers
# the next kernel at its start; every block prefetches the call's metadata into L2 before its wait; the prologue's
# block_table reads first; the direct grid's pieces merged in their cluster (batch 1, and batch 8 with host lengths).
knob_rows() {  # name: uniform b1 / b8, b8 with host lengths (the direct grid), bimodal b8 / b32
  bench "$1_grid" new --kv-len 32768 --reps 10 --batch 1,8 --q-seqlen 1,4
  bench "$1_host_lengths" new --kv-len 32768 --reps 10 --batch 8 --q-seqlen 1 --host-lengths true
  bench "$1_bimodal" new "${bimodal[@]}" --batch 8,32 --q-seqlen 1 --reps 10
}
bench default_host_lengths new --kv-len 32768 --reps 10 --batch 8 --q-seqlen 1 --host-lengths true
SWAJIT_DECODE_EARLY_TRIGGER=1 knob_rows early_trigger
SWAJIT_DECODE_EARLY_TRIGGER=1 SWAJIT_DECODE_PREFETCH=1 knob_rows early_trigger_prefetch
SWAJIT_DECODE_PROLOGUE_PAGES=1 knob_rows prologue_pages
SWAJIT_DECODE_CLUSTER_MERGE=1 bench cluster_merge new --kv-len 32768 --reps 10 --batch 1,8 --q-seqlen 1,4 --host-lengths true
SWAJIT_DECODE_CLUSTER_MERGE=1 bench cluster_merge_bn32_st5 new --kv-len 32768 --reps 10 --batch 1 --q-seqlen 1,4 \
  --block-n 32 --warps-n 2 --stages 5 --pages-ahead true --splits 0
bench bn32_st5 new --kv-len 32768 --reps 10 --batch 1 --q-seqlen 1,4 --block-n 32 --warps-n 2 --stages 5 --pages-ahead true --splits 0
(export "${knobs_all[@]}" SWAJIT_DECODE_TIMELINE=1; bench timeline_all_knobs new "${grid[@]}" --batch 1,8 --q-seqlen 1 --host-lengths true)
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
rm -rf "$db_dir"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in log-uniform bimodal; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/$dist"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
