#!/usr/bin/env bash
# Issue 14's portability point on the GPU, from a checkout of main with the binaries of tools/bench/prepare_gpu_carry.sh:
#   tools/bench/gpu_portable.sh CARRY_DIR LOG_DIR [all|mid]
# Untuned against tuned in one run, on the same shapes, with the ratio per row. Neither side sees the shipped tuning
# data (SWAJIT_SHIPPED=0); each preset is tuned into a fresh database with short budgets, then `swajit bench decode
# --compare-heuristic` times, in one process, the tuned winner ("time (us)", config "tuned ...") and the
# device-derived heuristic ("heuristic (us)"); "speedup" = heuristic / tuned, the untuned SKU's loss. Each row's
# floor (bytes / the read bandwidth probed in the run) and % of it are printed beside the time, and each row's
# sequence 0 is checked against the reference ("rel err"). A shape whose tuning ran out of its cap shows
# "heuristic ..." as its config (1.00x): not tuned.
# Shapes (kv 32768): the decode grid (32 q / 8 kv heads, head_dim 128, window 4096, page 16) at batch 8, 32, 128 with
# q_seqlen 1 and batch 32, 128 with q_seqlen 4; the gemma-3-27b preset (32 q / 16 kv, head_dim 128, window 1024) at
# batch 8, 32, 128; the gpt-oss-20b preset (64 q / 8 kv, head_dim 64, window 128, learned sinks) at batch 32, 128,
# q_seqlen 1 and 4.
# all (about 3 minutes): correctness first (`swajit check` subsets with the configs the rule picks), then the
#   presets. mid (about 90 s): no check, no grid q_seqlen 4, shorter caps.
set -uo pipefail
usage="usage: gpu_portable.sh CARRY_DIR LOG_DIR [all|mid]"
source "$(dirname "$0")/gpu_script_args.sh"
WHAT=${3:-all}
# Databases (cubins) stay in /tmp: LOG_DIR comes back whole and must stay small.
SCRATCH=$(mktemp -d /tmp/gpu_portable.XXXXXX)
export SWAJIT_SHIPPED=0
exec > >(tee -a "$LOG/gpu_portable_$WHAT.log") 2>&1

# Per preset: batches, q_seqlens and the tuner's cap in seconds (a spec's first shape compiles its space: 10-30 s on
# the H200; later shapes of the spec 2-5 s; the largest batch first, whose space is the smallest, so that a cap cuts
# the smallest batch; batch 1 is left out: the most split candidates, tuned = heuristic within 1% in every run so far).
case $WHAT in
  all) GRID=(128,32,8 1 55) GRID_Q4=(128,32 4 30) GEMMA=(128,32,8 1 25) GPT_OSS=(128,32 1,4 35); CHECK=1 ;;
  mid) GRID=(8,32,128 1 25) GRID_Q4=() GEMMA=(8,32,128 1 20) GPT_OSS=(32,128 1,4 20); CHECK=0 ;;
  *) echo "$usage"; exit 2 ;;
esac

echo "== device (the heuristic's inputs: SMs, shared memory, memory clock x bus width)"
"$S" info | head -6
if ((CHECK)); then
  # The configs the rule picks, forced: 32-token tiles (bn32 wn2), one warp column, learned sinks, the bulk-copy
  # producer's bn32 wn2 st3 at head_dim 256; every tuner candidate and every bench row below is checked too.
  echo "== correctness: swajit check subsets (fresh database)"
  for f in "config bn" "learned sink logits" "producer 2, head_dim 256"; do
    out=$LOG/check_${f//[^a-zA-Z0-9]/_}.txt
    SWAJIT_DB=$SCRATCH/check.db timeout 40 "$S" check --filter "$f" >"$out" 2>&1 ||
      { echo "==== FAILED ($?): check --filter '$f'"; status=1; }
    grep -E "FAIL|passed" "$out" | tail -3
  done
fi

# untuned_vs_tuned PRESET BATCHES Q_SEQLENS CAP_S BENCH_SHAPE...: tune the preset's shapes into a fresh database
# (capped; the tuner keeps every finished shape), then time tuned and heuristic side by side.
untuned_vs_tuned() {
  local preset=$1 batches=$2 q=$3 cap=$4; shift 4
  local db=$SCRATCH/$preset.db
  echo "== $preset: tune (fresh database, cap $cap s), then tuned vs heuristic"
  SWAJIT_DB=$db run "$cap" "$S" tune --preset "$preset" --batch "$batches" --kv-len 32768 --q-seqlen "$q" \
    --quick-reps 3 --final-reps 15
  SWAJIT_DB=$db run 60 "$S" bench decode "$@" --batch "$batches" --kv-len 32768 --q-seqlen "$q" --reps 30 \
    --compare-heuristic
}
MISTRAL=(--num-q-heads 32 --num-kv-heads 8 --head-dim 128 --local-window 4096)
untuned_vs_tuned mistral-7b "${GRID[@]}" "${MISTRAL[@]}"
((${#GRID_Q4[@]})) && untuned_vs_tuned mistral-7b "${GRID_Q4[@]}" "${MISTRAL[@]}"
untuned_vs_tuned gemma-3-27b "${GEMMA[@]}" --num-q-heads 32 --num-kv-heads 16 --head-dim 128 --local-window 1024
untuned_vs_tuned gpt-oss-20b "${GPT_OSS[@]}" --num-q-heads 64 --num-kv-heads 8 --head-dim 64 --local-window 128 \
  --sink-logits

rm -rf "$SCRATCH"
echo "gpu_portable.sh $WHAT: $( ((status)) && echo 'SOME STEPS FAILED OR WERE CAPPED' || echo 'all steps ran')"
exit $status
