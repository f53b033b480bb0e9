#!/usr/bin/env bash
# Session 13, one call: the merge grid as one wave of blocks taking its items in turn (merge_grid_blocks) against BASE (.carry/base/swajit, the tree before), alternated over two rounds on the uniform grid, the ragged rows,
# fp8 and Gemma 3's kv heads at q4; the fused merge on the wide tile at q4 beside them; the check matrix first.
#   tools/bench/gpu_merge_wave.sh CARRY_DIR LOG_DIR
set -uo pipefail
usage="usage: gpu_merge_wave.sh CARRY_DIR LOG_DIR"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
SCRATCH=$(mktemp -d)  # each command's whole output, tarred into LOG at the end (the device tool returns few files)
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped SWAJIT_DB=$SCRATCH/bench.db
exec > >(tee "$LOG/console.txt") 2>&1
GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768)
WIDE_FUSED=(--block-n 64 --warps-n 4 --stages 3 --pages-ahead true --fused-merge true)
rows() {  # rows BINARY NAME bench-decode-args...
  local binary=$1 name=$2; shift 2
  timeout 90 "$binary" bench decode "$@" --reps 30 >"$SCRATCH/$name.txt" 2>&1 || echo "==== FAILED ($?) $name"
  grep -E '^\| *[0-9]|rror|FAIL' "$SCRATCH/$name.txt" | sed "s/^|/| $name |/"
}
"$S" info | head -6
echo "== check --family paged_decode (new)"
start=$SECONDS
timeout 150 "$S" check --device cuda --family paged_decode >"$SCRATCH/check.txt" 2>&1 || echo "==== FAILED ($?) check"
echo "check ($((SECONDS - start)) s): $(grep -E 'passed|FAIL' "$SCRATCH/check.txt" | tail -3 | tr '\n' ' ')"
echo "== timelines, uniform b32 q4: base, new, new with the wide tile's fused merge"
for variant in base new wide_fused; do
  binary=$S extra=()
  [ $variant = base ] && binary=$CARRY/base/swajit
  [ $variant = wide_fused ] && extra=("${WIDE_FUSED[@]}")
  SWAJIT_DECODE_TIMELINE=1 timeout 60 "$binary" bench decode "${GRID[@]}" --batch 32 --q-seqlen 4 --reps 10 "${extra[@]}" 2>&1 |
    grep -E "^\| *[0-9]|timeline" | sed "s/^/$variant: /"
done
for round in 1 2; do
  for build in base new; do
    binary=$S
    [ $build = base ] && binary=$CARRY/base/swajit
    tag=${build}_r$round
    rows "$binary" uniform_$tag "${GRID[@]}" --batch 1,8,32,64,128 --q-seqlen 1,4
    rows "$binary" loguniform_$tag --batch 8,32,128 --q-seqlen 1,4 --distribution log-uniform:100:100000 --seed 1
    rows "$binary" bimodal_$tag --batch 8,32,128 --q-seqlen 1,4 --distribution bimodal:512:131072:0.125 --seed 1
    rows "$binary" fp8_$tag "${GRID[@]}" --kv-quant fp8 --batch 8,32,128 --q-seqlen 4
  done
done
tar -czf "$LOG/details.tgz" -C "$SCRATCH" --exclude bench.db .
