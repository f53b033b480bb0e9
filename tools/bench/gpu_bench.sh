#!/usr/bin/env bash
# Issue 14's measurement side on the GPU, from a checkout of main with the binaries of tools/bench/prepare_gpu_carry.sh:
#   tools/bench/gpu_bench.sh CARRY_DIR LOG_DIR [all|swajit|peers|jit]
# swajit (about 2 minutes): correctness first (`swajit check` cases of learned sinks, head_dim 256, fp8 KV, strided
#   tensors, sparse shared K/V), then `swajit bench decode` (time, floor, % of floor per row; each row's sequence 0
#   checked against the reference) on the shapes beyond the grid: gpt-oss (64 q / 8 kv heads, head_dim 64, window
#   128, learned sinks), Gemma 3 (32 q / 16 kv heads, head_dim 256, window 1024), the grid shape at page 1 and 64,
#   batch 1..256, batch 256 at page 16, and the fp8-KV grid; then untuned vs tuned on the grid: a fresh database
#   with no shipped data (SWAJIT_SHIPPED=0), the grid's batch 8, 32, 128 (kv 32768, q_seqlen 1) tuned, and
#   `bench decode --compare-heuristic` (column "heuristic (us)" = untuned, "time (us)" = tuned).
# peers: tools/bench/decode_peers.py, FlashInfer on the same rows (budget FLASHINFER_BUDGET_S, default 300 s, plus
#   a cap for the build), seeded with every JIT cache found (main's .peers/flashinfer_jit*.tgz|txz, this folder's,
#   FLASHINFER_JIT_CACHES="a.tgz b.txz"); modules missing from them are built with nvcc on the host's cores while the
#   ready rows run (minutes). May run on a second GPU at the same time (CUDA_VISIBLE_DEVICES). Wheels: main's .whl/
#   (../shared/peers/README.md).
# jit: only that build, written to LOG_DIR/flashinfer_jit_decode_peers.txz (the built modules' .so, a few MiB) for a
#   later peers run (FLASHINFER_JIT_CACHES or main's .peers/).
set -uo pipefail
usage="usage: gpu_bench.sh CARRY_DIR LOG_DIR [all|swajit|peers|jit]"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
WHAT=${3:-all}
# Databases (cubins) and FlashInfer's workspace stay in /tmp: LOG_DIR comes back whole and must stay small.
SCRATCH=$(mktemp -d /tmp/gpu_bench.XXXXXX)
export SWAJIT_DB=$SCRATCH/bench.db  # never the machine's default database
# The checkout's shipped tuning data, as an installed library finds its own (the carried binary has none beside it).
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped
exec > >(tee -a "$LOG/gpu_bench_$WHAT.log") 2>&1
check() {  # check FILTER: one `swajit check --filter` subset, its summary lines printed (whole output in the log dir)
  local name=${1//[^a-zA-Z0-9]/_}
  local out=$LOG/check_$name.txt
  echo "==== swajit check --filter '$1'"
  timeout 90 "$S" check --filter "$1" >"$out" 2>&1 || { echo "==== FAILED ($?): check --filter '$1'"; status=1; }
  grep -E "FAIL|passed" "$out" | tail -5
}

GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768)
GPT_OSS=(--num-q-heads 64 --num-kv-heads 8 --head-dim 64 --local-window 128 --sink-logits --kv-len 32768)
GEMMA3=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768)
ALL_BATCHES=(--batch 1,8,32,128,256 --q-seqlen 1)

swajit_checks() {
  # "strided" and "shared K/V" (sparse MLA): the paged families' argument struct is shared (paged_call_params.h).
  echo "== correctness: swajit check (learned sinks, head_dim 256, fp8 KV, strided, sparse shared K/V)"
  "$S" info | head -6  # with the memory clock and bus width the driver reports (tuning/memory_system.hpp)
  for f in "learned sink logits" "head_dim 256" "fp8 KV" "strided" "shared K/V"; do check "$f"; done
}

swajit_shapes() {
  echo "== swajit bench decode: shapes beyond the grid (as called: shipped/tuned winner, else the heuristic)"
  run 45 "$S" bench decode "${GPT_OSS[@]}" "${ALL_BATCHES[@]}" --reps 30
  run 45 "$S" bench decode "${GEMMA3[@]}" "${ALL_BATCHES[@]}" --reps 30
  run 45 "$S" bench decode "${GRID[@]}" --page-size 1 "${ALL_BATCHES[@]}" --reps 30
  run 45 "$S" bench decode "${GRID[@]}" --page-size 64 "${ALL_BATCHES[@]}" --reps 30
  run 30 "$S" bench decode "${GRID[@]}" --page-size 16 --batch 256 --q-seqlen 1,4 --reps 30
  run 45 "$S" bench decode "${GRID[@]}" --page-size 16 --kv-quant fp8 --batch 1,8,32,128 --q-seqlen 1,4 --reps 30
}

untuned_vs_tuned() {
  echo "== untuned vs tuned on the grid (kv 32768): fresh database, no shipped data"
  local db=$SCRATCH/untuned_vs_tuned.db
  SWAJIT_SHIPPED=0 SWAJIT_DB=$db run 60 "$S" tune --preset mistral-7b --batch 8,32,128 --kv-len 32768 \
    --q-seqlen 1 --quick-reps 5 --final-reps 30
  SWAJIT_SHIPPED=0 SWAJIT_DB=$db run 40 "$S" bench decode "${GRID[@]}" --batch 8,32,128 --q-seqlen 1 \
    --compare-heuristic --reps 50
}

peers() {  # peers BUDGET_S [decode_peers.py args]
  local budget=$1; shift
  echo "== FlashInfer peer: decode_peers.py (budget $budget s)"
  local site=/tmp/bench_site  # its own: another peer script may install into /tmp/site at the same time
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl ||
    { echo "==== FAILED: FlashInfer wheels from $(pwd)/.whl"; status=1; return; }
  local caches=()
  for t in .peers/flashinfer_jit*.t?z "$HERE"/flashinfer_jit*.t?z ${FLASHINFER_JIT_CACHES:-}; do [ -f "$t" ] && caches+=(--jit-cache "$t"); done
  PYTHONPATH=$site FLASHINFER_WORKSPACE_BASE=$SCRATCH/flashinfer_ws OUT=$LOG run $((budget + 240)) \
    python3 "$HERE/decode_peers.py" --budget-s "$budget" "${caches[@]}" "$@"
}

case $WHAT in
  all) swajit_checks; swajit_shapes; untuned_vs_tuned; peers "${FLASHINFER_BUDGET_S:-300}" ;;
  swajit) swajit_checks; swajit_shapes; untuned_vs_tuned ;;
  peers) peers "${FLASHINFER_BUDGET_S:-300}" ;;
  jit) peers 360 --jit-only --jit-out "$LOG/flashinfer_jit_decode_peers.txz" ;;
  *) echo "$usage"; exit 2 ;;
esac
echo "gpu_bench.sh $WHAT: $( ((status)) && echo 'SOME STEPS FAILED' || echo 'all steps ran')"
exit $status
