#!/usr/bin/env bash
# Issues 14 and 19 (bf16 paged decode) on the GPU machine: correctness first, then the uniform grid and the ragged
# distributions timed beside their floor, the default against the variants to compare:
# - the direct kernel (paged_decode.cuh SWAJIT_DECODE_DIRECT_KERNEL: one item per block, no schedule, session 4's
#   registers): batch 1 always (cut evenly), equal lengths the host knows (`--host-lengths true`:
#   DecodeOptions::host_seq_lens, as FlashInfer's plan() has them) and `--splits 1`; device-only lengths keep the
#   scheduled kernel (the work schedule of templates/decode_schedule.h).
# - ragged: the schedule's snap (SWAJIT_SCHEDULE_SNAP_SHARES, a device-run experiment) at 32 and never, beside 8.
# - BASE: main before this branch (session 5's end), when CARRY/base/swajit is there: the same rows, same machine.
# Usage (binaries from tools/bench/prepare_gpu_carry.sh):  gpu_decode.sh CARRY_DIR LOG_DIR   (about 90 s: the checks
# compile about 12 kernels, 3-4 s each; every bench row takes about a second)
# Each bench row prints its floor (KV bytes in the window over the measured read bandwidth) and % of it. FlashInfer
# on the same ragged lengths: tools/bench/ragged_peer.py LOG_DIR/lengths/<distribution> (printed at the end).
set -uo pipefail
carry=$(cd "${1:-.carry}" && pwd) logs=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# A fresh database outside the log folder (it grows to tens of MB), no shipped winners: heuristic or forced configs.
db_dir=$(mktemp -d)
export SWAJIT_DB=$db_dir/decode.db SWAJIT_SHIPPED=0
swajit=$carry/swajit
failed="" start=$(date +%s)
step() { echo; echo "==== $*  ($(( $(date +%s) - start ))s into the script)"; }
limited() { timeout 60 "$@"; }  # a hung kernel (an mbarrier never completing) costs at most this long per command
rows() { grep -E "^\| [0-9]|error|FAIL"; }

step "check: the direct kernel (batch 1 even cuts, q4 sinks, d256, fp8 fused, TMA, empty and 1-token sequences,"
echo "     num_splits 1 ragged), the capacity schedule over 16 kv heads (ragged and uniform)"
for filter in "direct kernel" "capacity schedule, 16 kv heads"; do
  limited "$swajit" check --device cuda --filter "$filter" >> "$logs/decode_check.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && failed+=" check[$filter]:rc$rc"
done
grep -E "^FAIL|passed" "$logs/decode_check.log"
grep -q "^FAIL" "$logs/decode_check.log" && failed+=" check-FAIL-lines"
step "test_decode_gpu: graph replays as lengths change (scheduled; direct from equal host lengths)"
limited "$carry/test_decode_gpu" -tc="work schedule*" > "$logs/test_decode_gpu.log" 2>&1 || failed+=" test_decode_gpu"
grep -E "test cases|assertions|Status" "$logs/test_decode_gpu.log"
[ -n "$failed" ] && echo "CORRECTNESS FAILED ($failed): the timings below do not count"

bench() {  # name, then bench decode flags
  local name=$1; shift
  step "bench $name: ${grid[*]} $*"
  limited "$swajit" bench decode "${grid[@]}" "$@" 2>&1 | tee "$logs/bench_$name.log" | rows
}
# bf16, 32 q / 8 kv heads, d128, page 16, window 4096, kv 32768, q 1 and 4. Session 6 run B (this branch): default
# (device lengths: batch 1 direct, the others scheduled) b1 11.1 / 11.9, b8 47.0 / 49.4, b32 153.4 / 160.3, b128
# 544.6 / 554.7, b256 1079.4 / 1096.1; --host-lengths (the direct kernel) b8 43.0 / 46.3, b32 143.5 / 149.5, b128
# 519.2 / 537.8, b256 1031.2 / 1066.6. Session 5 run C: b1 14.1 / 14.5 ... b128 529.9 / 581.6, b256 1056.1 / 1150.7;
# FlashInfer tc (run C): 15.3 / 15.6, 48.2 / 51.2, 145.5 / 148.9, 511.8 / 525.2, 997.0 / 1025.2.
grid=(--kv-len 32768 --q-seqlen 1,4 --reps 30)
bench grid_default --batch 1,8,32,128,256
bench grid_host_lengths --batch 8,32,128,256 --host-lengths true

# Ragged (run C q1: log-uniform 28.2 / 119.3 / 206.0 / 365.1 / 714.9, bimodal 17.7 / 43.7 / 74.2 / 137.6 / 274.4;
# FlashInfer 29.7 / 112.8 / 206.3 / 336.7 / 606.4 and 17.9 / 72.4 / 96.6 / 150.4 / 258.0). Bar: 85%, faster than FI.
dists="log-uniform:128:131072 bimodal:512:131072:0.125"
for dist in $dists; do
  name=${dist%%:*}
  mkdir -p "$logs/lengths/$name"
  grid=(--batch 8,32,64,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 20)
  bench "ragged_$name" --write-lengths "$logs/lengths/$name"
done
# A boundary snaps to a sequence's end within 1/32 of a share (kSnapShares 32; it was 8), so a block may carry up to 1/4 of a
# share more than its share, and the slowest block sets the time: 1/32 (at most 1/16 over) and no snap at all.
for snap in 32 1048576; do
  export SWAJIT_SCHEDULE_SNAP_SHARES=$snap
  for dist in $dists; do
    grid=(--batch 32,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 20)
    bench "ragged_${dist%%:*}_snap$snap"
  done
done
unset SWAJIT_SCHEDULE_SNAP_SHARES

if [ -x "$carry/base/swajit" ]; then  # main before this branch, same machine, same run
  export SWAJIT_DB=$db_dir/base.db
  swajit=$carry/base/swajit LD_LIBRARY_PATH=$carry/base/lib:$LD_LIBRARY_PATH
  grid=(--kv-len 32768 --q-seqlen 1,4 --reps 30)
  bench BASE_grid --batch 1,8,32,128,256
  for dist in $dists; do
    grid=(--batch 8,32,64,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 20)
    bench "BASE_ragged_${dist%%:*}"
  done
fi
grep -h "FAIL\|error:" "$logs"/bench_*.log && failed+=" bench"
echo; echo "FlashInfer on the same lengths (with .peers/ and FlashInfer installed):"
for dist in $dists; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/${dist%%:*}"; done
echo "==== done in $(( $(date +%s) - start )) s: $([ -z "$failed" ] && echo OK || echo "FAILED:$failed")"
[ -z "$failed" ]
