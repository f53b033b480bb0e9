#!/usr/bin/env bash
# The warp-specialized prefill session (issue 6): correctness of every prefill/wgmma check case, then a config sweep
# at seq 8192 / 32768 with 8 kv heads, then the full bench grid for the chosen configs beside FlexAttention.
# Run from a directory holding the carried binaries as .carry/ and the peer scripts as .peers/.
# Usage: tools/bench/ws_session.sh [sweep configs "bm bn st ws oc" ...] ; FULL="bm bn st ws oc;..." for the grid.
set -uo pipefail
out=${OUT:-/tmp/swajit-out}; mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB=${SWAJIT_DB:-/tmp/swajit-ws-$$.db}
b=.carry/swajit
date -u; nvidia-smi -L
echo "==== check"
timeout 150 $b check 2>&1 | tee "$out/check.log" | grep -E -i "fail|wgmma|passed|error" | tail -60
echo "==== sweep (seq 8192, 32768; 8 kv heads)"
for cfg in "$@"; do
  set -- $cfg
  echo "config block_m=$1 block_n=$2 stages=$3 warp_specialize=$4 min_blocks=$5"
  timeout 60 $b bench prefill --seq 8192,32768 --num-kv-heads 8 --reps 10 --block-m $1 --block-n $2 --stages $3 \
    --wgmma true --warp-specialize $4 --min-blocks $5 2>&1 | grep -E '^\| [0-9]|rror|FAIL'
done 2>&1 | tee "$out/sweep.log"
IFS=';' read -ra fulls <<< "${FULL:-}"
for cfg in "${fulls[@]}"; do
  set -- $cfg
  echo "==== full grid block_m=$1 block_n=$2 stages=$3 warp_specialize=$4 min_blocks=$5"
  timeout 120 $b bench prefill --block-m $1 --block-n $2 --stages $3 --wgmma true --warp-specialize $4 --min-blocks $5 2>&1 | tee -a "$out/bench_full.log"
done
if [ -n "${FLEX:-}" ]; then
  echo "==== flex"
  PYTHONUNBUFFERED=1 timeout 200 python3 .peers/flex_prefill_decode.py prefill 2>&1 | grep -v Warning | tee "$out/peers_prefill.log"
fi
