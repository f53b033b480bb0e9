#!/usr/bin/env bash
# Issue 19 on the GPU machine: correctness of the work-balanced decode schedule, then decode timed on the uniform grid
# and on ragged batches (log-uniform and bimodal lengths) at batch 8..256, q_seqlen 1 and 4, bf16 and int8 KV, each row
# with its bandwidth floor and % of floor. ~3-4 minutes.
# Usage (from a checkout of branch s3-ragged): tools/bench/gpu_ragged.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, test_decode_gpu, lib/).
# The ragged rows' lengths are written to LOG_DIR/lengths/<dist>/lengths_b<batch>_q<q>.txt; give FlashInfer the same
# batches with: python3 tools/bench/ragged_peer.py LOG_DIR/lengths/<dist> --peers .peers
set -uo pipefail
carry=$(cd "$1" && pwd) logs=$2
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=$logs/ragged.db  # a fresh database: every row runs the heuristic (the tuner is not part of this)
swajit=$carry/swajit
status=0
step() { echo; echo "==== $*"; }

step "check: the ragged and split cases of the decode matrix (the GPU test below runs the whole matrix)"
for filter in "ragged" "split"; do
  "$swajit" check --device cuda --filter "$filter" 2>&1 | grep -E "^(PASS|FAIL)|error"
done | tee "$logs/check.log"
grep -q "^FAIL" "$logs/check.log" && status=1
step "GPU suite (all of it: the matrix with the ragged cases, the schedule replayed under a graph as lengths change,
graph capture, concurrent split-KV streams, device-side argument errors, tuning)"
"$carry/test_decode_gpu" 2>&1 | tail -n 25 | tee "$logs/test_decode_gpu.log"
grep -q "Status: SUCCESS" "$logs/test_decode_gpu.log" || status=1

common=(--batch 8,32,64,128,256 --q-seqlen 1,4 --local-window 4096 --reps 50)
for kv in none int8; do
  step "bench decode, uniform grid, KV $kv (compare with RESULTS.md's latest H200 rows: no row may be slower)"
  "$swajit" bench decode "${common[@]}" --kv-len 4096,32768 --kv-quant "$kv" 2>&1 | tee "$logs/uniform_$kv.log"
  for dist in log-uniform:100:100000 bimodal:512:131072:0.125; do
    name=${dist%%:*}
    mkdir -p "$logs/lengths/$name"
    step "bench decode, $dist, KV $kv (bar: >= 85% of floor, faster than FlashInfer tc on the same lengths)"
    "$swajit" bench decode "${common[@]}" --distribution "$dist" --seed 1 --kv-quant "$kv" \
      --write-lengths "$logs/lengths/$name" 2>&1 | tee "$logs/${name}_$kv.log"
  done
done
grep -h "FAIL\|error:" "$logs"/*.log && status=1
echo; echo "gpu_ragged.sh: $([ $status = 0 ] && echo OK || echo FAILURES above)"
exit $status
