#!/usr/bin/env bash
# A session's first device call: is the tree correct on the GPU, and where does every issue-14/19 decode row stand
# beside FlashInfer in the same call. Binaries from tools/bench/prepare_gpu_carry.sh; FlashInfer's wheels in .whl/
# and its peer scripts (plus ../shared/peers/flashinfer_jit_h200.tgz) in .peers/ (../shared/peers/README.md).
#   tools/bench/gpu_wave.sh CARRY_DIR LOG_DIR [all|correctness|bench]
# correctness (the last GPU), steps $CORRECTNESS_STEPS (default all of):
#   race: the check case that exposed session 10's harness race ("capacity schedule", seeds 1..8);
#   families: every family's check matrix (three processes at once);
#   suite: the GPU suite without its three matrices (they repeat `swajit check`), warm start and the kernel cache;
#   knobs: the ragged and capacity cases under each setting of $CHECK_KNOBS (space-separated VAR=VALUE, default none).
# families and suite run at once (their timings are not read).
# bench (GPU 0), steps $BENCH_STEPS (default all of):
#   grid: the uniform grid, device and host lengths; shapes: gpt-oss, Gemma 3, pages 1 and 64, fp8;
#   ragged: both distributions q1/q4 (lengths written for ragged_peer.py) and bimodal fp8;
#   knobs: uniform-grid and ragged rows under "default" and each VAR=VALUE of $KNOBS (default: evict-first K/V copies
#   off), alternated, two rounds;
#   fi_decode: FlashInfer on the same shapes (decode_peers.py; $FI_CASES, default all: grid, gemma3, gpt-oss, fp8,
#   page1, page64; only the bf16 head_dim 128 modules are in the JIT cache, the others build for minutes);
#   fi_ragged: on the same lengths (ragged_peer.py), bimodal also with an fp8 cache.
# With two GPUs both halves run at once; with one, correctness first. The device tool brings back at most 8 files:
# each half writes one log, and every command's whole output goes into LOG_DIR/details.tgz. Everything at once takes
# more than one call's 600 s (H200 x2, session 11: race 320 s, families and suite 360 s; grid + shapes 3 min, ragged
# + knobs 4, fi_decode 4 with its module builds, fi_ragged 1): choose the steps of each call.
set -uo pipefail
usage="usage: gpu_wave.sh CARRY_DIR LOG_DIR [all|correctness|bench]"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/gpu_script_args.sh"
WHAT=${3:-all}
SCRATCH=$(mktemp -d /tmp/gpu_wave.XXXXXX)  # databases and FlashInfer's workspace: LOG comes back whole
DETAILS=$SCRATCH/details  # each command's whole output, tarred into LOG at the end
mkdir -p "$DETAILS"
CORRECTNESS_STEPS=${CORRECTNESS_STEPS:-race families suite knobs}
CHECK_KNOBS=${CHECK_KNOBS:-}
KNOBS=${KNOBS:-SWAJIT_DECODE_KV_EVICT_FIRST=0}
BENCH_STEPS=${BENCH_STEPS:-grid shapes ragged knobs fi_decode fi_ragged}
wanted() { [[ " $1 " == *" $2 "* ]]; }
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped
gpus=$(nvidia-smi -L | wc -l)

check_family() {  # check_family NAME [check args...]: one check run, its summary line
  local name=$1; shift
  local out=$DETAILS/check_$name.txt start=$SECONDS
  timeout "${CHECK_CAP_S:-400}" "$S" check --device cuda "$@" >"$out" 2>&1 || echo "==== FAILED ($?): check $*" >>"$out"
  echo "check $name ($((SECONDS - start)) s): $(grep -E 'passed|FAILED' "$out" | tail -2 | tr '\n' ' ')"
}

correctness() {
  export SWAJIT_DB=$SCRATCH/correctness.db
  local jobs=()  # background checks, waited for below
  if wanted "$CORRECTNESS_STEPS" race; then
    echo "== the harness-race case over 8 seeds"
    for seed in 1 2 3 4 5 6 7 8; do check_family "capacity_seed$seed" --filter "capacity schedule" --seed "$seed"; done
  fi
  if wanted "$CORRECTNESS_STEPS" families; then
    echo "== every family's matrix, three processes (and the suite beside them)"
    for family in paged_decode prefill sparse_decode; do check_family "$family" --family "$family" & jobs+=($!); done
  fi
  local suites=(test_decode_gpu test_warm_start test_kernel_cache)
  if wanted "$CORRECTNESS_STEPS" suite; then
    (start=$SECONDS  # a background subshell: its verdict is read from the logs after the wait
     timeout "${CHECK_CAP_S:-400}" "$CARRY/test_decode_gpu" -tce="*correctness matrix*" >"$DETAILS/test_decode_gpu.txt" 2>&1
     echo "test_decode_gpu without its matrices ($((SECONDS - start)) s): $(tail -3 "$DETAILS/test_decode_gpu.txt" | tr '\n' ' ')"
     for suite in "${suites[@]:1}"; do  # (test_decode_gpu above)
       timeout 120 "$CARRY/$suite" >"$DETAILS/$suite.txt" 2>&1
       echo "$suite: $(tail -2 "$DETAILS/$suite.txt" | tr '\n' ' ')"
     done) &
    jobs+=($!)
  fi
  # Its own jobs only: a bare `wait` also waits for a process substitution this function's output goes to (the
  # one-GPU `all` tees it), which waits for this function: a hang until the call's cap (session 14, call 4).
  ((${#jobs[@]} == 0)) || wait "${jobs[@]}"
  if wanted "$CORRECTNESS_STEPS" suite; then
    for suite in "${suites[@]}"; do
      grep -q "Status: SUCCESS" "$DETAILS/$suite.txt" || { echo "==== FAILED: $suite"; status=1; }
    done
  fi
  if wanted "$CORRECTNESS_STEPS" knobs; then
    for knob in $CHECK_KNOBS; do
      echo "== $knob: ragged and capacity cases"
      for filter in ragged capacity; do
        (export "${knob?}" SWAJIT_DB=$SCRATCH/knob.db; check_family "${knob##*_}_$filter" --filter $filter)
      done
    done
  fi
  grep -l "FAIL" "$DETAILS"/check_*.txt 2>/dev/null && status=1
}

GRID=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096 --kv-len 32768)
GPT_OSS=(--num-q-heads 64 --num-kv-heads 8 --head-dim 64 --local-window 128 --sink-logits --kv-len 32768)
GEMMA3=(--num-q-heads 32 --num-kv-heads 16 --head-dim 256 --local-window 1024 --kv-len 32768)
BATCHES=(--batch 1,8,32,128,256)
LOG_UNIFORM=log-uniform:100:100000 BIMODAL=bimodal:512:131072:0.125

rows() {  # rows CAP NAME bench-decode-args...: the table rows, whole output in DETAILS
  local cap=$1 name=$2; shift 2
  echo "==== [$name] bench decode $*"
  timeout "$cap" "$S" bench decode "$@" --reps 30 >"$DETAILS/bench_$name.txt" 2>&1 || { echo "==== FAILED ($?)"; status=1; }
  grep -E '^\| *[0-9]|rror|FAIL' "$DETAILS/bench_$name.txt"
}

bench() {
  export SWAJIT_DB=$SCRATCH/bench.db
  "$S" info | head -8
  if wanted "$BENCH_STEPS" grid; then
    echo "== swajit, uniform grid, device lengths then host lengths"
    rows 60 grid "${GRID[@]}" "${BATCHES[@]}" --q-seqlen 1,4
    rows 60 grid_host "${GRID[@]}" "${BATCHES[@]}" --q-seqlen 1,4 --host-lengths true
  fi
  if wanted "$BENCH_STEPS" shapes; then
    echo "== swajit, beyond the grid"
    rows 45 gpt_oss "${GPT_OSS[@]}" "${BATCHES[@]}" --q-seqlen 1
    rows 45 gemma3 "${GEMMA3[@]}" "${BATCHES[@]}" --q-seqlen 1
    rows 45 gemma3_host "${GEMMA3[@]}" "${BATCHES[@]}" --q-seqlen 1 --host-lengths true
    rows 45 page1 "${GRID[@]}" --page-size 1 "${BATCHES[@]}" --q-seqlen 1
    rows 45 page64 "${GRID[@]}" --page-size 64 "${BATCHES[@]}" --q-seqlen 1
    rows 45 fp8 "${GRID[@]}" --kv-quant fp8 "${BATCHES[@]}" --q-seqlen 1,4
    rows 45 fp8_host "${GRID[@]}" --kv-quant fp8 --batch 8,32,128 --q-seqlen 1,4 --host-lengths true
  fi
  if wanted "$BENCH_STEPS" ragged; then
    echo "== swajit, ragged (seed 1; lengths written for ragged_peer.py)"
    for dist in $LOG_UNIFORM $BIMODAL; do
      name=${dist%%:*}
      rows 90 "$name" --batch 8,32,64,128,256 --q-seqlen 1,4 --distribution "$dist" --seed 1 --write-lengths "$DETAILS/lengths/$name"
    done
    rows 45 bimodal_fp8 --kv-quant fp8 --batch 8,32,64,128,256 --q-seqlen 1 --distribution $BIMODAL --seed 1
  fi
  if wanted "$BENCH_STEPS" knobs; then
    echo "== knobs on uniform-grid and ragged rows, alternated: default, $KNOBS"
    for round in 1 2; do
      for knob in default $KNOBS; do
        for dist in uniform $LOG_UNIFORM $BIMODAL; do
          local shape=(--distribution "$dist" --seed 1)
          [ "$dist" = uniform ] && shape=("${GRID[@]}")
          ( [ "$knob" = default ] || export "${knob?}"
            rows 60 "knob_${knob##*_}_${dist%%:*}_$round" --batch 8,32,128,256 --q-seqlen 1,4 "${shape[@]}" |
              sed "s/^|/| $knob |/" )
        done
      done
    done
  fi
  local site=$SCRATCH/site
  if wanted "$BENCH_STEPS" fi_decode || wanted "$BENCH_STEPS" fi_ragged; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl ||
      { echo "==== FAILED: FlashInfer wheels"; status=1; return; }
    export PYTHONPATH=$site FLASHINFER_WORKSPACE_BASE=$SCRATCH/flashinfer_ws
  fi
  if wanted "$BENCH_STEPS" fi_decode; then
    echo "== FlashInfer: decode_peers.py"
    OUT=$DETAILS run "${FI_DECODE_CAP_S:-260}" python3 "$HERE/decode_peers.py" --budget-s "${FI_DECODE_BUDGET_S:-200}" \
      --jit-cache .peers/flashinfer_jit_h200.tgz --cases "${FI_CASES:-grid,gemma3,gpt-oss,fp8,page1,page64}" >"$DETAILS/fi_decode.txt" 2>&1
    grep -E "kind=|skipped|rror" "$DETAILS/fi_decode.txt" | grep -v "^kind=ceiling" | tail -80
  fi
  if wanted "$BENCH_STEPS" fi_ragged; then
    echo "== FlashInfer: ragged_peer.py on the same lengths"
    for dist in log-uniform bimodal; do
      run 90 python3 "$HERE/ragged_peer.py" "$DETAILS/lengths/$dist" --peers .peers 2>&1 | grep -E "kind=|rror"
    done
    # the bimodal_fp8 rows' peer (the ragged step writes no fp8 lengths: the seed-1 bimodal lengths are the same)
    run 120 python3 "$HERE/ragged_peer.py" "$DETAILS/lengths/bimodal" --peers .peers --kv-dtype fp8 2>&1 | grep -E "kind=|rror"
  fi
}

case $WHAT in
  correctness) correctness ;;
  bench) bench ;;
  all)
    if ((gpus > 1)); then
      (CUDA_VISIBLE_DEVICES=$((gpus - 1)) correctness >"$LOG/correctness.log" 2>&1; echo "correctness status $status" >>"$LOG/correctness.log") &
      CUDA_VISIBLE_DEVICES=0 bench > >(tee "$LOG/bench.log") 2>&1
      wait
      cat "$LOG/correctness.log"
      grep -q "correctness status 0" "$LOG/correctness.log" || status=1
    else
      correctness > >(tee "$LOG/correctness.log") 2>&1
      bench > >(tee "$LOG/bench.log") 2>&1
    fi ;;
  *) echo "$usage"; exit 2 ;;
esac
tar -czf "$LOG/details.tgz" -C "$SCRATCH" details
echo "gpu_wave.sh $WHAT: $( ((status)) && echo 'SOME STEPS FAILED' || echo 'all steps ran')"
exit $status
