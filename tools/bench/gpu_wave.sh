#!/usr/bin/env bash
# A session's first device call: is the tree correct on the GPU, and where does every issue-14/19 decode row stand
# beside FlashInfer in the same call. Binaries from tools/bench/prepare_gpu_carry.sh; FlashInfer's wheels in .whl/
# and its peer scripts (plus ../shared/peers/flashinfer_jit_h200.tgz) in .peers/ (../shared/peers/README.md).
#   tools/bench/gpu_wave.sh CARRY_DIR LOG_DIR [all|correctness|bench]
# correctness (GPU $CORRECTNESS_GPU, default the last one): the check case that exposed session 10's harness race
#   ("capacity schedule", seeds 1..8), every family's check matrix (three processes at once), the GPU suite without its
#   three matrices (they repeat `swajit check`), warm start and the kernel cache; the 16-bit every-warp loaders with
#   evict-first K/V copies (SWAJIT_DECODE_KV_EVICT_FIRST=1) on the ragged and capacity cases.
# bench (GPU 0): swajit's decode rows (uniform grid with device and host lengths, gpt-oss, Gemma 3, pages 1 and 64,
#   fp8, the ragged distributions q1/q4 and bimodal fp8, whose lengths it writes), the two untimed knobs (evict-first,
#   schedule snap), then FlashInfer on the same shapes (decode_peers.py) and the same lengths (ragged_peer.py).
# With two GPUs both halves run at once; with one, correctness first.
set -uo pipefail
usage="usage: gpu_wave.sh CARRY_DIR LOG_DIR [all|correctness|bench]"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
WHAT=${3:-all}
SCRATCH=$(mktemp -d /tmp/gpu_wave.XXXXXX)  # databases and FlashInfer's workspace: LOG comes back whole
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped
gpus=$(nvidia-smi -L | wc -l)

check_family() {  # check_family NAME [check args...]: one check run, its summary line
  local name=$1; shift
  timeout 300 "$S" check --device cuda "$@" >"$LOG/check_$name.txt" 2>&1 || echo "==== FAILED ($?): check $*" >>"$LOG/check_$name.txt"
  echo "check $name: $(grep -E 'passed|FAILED' "$LOG/check_$name.txt" | tail -2 | tr '\n' ' ')"
}

correctness() {
  export SWAJIT_DB=$SCRATCH/correctness.db
  echo "== the harness-race case over 8 seeds"
  for seed in 1 2 3 4 5 6 7 8; do check_family "capacity_seed$seed" --filter "capacity schedule" --seed "$seed"; done
  echo "== every family's matrix, three processes"
  for family in paged_decode prefill sparse_decode; do check_family "$family" --family "$family" & done
  wait
  echo "== GPU suite without its matrices; warm start; kernel cache"
  run 300 "$CARRY/test_decode_gpu" -tce="*correctness matrix*" >"$LOG/test_decode_gpu.txt" 2>&1
  tail -4 "$LOG/test_decode_gpu.txt"
  run 120 "$CARRY/test_warm_start" 2>&1 | tail -2
  run 120 "$CARRY/test_kernel_cache" 2>&1 | tail -2
  echo "== evict-first K/V copies (SWAJIT_DECODE_KV_EVICT_FIRST=1): ragged and capacity cases"
  SWAJIT_DECODE_KV_EVICT_FIRST=1 SWAJIT_DB=$SCRATCH/evict.db check_family evict_first_ragged --filter ragged
  SWAJIT_DECODE_KV_EVICT_FIRST=1 SWAJIT_DB=$SCRATCH/evict.db check_family evict_first_capacity --filter capacity
  grep -l "FAIL" "$LOG"/check_*.txt && status=1
}

GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768)
GPT_OSS=(--num-q-heads 64 --num-kv-heads 8 --head-dim 64 --local-window 128 --sink-logits --kv-len 32768)
GEMMA3=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768)
BATCHES=(--batch 1,8,32,128,256)
LOG_UNIFORM=log-uniform:100:100000 BIMODAL=bimodal:512:131072:0.125

rows() {  # rows CAP NAME bench-decode-args...: the table rows, whole output in LOG
  local cap=$1 name=$2; shift 2
  echo "==== [$name] bench decode $*"
  timeout "$cap" "$S" bench decode "$@" --reps 30 >"$LOG/bench_$name.txt" 2>&1 || { echo "==== FAILED ($?)"; status=1; }
  grep -E '^\| *[0-9]|rror|FAIL' "$LOG/bench_$name.txt"
}

bench() {
  export SWAJIT_DB=$SCRATCH/bench.db
  "$S" info | head -8
  echo "== swajit, uniform grid, device lengths then host lengths"
  rows 60 grid "${GRID[@]}" "${BATCHES[@]}" --q-seqlen 1,4
  rows 60 grid_host "${GRID[@]}" "${BATCHES[@]}" --q-seqlen 1,4 --host-lengths true
  echo "== swajit, beyond the grid"
  rows 45 gpt_oss "${GPT_OSS[@]}" "${BATCHES[@]}" --q-seqlen 1
  rows 45 gemma3 "${GEMMA3[@]}" "${BATCHES[@]}" --q-seqlen 1
  rows 45 gemma3_host "${GEMMA3[@]}" "${BATCHES[@]}" --q-seqlen 1 --host-lengths true
  rows 45 page1 "${GRID[@]}" --page-size 1 "${BATCHES[@]}" --q-seqlen 1
  rows 45 page64 "${GRID[@]}" --page-size 64 "${BATCHES[@]}" --q-seqlen 1
  rows 45 fp8 "${GRID[@]}" --kv-quant fp8 "${BATCHES[@]}" --q-seqlen 1,4
  rows 45 fp8_host "${GRID[@]}" --kv-quant fp8 --batch 8,32,128 --q-seqlen 1,4 --host-lengths true
  echo "== swajit, ragged (seed 1; lengths written for ragged_peer.py)"
  for dist in $LOG_UNIFORM $BIMODAL; do
    name=${dist%%:*}
    rows 90 "$name" --batch 8,32,64,128,256 --q-seqlen 1,4 --distribution "$dist" --seed 1 --write-lengths "$LOG/lengths/$name"
  done
  rows 45 bimodal_fp8 --kv-quant fp8 --batch 8,32,64,128,256 --q-seqlen 1 --distribution $BIMODAL --seed 1
  echo "== knobs: evict-first K/V copies; schedule snap 1/4 and 1/16 of a share (default 1/8)"
  SWAJIT_DECODE_KV_EVICT_FIRST=1 rows 90 evict_bimodal --batch 8,32,128 --q-seqlen 1,4 --distribution $BIMODAL --seed 1
  SWAJIT_DECODE_KV_EVICT_FIRST=1 rows 90 evict_log_uniform --batch 8,32,128 --q-seqlen 1 --distribution $LOG_UNIFORM --seed 1
  SWAJIT_DECODE_KV_EVICT_FIRST=1 rows 60 evict_grid "${GRID[@]}" --batch 8,32,128 --q-seqlen 1
  for snap in 4 16; do
    SWAJIT_SCHEDULE_SNAP_SHARES=$snap rows 60 "snap$snap" --batch 32,128,256 --q-seqlen 1 --distribution $LOG_UNIFORM --seed 1
  done

  echo "== FlashInfer: decode_peers.py, then ragged_peer.py on the same lengths"
  local site=$SCRATCH/site
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl ||
    { echo "==== FAILED: FlashInfer wheels"; status=1; return; }
  export PYTHONPATH=$site FLASHINFER_WORKSPACE_BASE=$SCRATCH/flashinfer_ws
  OUT=$LOG run "${FI_DECODE_CAP_S:-260}" python3 "$HERE/decode_peers.py" --budget-s "${FI_DECODE_BUDGET_S:-200}" \
    --jit-cache .peers/flashinfer_jit_h200.tgz --cases grid,gemma3,gpt-oss,fp8,page1,page64 >"$LOG/fi_decode.txt" 2>&1
  grep -E "kind=|skipped|rror" "$LOG/fi_decode.txt" | grep -v "^kind=ceiling" | tail -80
  for dist in log-uniform bimodal; do
    run 90 python3 "$HERE/ragged_peer.py" "$LOG/lengths/$dist" --peers .peers 2>&1 | grep -E "kind=|rror" | tee "$LOG/fi_$dist.txt"
  done
  run 120 python3 "$HERE/ragged_peer.py" "$LOG/lengths/bimodal" --peers .peers --kv-dtype fp8 2>&1 |
    grep -E "kind=|rror" | tee "$LOG/fi_bimodal_fp8.txt"
}

case $WHAT in
  correctness) correctness ;;
  bench) bench ;;
  all)
    if ((gpus > 1)); then
      (CUDA_VISIBLE_DEVICES=$((gpus - 1)) correctness >"$LOG/correctness.log" 2>&1; echo "correctness status $status" >>"$LOG/correctness.log") &
      CUDA_VISIBLE_DEVICES=0 bench > >(tee "$LOG/bench.log") 2>&1
      wait
      cat "$LOG/correctness.log"
      grep -q "correctness status 0" "$LOG/correctness.log" || status=1
    else
      correctness > >(tee "$LOG/correctness.log") 2>&1
      bench > >(tee "$LOG/bench.log") 2>&1
    fi ;;
  *) echo "$usage"; exit 2 ;;
esac
echo "gpu_wave.sh $WHAT: $( ((status)) && echo 'SOME STEPS FAILED' || echo 'all steps ran')"
exit $status
