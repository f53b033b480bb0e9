#!/usr/bin/env bash
# 8-bit K/V, one device call (issues 14 and 15): this tree beside a BASE binary for prefill, and the decode knob
# SWAJIT_DECODE_KV8_EVICT_FIRST off / on, with the check matrices of both families on another GPU.
#   tools/bench/gpu_kv8_ab.sh CARRY_DIR LOG_DIR [BASE_SWAJIT]   (BASE_SWAJIT default: CARRY_DIR/base/swajit)
# correctness (the last GPU): the whole prefill matrix, and the whole paged_decode matrix with the knob on, at once.
# bench (GPU 0), useful TFLOP/s and us with the floor on every row:
#   prefill: fp8 and int8 K/V (32 q / 8 kv heads, d128, window 4096 causal) at seq 8192 and 32768, and paged 16
#   shuffled at 32768, BASE and this tree alternated over two rounds; bf16's default beside them;
#   decode: the uniform grid (32 q / 8 kv heads, d128, page 16, window 4096, kv 32768) with fp8 and int8 K/V, batch
#   8-256, q 1 and 4, the knob off and on alternated over two rounds; bimodal fp8 the same way.
# With one GPU, correctness runs first. Logs: LOG_DIR/{correctness,bench}.log (whole outputs in details.tgz).
set -uo pipefail
usage="usage: gpu_kv8_ab.sh CARRY_DIR LOG_DIR [BASE_SWAJIT]"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
BASE=$(realpath "${3:-$CARRY/base/swajit}")
SCRATCH=$(mktemp -d /tmp/gpu_kv8.XXXXXX)
DETAILS=$SCRATCH/details
mkdir -p "$DETAILS"
export SWAJIT_SHIPPED=0  # "default" is the heuristic
gpus=$(nvidia-smi -L | wc -l)

correctness() {
  export SWAJIT_DB=$SCRATCH/correctness.db
  local pids=()
  (timeout 480 "$S" check --device cuda --family prefill >"$DETAILS/check_prefill.txt" 2>&1 ||
     echo "==== FAILED ($?)" >>"$DETAILS/check_prefill.txt") & pids+=($!)
  (export SWAJIT_DECODE_KV8_EVICT_FIRST=1 SWAJIT_DB=$SCRATCH/knob.db
   timeout 480 "$S" check --device cuda --family paged_decode >"$DETAILS/check_decode_kv8ef.txt" 2>&1 ||
     echo "==== FAILED ($?)" >>"$DETAILS/check_decode_kv8ef.txt") & pids+=($!)
  wait "${pids[@]}"
  for f in check_prefill check_decode_kv8ef; do
    echo "$f: $(grep -E 'passed|FAILED' "$DETAILS/$f.txt" | tail -2 | tr '\n' ' ')"
    grep -q "FAIL" "$DETAILS/$f.txt" && { grep -B2 -A8 "FAIL" "$DETAILS/$f.txt" | head -40; status=1; }
  done
}

GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768 --page-size 16)
rows() {  # rows CAP NAME BINARY ARGS...: the table rows of one bench run, its whole output in DETAILS
  local cap=$1 name=$2 binary=$3; shift 3
  echo "==== [$name] $*"
  timeout "$cap" "$binary" "$@" >"$DETAILS/$name.txt" 2>&1 || { echo "==== FAILED ($?)"; status=1; }
  grep -E '^\| *[0-9a-z]|rror|FAIL|rel' "$DETAILS/$name.txt" | grep -v "^| *-" | head -40
}

prefill_ab() {  # prefill_ab ROUND: fp8 and int8, BASE and this tree
  for quant in fp8 int8; do
    for binary in base new; do
      exe=$S; [ $binary = base ] && exe=$BASE
      rows 60 "prefill_${quant}_${binary}_$1" "$exe" bench prefill --seq 8192,32768 --num-kv-heads 8 \
        --kv-quant $quant --reps 10 | sed "s/^|/| $binary |/"
    done
  done
}
decode_ab() {  # decode_ab ROUND: the knob off and on
  for quant in fp8 int8; do
    for knob in 0 1; do
      SWAJIT_DECODE_KV8_EVICT_FIRST=$knob rows 60 "decode_${quant}_ef${knob}_$1" "$S" bench decode "${GRID[@]}" \
        --kv-quant $quant --batch 8,32,128,256 --q-seqlen 1,4 --reps 30 | sed "s/^|/| ef$knob |/"
    done
  done
  for knob in 0 1; do
    SWAJIT_DECODE_KV8_EVICT_FIRST=$knob rows 60 "decode_bimodal_fp8_ef${knob}_$1" "$S" bench decode --kv-quant fp8 \
      --batch 8,32,128,256 --q-seqlen 1 --distribution bimodal:512:131072:0.125 --seed 1 --reps 30 | sed "s/^|/| ef$knob |/"
  done
}
prefill_more() {  # paged 16 shuffled (BASE and this tree), bf16's default beside them
  for quant in fp8 int8; do
    for binary in base new; do
      exe=$S; [ $binary = base ] && exe=$BASE
      rows 40 "prefill_${quant}_paged_$binary" "$exe" bench prefill --seq 32768 --num-kv-heads 8 --kv-quant $quant \
        --page-size 16 --shuffle-pages --reps 10 | sed "s/^|/| $binary |/"
    done
  done
  rows 40 prefill_bf16 "$S" bench prefill --seq 8192,32768 --num-kv-heads 8 --reps 10
  rows 40 prefill_bf16_paged "$S" bench prefill --seq 32768 --num-kv-heads 8 --page-size 16 --shuffle-pages --reps 10
}

bench() {  # steps in this order while the call's budget lasts ($BENCH_BUDGET_S, default 500 s)
  export SWAJIT_DB=$SCRATCH/bench.db
  "$S" info | head -6
  local step
  for step in "prefill_ab 1" "decode_ab 1" "prefill_ab 2" "decode_ab 2" prefill_more; do
    if ((SECONDS > ${BENCH_BUDGET_S:-500})); then echo "==== SKIPPED (past the budget): $step"; continue; fi
    echo "== $step"
    $step
  done
}

if ((gpus > 1)); then
  (CUDA_VISIBLE_DEVICES=$((gpus - 1)) correctness >"$LOG/correctness.log" 2>&1; echo "correctness status $status" >>"$LOG/correctness.log") &
  CUDA_VISIBLE_DEVICES=0 bench > >(tee "$LOG/bench.log") 2>&1
  wait
  cat "$LOG/correctness.log"
  grep -q "correctness status 0" "$LOG/correctness.log" || status=1
else
  correctness > >(tee "$LOG/correctness.log") 2>&1
  bench > >(tee "$LOG/bench.log") 2>&1
fi
tar -czf "$LOG/details.tgz" -C "$SCRATCH" details
echo "gpu_kv8_ab.sh: $( ((status)) && echo 'SOME STEPS FAILED' || echo 'all steps ran')"
exit $status
