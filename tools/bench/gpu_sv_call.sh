#!/usr/bin/env bash
# Session 15 (issue 15), one call: 8-bit prefill with the per-row Q fold (no producer barrier) and the cheaper V
# transpose: correctness of the 8-bit cases, then fp8 / int8 default, stored V, and the skip-V oracle (wrong results,
# timing only), seq 4096 / 8192 / 32768, kv 8; bf16 beside.
set -uo pipefail
db_name=sv.db run_timeout=60
source tools/bench/gpu_run_common.sh .carry "$OUT/c5"
export SWAJIT_SHIPPED=0
bench() { run stdbuf -oL "$swajit" bench prefill --matmul-tflops 700 --reps 10 "$@"; }
k=bm128_bn128_st2_mt1_wg_ws2_tma_pt
{
run_timeout=240 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma sk"
run_timeout=60 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "K/V, contiguous"
run_timeout=60 run "$carry/test_decode_gpu" -tc="prefill: 8-bit*"
bench --num-kv-heads 8 --seq 4096,8192 --kv-quant fp8 --configs "default,${k}_dy_ts_f16_sk_sv"
bench --num-kv-heads 8 --seq 32768 --kv-quant fp8 --configs "default,${k}_f16_sk_sv"
bench --num-kv-heads 8 --seq 4096,8192,32768 --kv-quant int8
bench --num-kv-heads 8 --seq 8192 --kv-quant fp8 --page-size 16 --shuffle-pages --configs "default,${k}_dy_ts_f16_sk_sv"
echo "#### oracle skip V"
export SWAJIT_PREFILL_ORACLE_SKIP_V=1
bench --num-kv-heads 8 --seq 8192,32768 --kv-quant fp8 --configs "default,${k}_dy_ts_f16_sk_sv"
unset SWAJIT_PREFILL_ORACLE_SKIP_V
bench --num-kv-heads 8 --seq 4096,8192,32768
} 2>&1 | tee "$OUT/c5/log.txt"
