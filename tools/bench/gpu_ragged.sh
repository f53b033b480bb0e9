#!/usr/bin/env bash
# Issue 19 on the GPU machine (under 2 minutes): the work schedule of ragged decode batches (blocks of one wave, each
# walking an equal-cost range of the batch: several short sequences in turn, or a piece of a long one).
#  1. correctness: the ragged (multi-item blocks included), split and capacity cases of the decode check matrix, and
#     the GPU suite's schedule cases (graphs replayed as the lengths change, concurrent split-KV streams);
#  2. the uniform grid (batch 1, 8, 32, 128 at kv 32768, q 1 and 4): no row may be slower than before (session 4 run
#     D: 11.6 / 46.3 / 152.1 / 530.3 us at q1, 13.0 / 49.7 / 158.8 / 549.6 at q4), and the direct grid (--splits 1)
#     beside batch 32 and 128 (run C: b32 q1 145.4), which the capacity rule must now match on uniform batches;
#  3. the ragged distributions (log-uniform:128:131072, bimodal:512:131072:0.125) at batch 8..256, q 1 and 4, bf16
#     and fp8 KV (bar: >= 85% of floor); every row prints its floor and % of floor. The batches' lengths are written
#     to LOG_DIR/lengths/<distribution> for tools/bench/ragged_peer.py (FlashInfer on the very same lengths):
#        python3 tools/bench/ragged_peer.py LOG_DIR/lengths/log-uniform [--kv-dtype fp8]
#  4. if CARRY_DIR/base/swajit exists (main's build before this branch), the same key rows with it, in the same run.
# Usage: gpu_ragged.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (swajit, test_decode_gpu, lib/; optionally base/).
set -uo pipefail
carry=$(cd "$1" && pwd) logs=$2
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=/tmp/gpu_ragged.db  # a fresh database (outside LOG_DIR) and no shipped data: the heuristic everywhere
export SWAJIT_SHIPPED=0
rm -f "$SWAJIT_DB" /tmp/gpu_ragged_base.db
swajit=$carry/swajit
status=0
step() { echo; echo "==== $*"; }
rows() { grep -E '^\| [0-9]|^measured|error|FAIL'; }  # the table rows of a bench

step "check: the ragged (multi-item blocks included), split and capacity cases of the decode matrix"
for filter in "ragged" "split" "capacity"; do
  timeout 120 "$swajit" check --device cuda --filter "$filter" 2>&1 | grep -E "^(PASS|FAIL)|passed|error|^swajit:"
done | tee "$logs/check.log"
[ "$(grep -c ' passed, 0 failed' "$logs/check.log")" = 3 ] || status=1  # each of the three ran and passed
step "GPU suite: the schedules replayed under a graph as lengths change, concurrent split-KV streams"
timeout 150 "$carry/test_decode_gpu" -tc="work schedule*,concurrent streams: split-KV*" > "$logs/test_decode_gpu.log" 2>&1
grep -E -A4 "ERROR|FATAL" "$logs/test_decode_gpu.log" | head -40; grep -E "test cases|assertions|Status" "$logs/test_decode_gpu.log"
grep -q "Status: SUCCESS" "$logs/test_decode_gpu.log" || status=1

step "uniform grid, kv 32768 (no row slower than session 4's run D: see the header)"
timeout 120 "$swajit" bench decode --batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 20 2>&1 | tee "$logs/uniform.log" | rows
step "the direct grid (--splits 1) at batch 32 and 128: the capacity rule must match it on uniform batches"
timeout 60 "$swajit" bench decode --batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 20 --splits 1 2>&1 |
  tee "$logs/uniform_direct.log" | rows

ragged_rows() {  # distribution, KV quant: batch 8..256, q 1 and 4, the lengths written for ragged_peer.py
  local name=${1%%:*}
  mkdir -p "$logs/lengths/$name"
  step "$1, KV ${2/none/bf16}, q 1 and 4 (bar: >= 85% of floor)"
  timeout 150 "$swajit" bench decode --batch 8,32,64,128,256 --q-seqlen 1,4 --distribution "$1" --seed 1 --reps 20 \
    --kv-quant "$2" --write-lengths "$logs/lengths/$name" 2>&1 | tee "$logs/${name}_$2.log" | rows
}
dists="log-uniform:128:131072 bimodal:512:131072:0.125"
for dist in $dists; do ragged_rows "$dist" none; done

if [ -x "$carry/base/swajit" ]; then  # before this branch, same machine, same run: the key rows
  base=$carry/base/swajit
  step "BASE (main before this branch): uniform b32 and b128, q1 and q4"
  SWAJIT_DB=/tmp/gpu_ragged_base.db LD_LIBRARY_PATH=$carry/base/lib:$LD_LIBRARY_PATH timeout 60 "$base" bench decode \
    --batch 32,128 --kv-len 32768 --q-seqlen 1,4 --reps 20 2>&1 | tee "$logs/base_uniform.log" | rows
  for dist in $dists; do
    step "BASE: $dist, KV bf16, q1"
    SWAJIT_DB=/tmp/gpu_ragged_base.db LD_LIBRARY_PATH=$carry/base/lib:$LD_LIBRARY_PATH timeout 60 "$base" bench decode \
      --batch 8,32,64,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 20 2>&1 | tee "$logs/base_${dist%%:*}.log" | rows
  done
fi
for dist in $dists; do ragged_rows "$dist" fp8; done
grep -h "FAIL\|error:" "$logs"/check.log "$logs"/uniform*.log "$logs"/*_none.log "$logs"/*_fp8.log && status=1
echo; echo "FlashInfer on the same lengths (tools/bench/ragged_peer.py, with .peers/ and FlashInfer installed):"
for dist in $dists; do
  for kv in bf16 fp8; do echo "  python3 tools/bench/ragged_peer.py $logs/lengths/${dist%%:*} --kv-dtype $kv"; done
done
echo; echo "gpu_ragged.sh: $([ $status = 0 ] && echo OK || echo FAILURES above)"
exit $status
