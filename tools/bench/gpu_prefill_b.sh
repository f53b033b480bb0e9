#!/usr/bin/env bash
# Session 8 run B (issue 15, evidence first; removed after the run): under 110 s on the H200.
#   0. correctness: dynamic items, TMA store, the paged TMA tiles (bad pages), the snake-order cases (the default at
#      seq <= 8192);
#   1. ncu (SpeedOfLight, WarpStateStats, SourceCounters, SchedulerStats) on ONE launch of the default at seq 4096 kv 32 and at seq 32768 kv 8 (details page, raw
#      metrics, SASS source counters gzipped);
#   2. per-item %globaltimer stamps (SWAJIT_PREFILL_ITEM_CLOCK=1, a fresh database) at the same two rows, placed by
#      item_clock.py: span, tail, busy share, item time = overhead + tiles x per-tile time;
#   3. the grid's default against the knobs (ping-pong ws3, overlapped items, dynamic items, TMA store) and BASE
#      (session 7's binary, ../mainJ/swajit), the floor beside each time.
# Usage: gpu_prefill_b.sh CARRY_DIR LOG_DIR
set -uo pipefail
db_name=prefill_b.db run_timeout=60
here=$(cd "$(dirname "$0")" && pwd)
source "$here/gpu_run_common.sh"
export LD_LIBRARY_PATH=$carry/lib:$carry/../lib:$carry/../mainJ/lib
export SWAJIT_SHIPPED=0
SWAJIT_DB=$(mktemp -d)/prefill_b.db
export SWAJIT_DB
mm=${MATMUL_TFLOPS:-790}
budget_s=${GPU_PREFILL_BUDGET_S:-105}
step() {
  if ((SECONDS + run_timeout > budget_s + 10)); then
    echo "==== SKIPPED (past ${budget_s} s): $*"
    return
  fi
  run "$@"
}
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
d128=bm128_bn128_st2_mt1_wg
base=$carry/../mainJ/swajit
ncu_one() {  # name, bench args: one launch of the default under ncu (the 4th prefill launch: after the checked
             # run and 2 warm-ups), then its pages as text
  local name=$1
  shift
  [[ -n $ncu ]] || { echo "==== no ncu found"; return; }
  run_timeout=30 step "$ncu" --clock-control none --section SpeedOfLight --section WarpStateStats --section SourceCounters \
    --section SchedulerStats --section LaunchStats --section Occupancy -k regex:swajit_prefill --launch-skip 3 --launch-count 1 \
    -f -o "$logs/ncu_$name" "$swajit" bench prefill --reps 1 "$@"
  if [[ -f $logs/ncu_$name.ncu-rep ]]; then
    "$ncu" --import "$logs/ncu_$name.ncu-rep" --page details > "$logs/ncu_${name}_details.txt" 2>&1
    "$ncu" --import "$logs/ncu_$name.ncu-rep" --page raw --csv > "$logs/ncu_${name}_raw.csv" 2>&1
    "$ncu" --import "$logs/ncu_$name.ncu-rep" --page source --csv --print-source sass 2>&1 | gzip > "$logs/ncu_${name}_sass.csv.gz"
    grep -E "Duration|Compute \(SM\) Throughput|Registers Per|Warp Cycles Per Issued|Issue Slots Busy|No Eligible|Active Warps Per|Executed Ipc A|stall" "$logs/ncu_${name}_details.txt" | head -40
  fi
}
clock_one() {  # bench args: one row with per-item stamps (its own fresh database: the stamped kernel has the same key)
  if ((SECONDS + 25 > budget_s + 10)); then echo "==== SKIPPED (past ${budget_s} s): item clock $*"; return; fi
  echo "==== item clock: $*"
  SWAJIT_PREFILL_ITEM_CLOCK=1 SWAJIT_DB=$(mktemp -d)/clock.db timeout 25 "$swajit" bench prefill --reps 2 "$@" \
    2>&1 | tee >(grep -v '^IC ' >&2) | python3 "$here/item_clock.py"
}
bench() { step stdbuf -oL "$swajit" bench prefill --matmul-tflops "$mm" --reps 10 "$@"; }
{
  nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu --format=csv
  # correctness: dynamic items (new), the paged TMA tiles whose producer alone now scans the pages (bad pages: zero
  # tiles), the default's tile at seq <= 8192 (snake order)
  run_timeout=15 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "dynamic items"
  run_timeout=10 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "TMA store"
  run_timeout=10 step "$carry/test_decode_gpu" -tc="paged prefill*"
  run_timeout=10 step stdbuf -oL "$swajit" check --device cuda --family prefill --filter "snake order"
  # the seq 4096 column: default (snake order) against ping-pong, overlapped items, dynamic items (ws2, ws3), the
  # output by TMA store
  run_timeout=25 bench --seq 4096 --num-kv-heads 32,8 --configs "default,${d128}_ws3_tma_pt_sn,${d128}_ws2_tma_pt_sn_ov,\
${d128}_ws2_tma_pt_dy,${d128}_ws3_tma_pt_dy,${d128}_ws2_tma_pt_sn_ts"
  ncu_one s4096_kv32 --seq 4096 --num-kv-heads 32
  clock_one --seq 4096 --num-kv-heads 32
  clock_one --seq 32768 --num-kv-heads 8
  run_timeout=15 bench --seq 32768 --num-kv-heads 8 --configs "default,${d128}_ws2_tma_pt_dy,${d128}_ws3_tma_pt,${d128}_ws2_tma_pt_ts"
  # paged 16 shuffled: the default (producer at 40 registers; its consumers no longer scan) against the producer at 56
  run_timeout=12 bench --seq 8192 --num-kv-heads 8 --page-size 16 --shuffle-pages --configs "default,${d128}_ws2_tma_pt_sn"
  ncu_one s32768_kv8 --seq 32768 --num-kv-heads 8
  [[ -x $base ]] && SWAJIT_DB=$(mktemp -d)/base.db run_timeout=10 step stdbuf -oL "$base" bench prefill \
    --matmul-tflops "$mm" --reps 10 --seq 4096 --num-kv-heads 32,8
  # head sections of 8 q heads with snake order at seq 4096 (the sections' K/V fit L2; the default keeps one section)
  SWAJIT_PREFILL_HEAD_SECTION=8 run_timeout=8 bench --seq 4096 --num-kv-heads 32
  echo "==== gpu_prefill_b.sh done in $SECONDS s, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill_b.log"
exit "${PIPESTATUS[0]}"
