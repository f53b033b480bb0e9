#!/usr/bin/env bash
# Session 15 (issue 15), the final tree: correctness of the 8-bit prefill cases and the GPU suite's, then the
# defaults (fp8, int8, bf16) at kv 8, seq 4096 / 8192 / 32768.
set -uo pipefail
db_name=sv.db run_timeout=60
source tools/bench/gpu_run_common.sh .carry "$OUT/c9"
export SWAJIT_SHIPPED=0
bench() { run stdbuf -oL "$swajit" bench prefill --matmul-tflops 700 --reps 10 "$@"; }
{
run_timeout=70 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma sk"
run_timeout=25 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "K/V, contiguous"
run_timeout=20 run "$carry/test_decode_gpu" -tc="prefill: 8-bit*"
for q in fp8 int8; do bench --num-kv-heads 8 --seq 4096,8192,32768 --kv-quant $q; done
bench --num-kv-heads 8 --seq 4096,8192,32768
rm -f "$OUT/c9/sv.db"
} 2>&1 | tee "$OUT/c9/log.txt"
