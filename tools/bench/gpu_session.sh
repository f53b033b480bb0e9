#!/usr/bin/env bash
# One device session: prebuilt binaries (carried in .carry/) check correctness and time everything, logs in $OUT.
# Usage on the GPU machine, from the repository root: tools/bench/gpu_session.sh [what...]
#   what: info tests check bench bench_int8 bench_fp8 peers (default: all of them)
set -uo pipefail
out=${OUT:-/tmp/swajit-out}
mkdir -p "$out"
bin=.carry
what=${*:-info tests check bench bench_int8 bench_fp8 peers}
for step in $what; do
  echo "==== $step"
  case $step in
    info) nvidia-smi -L; nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv
          $bin/swajit info 2>&1 | tee "$out/info.log" ;;
    tests) $bin/test_decode_gpu 2>&1 | tee "$out/test_decode_gpu.log" | tail -25 ;;
    check) $bin/swajit check 2>&1 | tee "$out/check.log" | tail -60 ;;
    bench) $bin/swajit bench decode 2>&1 | tee "$out/bench_decode.log" ;;
    bench_int8) $bin/swajit bench decode --kv-quant int8 2>&1 | tee "$out/bench_decode_int8.log" ;;
    bench_fp8) $bin/swajit bench decode --kv-quant fp8 2>&1 | tee "$out/bench_decode_fp8.log" ;;
    peers) PYTHONUNBUFFERED=1 python3 .peers/flex_decode_graph.py 2>&1 | grep -v Warning | tee "$out/peers_decode.log" ;;
    *) "$bin/swajit" $step ;;
  esac
done
