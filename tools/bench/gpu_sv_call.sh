#!/usr/bin/env bash
# Session 15 (issue 15), one call (call 8): 8-bit prefill, the fold by the producer or the compute warps (_cf), and V
# one stage deeper (SWAJIT_PREFILL_DEEPER_V=1 then, an experiment switch since made the stored-K tile's default):
# correctness with it, then fp8 / int8 seq 4096 / 8192 / 32768 kv 8, the configs alternated in one process per
# setting; bf16 beside. (Calls 2-7 ran earlier versions of this script: see tools/bench/RESULTS.md, session 15.)
set -uo pipefail
db_name=sv.db run_timeout=60
source tools/bench/gpu_run_common.sh .carry "$OUT/c8"
export SWAJIT_SHIPPED=0
bench() { run stdbuf -oL "$swajit" bench prefill --matmul-tflops 700 --reps 10 "$@"; }
k=bm128_bn128_st2_mt1_wg_ws2_tma_pt
{
SWAJIT_PREFILL_DEEPER_V=1 run_timeout=200 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "tma sk"
run_timeout=100 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter " cf,"
run_timeout=40 run stdbuf -oL "$swajit" check --device cuda --family prefill --filter "persistent tma ws2 bm128 bn128 st2, chunked"
for deeper in 0 1; do
  echo "#### deeper V $deeper"
  export SWAJIT_PREFILL_DEEPER_V=$deeper
  for q in fp8 int8; do
    bench --num-kv-heads 8 --seq 4096,8192 --kv-quant $q --configs "${k}_dy_ts_f16_sk,${k}_dy_ts_f16_sk_cf"
    bench --num-kv-heads 8 --seq 32768 --kv-quant $q --configs "${k}_f16_sk,${k}_f16_sk_cf"
  done
done
unset SWAJIT_PREFILL_DEEPER_V
bench --num-kv-heads 8 --seq 4096,8192,32768
rm -f "$OUT/c8/sv.db"
} 2>&1 | tee "$OUT/c8/log.txt"
