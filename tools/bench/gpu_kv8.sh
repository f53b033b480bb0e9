#!/usr/bin/env bash
# Issue 14 on the GPU machine (branch s3-kv8): 8-bit KV dequantized in registers, and the heuristic's stage depth
# chosen by bytes in flight. Correctness first (every 8-bit decode case of `swajit check`, then the GPU test
# suite's decode correctness matrix), then `swajit bench decode` on the issue's grid (32 q / 8 kv heads, head_dim
# 128, page 16, window 4096, kv_len 32768) for bf16, int8 and fp8 at q_seqlen 1 and 4, each table with the floor and
# % of floor. In one run the 8-bit heuristic (bn64 wn4 st5) alternates with the old default depth forced (bn64 wn4
# st3), then sweeps of the new depths (int8) and of bf16's deeper pipelines of smaller tiles against its default
# (bn64 wn4 st3). Compare with FlashInfer's tensor-core decode rows (bf16) and its fp8-KV decode
# (../shared/peers/flashinfer_peer.py) of the same device run. The pre-change 8-bit path (widened through shared
# memory) is main's binary: run tools/bench/gpu_ab.sh with both builds for a same-run A/B.
# Usage, from a checkout of s3-kv8 with .carry/ made by tools/bench/prepare_gpu_carry.sh:
#   tools/bench/gpu_kv8.sh CARRY_DIR LOG_DIR      (about 3-4 minutes)
set -uo pipefail
bin=${1:-.carry}
log=${2:-${OUT:-/tmp/swajit-out}}
mkdir -p "$log"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
grid=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4)

echo "==== check: 8-bit KV decode cases (expect every line 'ok', none FAIL)"
for filter in "int8 KV" "fp8 KV"; do
  "$bin/swajit" check --device cuda --filter "$filter" 2>&1 | tee -a "$log/kv8_check.log" | tail -20
done
echo "==== GPU tests: decode correctness matrix, 8-bit cases included (expect 'Status: SUCCESS')"
"$bin/test_decode_gpu" -tc="correctness matrix against the reference" 2>&1 | tee "$log/kv8_tests.log" | tail -6

echo "==== bench bf16 (heuristic; floor and % of floor per row)"
"$bin/swajit" bench decode "${grid[@]}" 2>&1 | tee "$log/kv8_bench_bf16.log"
for round in 1; do  # raise for drift estimates
  for quant in int8 fp8; do
    echo "==== bench $quant round $round: heuristic (register dequant, bn64 wn4 st5)"
    "$bin/swajit" bench decode "${grid[@]}" --kv-quant $quant 2>&1 | tee -a "$log/kv8_bench_${quant}.log"
    echo "==== bench $quant round $round: old default depth forced (register dequant, bn64 wn4 st3)"
    "$bin/swajit" bench decode "${grid[@]}" --kv-quant $quant --block-n 64 --warps-n 4 --stages 3 2>&1 |
      tee -a "$log/kv8_bench_${quant}_st3.log"
  done
done
echo "==== int8 sweep, batch 32 and 128: depth and tile width at equal bytes in flight (bn128 8-bit = bn64 16-bit bytes)"
for cfg in 64:4:3 64:4:5 64:4:7 128:4:3 128:4:4 32:2:5; do
  set -- ${cfg//:/ }
  echo "config block_n=$1 warps_n=$2 stages=$3"
  "$bin/swajit" bench decode --batch 32,128 --kv-len 32768 --q-seqlen 1,4 --kv-quant int8 --block-n $1 --warps-n $2 --stages $3 2>&1 | grep '^| [0-9]'
done 2>&1 | tee "$log/kv8_sweep_int8.log"
echo "==== bf16 knobs against the default (bn64 wn4 st3), alternating, batch 32 and 128: deeper pipelines of smaller tiles"
for round in 1; do
  for cfg in 64:4:3 32:2:5 32:2:7 64:4:4; do
    set -- ${cfg//:/ }
    echo "round $round config block_n=$1 warps_n=$2 stages=$3"
    "$bin/swajit" bench decode --batch 32,128 --kv-len 32768 --q-seqlen 1,4 --block-n $1 --warps-n $2 --stages $3 2>&1 | grep '^| [0-9]'
  done
done 2>&1 | tee "$log/kv8_sweep_bf16.log"
echo "==== bench int8 and fp8 with learned sinks, q_seqlen 1 and 4, batch 32"
for quant in int8 fp8; do
  "$bin/swajit" bench decode --batch 32 --kv-len 32768 --q-seqlen 1,4 --sink-logits --kv-quant $quant 2>&1 |
    tee -a "$log/kv8_bench_sinks.log"
done
