#!/usr/bin/env bash
# Issue 19 phase 2 on the GPU machine: the capacity schedule (chunk size from SMs x resident blocks; the direct grid
# when the (sequence, kv head) pairs fill it). Correctness first (the ragged, split and capacity cases of the decode
# matrix, the GPU suite's schedule/graph-replay/matrix cases), then decode timed on the uniform grid (batch 1, 8, 32,
# 128, kv 32768, window 4096, q 1 and 4: compare with run B's base column, runB.md: 9.6 / 45.5 / 156.5 / 606 us at
# q1, - / 49.4 / 164.8 / 634 at q4) and on the two ragged distributions at batch 8..256 q1 (bar: 85% of floor; the
# FlashInfer rows to compare with: ragged_peer.py on LOG_DIR/lengths/<dist>, and its uniform tc rows). Each row
# prints its floor and % of floor. About 1.5 minutes.
# Usage (from a checkout of branch s3-ragged2): tools/bench/gpu_ragged2.sh CARRY_DIR LOG_DIR [full]
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, test_decode_gpu, lib/).
#   full: also the whole issue grid (q 1 and 4, bf16 and int8 KV, both distributions: ~3 more minutes).
set -uo pipefail
carry=$(cd "$1" && pwd) logs=$2
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=$logs/ragged2.db  # a fresh database and no shipped data: every row runs the heuristic (the capacity schedule)
export SWAJIT_SHIPPED=0
swajit=$carry/swajit
status=0
step() { echo; echo "==== $*"; }

step "check: the ragged, split and capacity cases of the decode matrix"
for filter in "ragged" "split"; do
  "$swajit" check --device cuda --filter "$filter" 2>&1 | grep -E "^(PASS|FAIL)|error"
done | tee "$logs/check.log"
grep -q "^FAIL" "$logs/check.log" && status=1
step "GPU suite: the decode matrix, the schedule replayed under a graph as lengths change, concurrent split-KV streams"
"$carry/test_decode_gpu" -tc="*ragged*,*schedule*,*correctness matrix*,concurrent streams: split-KV*" 2>&1 | tail -n 6 |
  tee "$logs/test_decode_gpu.log"
grep -q "Status: SUCCESS" "$logs/test_decode_gpu.log" || status=1

step "bench decode, uniform grid (no row slower than run B's base: b32/b128 now take the direct grid, no merge)"
"$swajit" bench decode --batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --reps 50 2>&1 | tee "$logs/uniform.log"
for dist in log-uniform:100:100000 bimodal:512:131072:0.125; do
  name=${dist%%:*}
  mkdir -p "$logs/lengths/$name"
  step "bench decode, $dist, q1 (bar: >= 85% of floor; run B: see runB.md's ragged rows)"
  "$swajit" bench decode --batch 8,32,64,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 50 \
    --write-lengths "$logs/lengths/$name" 2>&1 | tee "$logs/${name}.log"
  step "the same lengths at batch 32..256 with a forced num_splits 2 (the phase-1 schedule) for comparison"
  "$swajit" bench decode --batch 32,128,256 --q-seqlen 1 --distribution "$dist" --seed 1 --reps 50 --splits 2 2>&1 |
    grep '^| [0-9]' | tee "$logs/${name}_sp2.log"
done
if [ "${3:-}" = full ]; then
  for kv in none int8; do
    for dist in uniform log-uniform:100:100000 bimodal:512:131072:0.125; do
      step "full grid: $dist, KV $kv, q 1 and 4"
      "$swajit" bench decode --batch 8,32,64,128,256 --q-seqlen 1,4 --kv-len 32768 --distribution "$dist" --seed 1 \
        --kv-quant "$kv" --reps 50 2>&1 | grep '^| [0-9]' | tee "$logs/full_${dist%%:*}_$kv.log"
    done
  done
fi
grep -h "FAIL\|error:" "$logs"/*.log && status=1
echo; echo "gpu_ragged2.sh: $([ $status = 0 ] && echo OK || echo FAILURES above)"
exit $status
