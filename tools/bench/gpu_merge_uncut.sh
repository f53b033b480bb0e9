#!/usr/bin/env bash
# Session 14, one call: the scheduled grid's merge blocks leaving before their wait when the call cuts nothing
# (SWAJIT_DECODE_MERGE_LEAVES_UNCUT, K1), and with it merge blocks of 4 rows (SWAJIT_DECODE_MERGE_ROWS=4, K2),
# against neither (K0), alternated over two rounds; the check matrix on K2 first.
#   tools/bench/gpu_merge_uncut.sh CARRY_DIR LOG_DIR
set -uo pipefail
usage="usage: gpu_merge_uncut.sh CARRY_DIR LOG_DIR"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
SCRATCH=$(mktemp -d)
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped SWAJIT_DB=$SCRATCH/bench.db
exec > >(tee "$LOG/console.txt") 2>&1
GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768)
knobs() {  # knobs K: the environment of variant K
  case $1 in
    0) echo SWAJIT_DECODE_MERGE_LEAVES_UNCUT=0 SWAJIT_DECODE_MERGE_ROWS=1 ;;
    1) echo SWAJIT_DECODE_MERGE_LEAVES_UNCUT=1 SWAJIT_DECODE_MERGE_ROWS=1 ;;
    2) echo SWAJIT_DECODE_MERGE_LEAVES_UNCUT=1 SWAJIT_DECODE_MERGE_ROWS=4 ;;
  esac
}
rows() {  # rows K NAME bench-decode-args...
  local k=$1 name=$2; shift 2
  env $(knobs "$k") timeout 90 "$S" bench decode "$@" --reps 30 >"$SCRATCH/$name.txt" 2>&1 || echo "==== FAILED ($?) $name"
  grep -E '^\| *[0-9]|rror|FAIL' "$SCRATCH/$name.txt" | sed "s/^|/| $name |/"
}
"$S" info | head -4
for k in 2; do
  echo "== check --family paged_decode, K$k: $(knobs $k)"
  start=$SECONDS
  env $(knobs "$k") timeout 150 "$S" check --device cuda --family paged_decode >"$SCRATCH/check_k$k.txt" 2>&1 || echo "==== FAILED ($?) check"
  echo "check ($((SECONDS - start)) s): $(grep -E 'passed|FAIL' "$SCRATCH/check_k$k.txt" | tail -3 | tr '\n' ' ')"
done
echo "== timelines, uniform b32 q4 and log-uniform b32 q4"
for k in 0 1 2; do
  env $(knobs "$k") SWAJIT_DECODE_TIMELINE=1 timeout 60 "$S" bench decode "${GRID[@]}" --batch 32 --q-seqlen 4 --reps 10 2>&1 |
    grep -E "^\| *[0-9]|timeline|merge" | sed "s/^/K$k uniform: /"
  env $(knobs "$k") SWAJIT_DECODE_TIMELINE=1 timeout 60 "$S" bench decode --batch 32 --q-seqlen 4 --reps 10 --distribution log-uniform:100:100000 --seed 1 2>&1 |
    grep -E "^\| *[0-9]|timeline|merge" | sed "s/^/K$k log-uniform: /"
done
for round in 1 2; do
  for k in 0 1 2; do
    tag=k${k}_r$round
    rows $k uniform_$tag "${GRID[@]}" --batch 1,8,32,128,256 --q-seqlen 1,4
    rows $k loguniform_$tag --batch 8,32,128 --q-seqlen 1,4 --distribution log-uniform:100:100000 --seed 1
    rows $k bimodal_$tag --batch 8,32,128 --q-seqlen 1,4 --distribution bimodal:512:131072:0.125 --seed 1
    rows $k fp8_$tag "${GRID[@]}" --kv-quant fp8 --batch 8,32,128 --q-seqlen 1,4
  done
done
tar -czf "$LOG/details.tgz" -C "$SCRATCH" --exclude bench.db .
