#!/usr/bin/env bash
# One device session: prebuilt binaries (carried in .carry/, made by tools/bench/prepare_gpu_carry.sh) check
# correctness and time everything, logs in $OUT.
# Usage on the GPU machine, from the repository root: tools/bench/gpu_session.sh [what...]
#   what: info tests check bench bench_int8 bench_fp8 peers prefill (default: all of them); also prefill_tune, sweeps
set -uo pipefail
out=${OUT:-/tmp/swajit-out}
mkdir -p "$out"
bin=.carry
export LD_LIBRARY_PATH=$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # libsqlite3 from the build machine
what=${*:-info tests check bench bench_int8 bench_fp8 peers prefill}
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
    sweep_b1)  # batch-1 configs by hand: block_n / warps_n / stages / splits
      for cfg in ${B1_CONFIGS:-64:4:3:8 64:4:3:16 64:4:3:32 64:4:3:64 32:2:3:32 32:2:3:64 32:2:4:128 128:4:2:16 128:4:2:32 64:2:3:32 64:1:3:32}; do
        set -- ${cfg//:/ }
        echo "config block_n=$1 warps_n=$2 stages=$3 splits=$4"
        $bin/swajit bench decode --batch 1 --kv-len 32768 --q-seqlen 1,4 --block-n $1 --warps-n $2 --stages $3 --splits $4 2>&1 | grep '^| 1 '
      done 2>&1 | tee "$out/sweep_b1.log" ;;
    first_use)  # every kernel of the check matrix compiled from scratch, one at a time
      SWAJIT_DB=/tmp/swajit-fresh-$$.db $bin/swajit check 2>&1 | tail -3 | tee "$out/first_use.log" ;;
    tune)  # the decode bench grid (mistral-7b attention), then the comparison and a second process loading it
      export SWAJIT_DB="$out/tuning.db"
      $bin/swajit tune --preset mistral-7b 2>&1 | tee "$out/tune_mistral.log"
      $bin/swajit tune --preset mistral-7b 2>&1 | head -3   # resumable: nothing left to do
      $bin/swajit bench decode --compare-heuristic 2>&1 | tee "$out/bench_tuned.log"
      $bin/swajit bench load 2>&1 | tee "$out/load.log"
      $bin/swajit tune --preset gemma-3-27b --batch 8,32 --kv-len 32768 --q-seqlen 1 --shard 0/2 --db /tmp/s0.db | tail -4
      $bin/swajit tune --preset gemma-3-27b --batch 8,32 --kv-len 32768 --q-seqlen 1 --shard 1/2 --db /tmp/s1.db | tail -4
      $bin/swajit tune --preset gpt-oss-20b --batch 32 --kv-len 32768 --q-seqlen 1,4 2>&1 | tail -4
      $bin/swajit db merge /tmp/s0.db && $bin/swajit db merge /tmp/s1.db
      $bin/swajit db list | tee "$out/db_list.log"; $bin/swajit db show; $bin/swajit db verify
      $bin/swajit db export "$out/h100_tuning.json" ;;
    tune_small)  # shards tuned apart and merged, a learned-sinks preset, export/import, loads in a fresh process
      export SWAJIT_DB="$out/tuning_small.db"
      $bin/swajit tune --preset gemma-3-27b --batch 8,32 --kv-len 32768 --q-seqlen 1 --shard 0/2 --db /tmp/s0.db | tail -3
      $bin/swajit tune --preset gemma-3-27b --batch 8,32 --kv-len 32768 --q-seqlen 1 --shard 1/2 --db /tmp/s1.db | tail -3
      $bin/swajit tune --preset gpt-oss-20b --batch 1,32 --kv-len 32768 --q-seqlen 1,4 2>&1 | grep -v '^\[' | tail -6
      $bin/swajit db merge /tmp/s0.db && $bin/swajit db merge /tmp/s1.db
      $bin/swajit db list | tee "$out/db_list.log"; $bin/swajit db show; $bin/swajit db verify
      $bin/swajit db export "$out/tuning_small.json" && $bin/swajit db import "$out/tuning_small.json" --db /tmp/imported.db
      $bin/swajit bench load 2>&1 | tee "$out/load.log"
      $bin/swajit bench decode --num-q-heads 64 --num-kv-heads 8 --head-dim 64 --local-window 128 --sink-logits --batch 1,32 --kv-len 32768 --q-seqlen 1,4 --compare-heuristic 2>&1 | tail -6 ;;
    prefill_tune)  # the prefill bench grid tuned into $out/prefill.db; the prefill step after it then uses the winners
      export SWAJIT_DB="$out/prefill.db"
      $bin/swajit tune --family prefill --quick-reps 3 --final-reps 10 2>&1 | tee "$out/tune_prefill.log" ;;
    prefill)  # bf16 matmul rate, swajit prefill beside it, then FlexAttention / SDPA prefill, all in this run
      matmul=$(python3 -c "
import torch
from triton.testing import do_bench
x = torch.randn(8192, 8192, dtype=torch.bfloat16, device='cuda'); y = torch.randn_like(x)
ms = do_bench(lambda: x @ y, warmup=50, rep=300, return_mode='median')
print(round(2 * 8192**3 / (ms * 1e-3) / 1e12, 1))")
      $bin/swajit bench prefill --matmul-tflops "$matmul" 2>&1 | tee "$out/bench_prefill.log"
      PYTHONUNBUFFERED=1 python3 .peers/flex_prefill_decode.py prefill 2>&1 | grep -v Warning | tee "$out/peers_prefill.log" ;;
    prefill_sweep)  # configs by hand at the largest shape
      for cfg in ${PREFILL_CONFIGS:-"192 64 2 true 1" "128 64 2 true 2" "64 64 2 true 3" "64 64 3 true 3" "64 128 2 true 2" "192 128 2 true 1"}; do
        set -- $cfg
        echo "config block_m=$1 block_n=$2 stages=$3 wgmma=$4 min_blocks=$5"
        $bin/swajit bench prefill --seq 32768 --num-kv-heads 8 --block-m $1 --block-n $2 --stages $3 --wgmma $4 --min-blocks $5 2>&1 | grep -E '^\| [0-9]|rror'
      done 2>&1 | tee "$out/prefill_sweep.log" ;;
    peers) PYTHONUNBUFFERED=1 python3 .peers/flex_decode_graph.py 2>&1 | grep -v Warning | tee "$out/peers_decode.log" ;;
    *) "$bin/swajit" $step ;;
  esac
done
