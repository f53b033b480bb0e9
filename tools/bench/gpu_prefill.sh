#!/usr/bin/env bash
# Issue 15 on the GPU machine: prefill correctness with each new knob forced, then first-use JIT times, then the
# prefill bench grid with each knob against today's default, alternated over rounds in one run.
# Usage (from a checkout of branch s3-prefill): tools/bench/gpu_prefill.sh CARRY_DIR LOG_DIR
#   CARRY_DIR: what tools/bench/prepare_gpu_carry.sh made (.carry: swajit, the GPU test binaries, lib/)
#   MATMUL_TFLOPS: the bf16 matmul rate measured in the same run (floor column); default 700 (686-714 measured on
#   the H200 in earlier runs: the peers print kind=ceiling_mm_bf16 for this run).
# Compare with the FlashInfer peer rows of the same run: flashinfer_peer.py prefill (grid rows, fa3/fa2) and
# tools/bench/prefill_peers.py (head_dim 64/256, GQA 32/4, varlen chunked paged rows).
set -uo pipefail
carry=$(cd "$1" && pwd) logs=$2
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib
export SWAJIT_DB=$logs/prefill_fresh.db  # a fresh database: first uses compile, nothing tuned is picked up
rm -f "$SWAJIT_DB"
swajit=$carry/swajit
mm=${MATMUL_TFLOPS:-700}
status=0
run() {  # logs the command and its output; remembers a failure
  echo "==== $*"
  "$@" || { echo "==== FAILED ($?): $*"; status=1; }
}

# Configs (ConfigFlags apply on top of PrefillConfig{}: every knob is spelled out). "default" is the H200 heuristic.
declare -A config=(
  [default]=""
  [ws1_tma]="--block-m 192 --block-n 64 --stages 3 --wgmma true --warp-specialize 1 --tma true"
  [ws2_tma]="--block-m 192 --block-n 64 --stages 3 --wgmma true --warp-specialize 2 --tma true"
  [ws3]="--block-m 128 --block-n 64 --stages 3 --wgmma true --warp-specialize 3"
  [ws3_tma]="--block-m 128 --block-n 64 --stages 3 --wgmma true --warp-specialize 3 --tma true"
)
order="default ws1_tma ws2_tma ws3 ws3_tma"

{
  # 1. correctness: every prefill case of the check matrix (the tma cases force the new knob), then the GPU suite's
  #    prefill cases
  run "$swajit" check --device cuda --filter tma
  run "$swajit" check --device cuda
  run "$carry/test_decode_gpu" -tc="*prefill*"

  # 2. first use of one kernel with a fresh database: generate + NVRTC + module load, per variant
  key=prefill_bf16_d128_contig_g4_local
  for name in $order; do
    [ -z "${config[$name]}" ] && flags="--block-m 192 --block-n 64 --stages 3 --wgmma true --warp-specialize 1" \
      || flags=${config[$name]}
    run "$swajit" gen --key "$key" $flags --jit-time
  done

  # 3. the grid (32 q heads, 32 and 8 kv heads, head_dim 128, window 4096, seq 4K..32K), each config in
  #    turn, two rounds; then the paged path (page 16 and 64) against the contiguous one
  for round in 1 2; do
    for name in $order; do
      echo "#### round $round config $name"
      run "$swajit" bench prefill --matmul-tflops "$mm" ${config[$name]}
    done
  done
  for page in 16 64; do
    for name in default ws1_tma; do
      echo "#### paged $page config $name"
      run "$swajit" bench prefill --matmul-tflops "$mm" --page-size "$page" --seq 8192,32768 ${config[$name]}
    done
  done

  # 4. the rows tools/bench/prefill_peers.py times for FlashInfer (the same shapes), default vs ws1_tma
  for name in default ws1_tma; do
    echo "#### peer rows config $name"
    for d in 64 256; do
      flags=${config[$name]}
      if [ "$d" = 256 ] && [ -n "$flags" ]; then  # 192 rows or 3 stages of d256 tiles overflow shared memory
        flags=${flags/--block-m 192/--block-m 64}
        flags=${flags/--stages 3/--stages 2}
      fi
      run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --seq 8192,32768 --num-kv-heads 8 --head-dim "$d" $flags
    done
    run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --seq 8192,32768 --num-kv-heads 4 ${config[$name]}
    run "$swajit" bench prefill --reps 10 --matmul-tflops "$mm" --num-kv-heads 8 --page-size 16 --prefix-len 4096 \
      --q-lens 512,640,768,1024,1280,1536,2048,2560,3072,3584,4096,5120,6144,7168,7680,8192 ${config[$name]}
  done
  echo "==== gpu_prefill.sh done, status $status"
  exit "$status"
} 2>&1 | tee "$logs/gpu_prefill.log"
exit "${PIPESTATUS[0]}"
