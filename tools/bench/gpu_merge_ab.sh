#!/usr/bin/env bash
# Decode after the merge grid's record scan changed (one round of loads for 256 records), one device call (issues 14
# and 19): this tree beside a BASE binary on the uniform grid and the ragged batches, FlashInfer on the same shapes
# and lengths, with the paged_decode check matrix and the GPU suite on another GPU.
#   tools/bench/gpu_merge_ab.sh CARRY_DIR LOG_DIR [BASE_SWAJIT]   (BASE_SWAJIT default: CARRY_DIR/base/swajit)
# FlashInfer's wheels in .whl/ and its peer scripts (with ../shared/peers/flashinfer_jit_h200.tgz) in .peers/.
# bench (GPU 0):
#   1. the uniform grid (32 q / 8 kv heads, d128, page 16, window 4096, kv 32768), batch 1-256, q 1 and 4, device
#      lengths: BASE and this tree alternated, two rounds;
#   2. ragged (log-uniform 100..100000 and bimodal 512 / 131072 1/8, seed 1), batch 8-256, q 1 and 4: BASE and this
#      tree (the lengths written for ragged_peer.py); fp8 on the uniform grid;
#   3. where batch 32's device-lengths time goes: the timeline (SWAJIT_DECODE_TIMELINE=1) with device and host lengths;
#   4. bimodal q4 b8 with fewer, larger pieces (--splits 2 / 4 / 6 on the heuristic's tile) beside the heuristic;
#   5. FlashInfer: decode_peers.py on the grid, ragged_peer.py on the same lengths.
# correctness (the last GPU): `check --family paged_decode`, the GPU suite without its matrices, warm start, the cache.
set -uo pipefail
usage="usage: gpu_merge_ab.sh CARRY_DIR LOG_DIR [BASE_SWAJIT]"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
BASE=$(realpath "${3:-$CARRY/base/swajit}")
SCRATCH=$(mktemp -d /tmp/gpu_merge.XXXXXX)
DETAILS=$SCRATCH/details
mkdir -p "$DETAILS"
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped
gpus=$(nvidia-smi -L | wc -l)

correctness() {
  export SWAJIT_DB=$SCRATCH/correctness.db
  (timeout 400 "$S" check --device cuda --family paged_decode >"$DETAILS/check_paged_decode.txt" 2>&1 ||
     echo "==== FAILED ($?)" >>"$DETAILS/check_paged_decode.txt") &
  (timeout 300 "$CARRY/test_decode_gpu" -tce="*correctness matrix*" >"$DETAILS/test_decode_gpu.txt" 2>&1
   for suite in test_warm_start test_kernel_cache; do timeout 120 "$CARRY/$suite" >"$DETAILS/$suite.txt" 2>&1; done) &
  wait
  echo "check paged_decode: $(grep -E 'passed|FAILED' "$DETAILS/check_paged_decode.txt" | tail -2 | tr '\n' ' ')"
  grep -q "FAIL" "$DETAILS/check_paged_decode.txt" && { grep -B2 -A8 "FAIL" "$DETAILS/check_paged_decode.txt" | head -40; status=1; }
  for suite in test_decode_gpu test_warm_start test_kernel_cache; do
    echo "$suite: $(tail -3 "$DETAILS/$suite.txt" | tr '\n' ' ')"
    grep -q "Status: SUCCESS" "$DETAILS/$suite.txt" || { echo "==== FAILED: $suite"; status=1; }
  done
}

GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768 --page-size 16)
LOG_UNIFORM=log-uniform:100:100000 BIMODAL=bimodal:512:131072:0.125
rows() {  # rows CAP NAME BINARY ARGS...: the table rows of one bench run (prefixed NAME's first word), whole output in DETAILS
  local cap=$1 name=$2 binary=$3; shift 3
  echo "==== [$name] ${binary##*/.carry/} $*"
  timeout "$cap" "$binary" bench decode "$@" >"$DETAILS/$name.txt" 2>&1 || { echo "==== FAILED ($?)"; status=1; }
  grep -E '^\| *[0-9]|rror|FAIL|^timeline' "$DETAILS/$name.txt" | sed "s/^|/| ${name%%_*} |/" | head -60
}

bench() {
  export SWAJIT_DB=$SCRATCH/bench.db
  "$S" info | head -4
  echo "== 1. uniform grid, device lengths"
  for round in 1 2; do
    rows 60 "base_grid_$round" "$BASE" "${GRID[@]}" --batch 1,8,32,128,256 --q-seqlen 1,4 --reps 30
    rows 60 "new_grid_$round" "$S" "${GRID[@]}" --batch 1,8,32,128,256 --q-seqlen 1,4 --reps 30
  done
  echo "== 2. ragged; fp8 grid"
  for dist in $LOG_UNIFORM $BIMODAL; do
    name=${dist%%:*}
    rows 90 "base_$name" "$BASE" --batch 8,32,64,128,256 --q-seqlen 1,4 --distribution "$dist" --seed 1 --reps 30
    rows 90 "new_$name" "$S" --batch 8,32,64,128,256 --q-seqlen 1,4 --distribution "$dist" --seed 1 --reps 30 \
      --write-lengths "$DETAILS/lengths/$name"
  done
  rows 60 new_fp8 "$S" "${GRID[@]}" --kv-quant fp8 --batch 8,32,128,256 --q-seqlen 1,4 --reps 30
  echo "== 3. batch 32 timeline, device then host lengths"
  SWAJIT_DECODE_TIMELINE=1 rows 40 timeline_device "$S" "${GRID[@]}" --batch 32 --q-seqlen 1 --reps 10
  SWAJIT_DECODE_TIMELINE=1 rows 40 timeline_host "$S" "${GRID[@]}" --batch 32 --q-seqlen 1 --reps 10 --host-lengths true
  echo "== 4. bimodal q4 b8: splits on the heuristic's tile (bn32 wn2 st3, pages ahead)"
  rows 30 new_bimodal8 "$S" --batch 8 --q-seqlen 4 --distribution $BIMODAL --seed 1 --reps 30
  for splits in 2 4 6; do
    rows 30 "new_splits$splits" "$S" --batch 8 --q-seqlen 4 --distribution $BIMODAL --seed 1 --reps 30 \
      --block-n 32 --warps-n 2 --stages 3 --pages-ahead true --splits $splits
  done
  echo "== 5. FlashInfer"
  local site=$SCRATCH/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl ||
    { echo "==== FAILED: FlashInfer wheels"; status=1; return; }
  export PYTHONPATH=$site FLASHINFER_WORKSPACE_BASE=$SCRATCH/flashinfer_ws
  OUT=$DETAILS run 150 python3 "$HERE/decode_peers.py" --budget-s 120 --jit-cache .peers/flashinfer_jit_h200.tgz \
    --cases grid >"$DETAILS/fi_decode.txt" 2>&1
  grep -E "kind=|skipped|rror" "$DETAILS/fi_decode.txt" | grep -v "^kind=ceiling" | tail -30
  for dist in log-uniform bimodal; do
    run 90 python3 "$HERE/ragged_peer.py" "$DETAILS/lengths/$dist" --peers .peers 2>&1 | grep -E "kind=|rror"
  done
}

if ((gpus > 1)); then
  (CUDA_VISIBLE_DEVICES=$((gpus - 1)) correctness >"$LOG/correctness.log" 2>&1; echo "correctness status $status" >>"$LOG/correctness.log") &
  CUDA_VISIBLE_DEVICES=0 bench > >(tee "$LOG/bench.log") 2>&1
  wait
  cat "$LOG/correctness.log"
  grep -q "correctness status 0" "$LOG/correctness.log" || status=1
else
  correctness > >(tee "$LOG/correctness.log") 2>&1
  bench > >(tee "$LOG/bench.log") 2>&1
fi
tar -czf "$LOG/details.tgz" -C "$SCRATCH" details
echo "gpu_merge_ab.sh: $( ((status)) && echo 'SOME STEPS FAILED' || echo 'all steps ran')"
exit $status
