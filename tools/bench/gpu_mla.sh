#!/usr/bin/env bash
# Issue 16 shape (b), the MLA kernels on the lent GPU (about a minute with no option): correctness first (`swajit check`
# of every shared 576 / 512 case of the sparse matrix: the default path, which takes the MLA kernel for groups above
# 32 on sm_90a, and the copies forcing each MLA kernel and knob), then `swajit bench sparse --shape b` (128 q heads
# over one 576 / 512 latent head, topk 2048, without and with a 128-token window and sinks; batch 1, 32, 128): the
# default (the heuristic's: the warp-specialized kernel where the split rule gives at most 2 splits, else the
# two-warpgroup one), BASE (session 7's final binary in CARRY/../mainJ, if carried), the seesaw schedule (seesaw: the
# two warpgroups score alternate whole tiles, each one's softmax under the other's wgmmas), each beside its floor =
# max(bytes / read bandwidth, FLOPs / matmul rate, both measured here).
# Options: --bounds: what bounds batch 128 (the same work without the gather's reads);
# --knobs: also each kernel forced and the knobs that lost in session 7 (split_scores, copy_ahead + score_ahead);
# --ncu: ncu (SpeedOfLight, ComputeWorkloadAnalysis, WarpStateStats, MemoryWorkloadAnalysis and its tables,
# InstructionStats, SourceCounters, every stall reason) of one batch-128 launch of swajit's default MLA kernel (the
# warp-specialized one, 1 split); --ncu-peer: the same of FlashInfer's MLA kernel
# (tools/bench/mla_fi_call.py, FlashInfer's wheels from .whl/); --peers: the peers of shape b at batch 128
# (tools/bench/sparse_peers.py); --tma-probe: CARRY/tma_row_probe or one beside this script (tools/bench/tma_row_probe.cu);
# --short (under 90 s, nothing else): the check, the default and BASE at batch 32 and 128, and the shared-memory bank
# conflicts (ncu, loads and stores) of the default kernel at batch 128, this build's and BASE's.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_mla.sh CARRY LOGDIR [--short] [--bounds] [--knobs] [--ncu] [--ncu-peer] [--peers] [--tma-probe]
here=$(cd "$(dirname "$0")" && pwd)
db_name=mla.db run_timeout=60  # a hung kernel costs at most a minute
source "$here/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # the heuristic, not a shipped winner
has() { [[ " ${*:2} " == *" $1 "* ]]; }
short=0
has --short "$@" && short=1

start=$SECONDS
probe=$(ls "$carry/tma_row_probe" "$here/tma_row_probe" 2>/dev/null | head -1)  # built from tools/bench/tma_row_probe.cu
if has --tma-probe "$@" && [ -n "$probe" ]; then
  echo "==== does a one-row TMA box land in WgmmaTile's swizzle at any row? (tools/bench/tma_row_probe.cu)"
  timeout 20 "$probe" 2>&1 | tee "$logs/tma_row_probe.log"
fi
# The machine code of the MLA kernels, when cubins compiled from `swajit gen` were put beside this script (this machine
# has no disassembler): instruction counts per tile are the evidence the stall reasons point at.
if command -v cuobjdump >/dev/null; then
  for cubin in "$here"/*.cubin; do
    [ -f "$cubin" ] && cuobjdump -sass "$cubin" > "$logs/$(basename "$cubin" .cubin).sass" 2>&1
  done
fi
# The seesaw cases alone first, under a shorter limit (a hang there must not cost the whole check).
[ $short = 1 ] || run_timeout=30 run "$swajit" check --device cuda --family sparse_decode --filter mla_sw > "$logs/check_seesaw.log" 2>&1
[ $short = 1 ] || echo "==== seesaw cases: $(grep -E "passed," "$logs/check_seesaw.log" || echo "did not finish") ($((SECONDS - start)) s)"
[ $short = 1 ] || grep -E "^FAIL|rror" "$logs/check_seesaw.log" | cut -c1-200 | head -10
run "$swajit" check --device cuda --family sparse_decode --filter 576 > "$logs/check_mla.log" 2>&1
echo "==== correctness, swajit check (every 576 / 512 case; MLA kernels forced and default): $([ $status -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - start)) s)"
grep -E "^FAIL|passed,|rror" "$logs/check_mla.log" | cut -c1-200 | head -40
# The knobs' benches only when their cases passed (a hang there would cost a minute per bench).
knobs_ok=1
if grep -qE "^FAIL.*(_ws|_l2|_ca|_sa|_ss|_sw)" "$logs/check_mla.log" || ! grep -q "passed," "$logs/check_mla.log"; then
  knobs_ok=0
  echo "==== a knob's cases failed or the check did not finish: the knobs' benches are skipped"
fi

mm=$(bash "$here/matmul_tflops.sh")
echo "==== bf16 matmul rate for the floor (torch, 8192^3): ${mm} TFLOP/s"
bench=("$swajit" bench sparse --shape b --matmul-tflops "${mm:-0}")
echo "==== the default (the heuristic's kernel and splits)"
default_batches=1,32,128
[ $short = 1 ] && default_batches=32,128
run "${bench[@]}" --batch $default_batches --reps 20 2>&1 | tee "$logs/bench_default.log"
base=$carry/../mainJ  # session 7's final binary (BASE), when the run carries it
if [ -x "$base/swajit" ]; then
  echo "==== BASE (session 7's final binary, .carry/mainJ), the same bench"
  LD_LIBRARY_PATH=$base/lib run "$base/swajit" bench sparse --shape b --matmul-tflops "${mm:-0}" --batch 32,128 --reps 10 \
    2>&1 | tee "$logs/bench_base.log" | grep "^| b"
fi
if [ $short = 1 ]; then
  # Shared-memory bank conflicts of the default kernel at batch 128 (one launch, warp specialized 64 x 2, 1 split):
  # this build's against BASE's (wavefronts: every shared access's, conflicts included).
  conflict_metrics=l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum
  conflict_metrics+=,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum
  conflict_metrics+=,smsp__inst_executed.sum,gpu__time_duration.sum
  ncu_conflicts() {
    local name=$1 binary=$2 libs=$3
    LD_LIBRARY_PATH=$libs timeout 30 ncu --metrics "$conflict_metrics" --kernel-name regex:swajit_sparse --launch-skip 1 --launch-count 1 \
      "$binary" bench sparse --shape b --batch 128 --reps 1 --mla true --warp-specialize 1 --block-n 64 --stages 2 --splits 1 \
      > "$logs/ncu_conflicts_$name.log" 2>&1
    echo "==== ncu, batch 128, the default kernel's shared-memory bank conflicts: $name"
    grep -E "l1tex__|smsp__inst|gpu__time" "$logs/ncu_conflicts_$name.log" | head -8
  }
  if command -v ncu >/dev/null; then
    ncu_conflicts this "$swajit" "$carry/lib"
    [ -x "$base/swajit" ] && ncu_conflicts base "$base/swajit" "$base/lib"
  fi
  echo "==== done ($((SECONDS - start)) s)"
  exit $status
fi
seesaw=(--mla true --warp-specialize 0 --seesaw true)
if [ $knobs_ok = 1 ]; then
  echo "==== seesaw (the warpgroups score alternate whole tiles: --mla true --warp-specialize 0 --seesaw true)"
  run "${bench[@]}" --batch 1,32,128 --reps 10 "${seesaw[@]}" 2>&1 | tee "$logs/bench_seesaw.log" | grep "^| b"
  echo "==== seesaw in 32-token tiles, four stages (the next pair's tiles in flight under a whole pair: --block-n 32 --stages 4)"
  run "${bench[@]}" --batch 1,32,128 --reps 10 "${seesaw[@]}" --block-n 32 --stages 4 2>&1 | tee "$logs/bench_seesaw32.log" | grep "^| b"
  echo "==== bound, batch 128, --empty-selection (no reads): seesaw 64 x 2, 32 x 4, the default"
  run "${bench[@]}" --batch 128 --reps 10 "${seesaw[@]}" --empty-selection 2>&1 | tee "$logs/bound_seesaw_empty.log" | grep "^| b"
  run "${bench[@]}" --batch 128 --reps 10 "${seesaw[@]}" --block-n 32 --stages 4 --empty-selection 2>&1 \
    | tee "$logs/bound_seesaw32_empty.log" | grep "^| b"
  run "${bench[@]}" --batch 128 --reps 10 --empty-selection 2>&1 | tee "$logs/bound_empty.log" | grep "^| b"
fi
if [ $knobs_ok = 1 ] && has --knobs "$@"; then
  echo "==== each kernel forced: warp specialized 64 x 2 (the default from 2 splits down), two warpgroups (batch 1's)"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 --block-n 64 --stages 2 2>&1 \
    | tee "$logs/bench_ws64.log" | grep "^| b"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 0 2>&1 | tee "$logs/bench_two_warpgroups.log" \
    | grep "^| b"
  echo "==== knob: split_scores (the warpgroups split S's columns, each m64 n64 over the whole tile: --split-scores true)"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --split-scores true 2>&1 | tee "$logs/bench_split_scores.log" | grep "^| b"
  echo "==== knob: copy_ahead and score_ahead (tile t + 1's scores under tile t's softmax: --copy-ahead true --score-ahead true)"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --copy-ahead true --score-ahead true 2>&1 | tee "$logs/bench_score_ahead.log" \
    | grep "^| b"
fi
if has --bounds "$@"; then
  # What bounds batch 128: the same work with every index -1 (no gathered reads: the tensor cores, the softmax, the
  # barriers and the gather's instructions alone; the floor column still counts the full reads), for the default and
  # each kernel structure. (Run B: rows from L2 instead, --index-span 64, ran within 6% of the default.)
  echo "==== bound, batch 128, --empty-selection (no reads): the two-warpgroup kernel, split_scores"
  if [ $knobs_ok = 1 ]; then
    run "${bench[@]}" --batch 128 --reps 10 --mla true --warp-specialize 0 --empty-selection 2>&1 \
      | tee "$logs/bound_two_warpgroups_empty.log" | grep "^| b"
    run "${bench[@]}" --batch 128 --reps 10 --split-scores true --empty-selection 2>&1 | tee "$logs/bound_ss_empty.log" \
      | grep "^| b"
  fi
fi
echo "==== benches done ($((SECONDS - start)) s)"
# The tensor work and the gather alone, one block per SM (tools/bench/mla_wgmma_probe.cu: the binary beside this
# script, else built here when nvcc is on the machine): what a tile's wgmmas and copies cost without the softmax or
# any barrier.
probe_bin=$here/mla_wgmma_probe
if [ ! -x "$probe_bin" ] && command -v nvcc >/dev/null; then
  { "$swajit" gen --family sparse_decode --dtype bf16 --head-dim 576 --head-dim-v 512 --shared-kv --page-size 64 --group 128 \
      --topk 2048 --mma true --mla true --seesaw true --splits 1 --l2-ahead false --table-prefetch false
    cat "$here/mla_wgmma_probe.cu"; } > "$logs/mla_wgmma_probe.cu" 2>/dev/null \
    && timeout 60 nvcc -arch=sm_90a -O3 -o "$logs/mla_wgmma_probe" "$logs/mla_wgmma_probe.cu" > "$logs/probe_build.log" 2>&1 \
    && probe_bin=$logs/mla_wgmma_probe
fi
if [ -x "$probe_bin" ]; then
  echo "==== the MLA tile's wgmmas and gather alone (tools/bench/mla_wgmma_probe.cu)"
  timeout 20 "$probe_bin" 2>&1 | tee "$logs/wgmma_probe.log"
fi

# ncu of one batch-128 launch: the sections the issue asks for and every stall reason; the tensor pipe's share of the
# cycles is ComputeWorkloadAnalysis's "highest-utilized pipeline" line.
# (MemoryWorkloadAnalysis_Tables: shared-memory wavefronts and bank conflicts by instruction kind; InstructionStats: the
# instruction mix; SourceCounters: the instructions the warps stall at most)
sections=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section MemoryWorkloadAnalysis
          --section MemoryWorkloadAnalysis_Tables --section InstructionStats --section SourceCounters
          --metrics "regex:smsp__warp_issue_stalled_.*_per_warp_active.pct")
profile() {
  local log=$1; shift
  timeout 45 ncu "${sections[@]}" "$@" > "$log" 2>&1
}
show() { grep -E "Duration|Throughput|Hit Rate|Mem Busy|Max Bandwidth|stalled|highest-utilized|Issue Slots|Executed Ipc|SM Busy|Warp Cycles" "$1" \
           | grep -vE " 0$|0\.00$" | cut -c1-120 | head -50; }
if has --ncu "$@" && command -v ncu >/dev/null; then
  echo "==== ncu, batch 128, swajit's default MLA kernel (warp specialized 64 x 2, 1 split)"
  profile "$logs/ncu_swajit.log" --kernel-name regex:swajit_sparse --launch-skip 1 --launch-count 1 \
    "${bench[@]}" --batch 128 --reps 1 --mla true --warp-specialize 1 --block-n 64 --stages 2 --splits 1
  show "$logs/ncu_swajit.log"
fi
if has --ncu-peer "$@" && command -v ncu >/dev/null; then  # FlashInfer's MLA kernel under the same sections
  if ls .whl/*.whl >/dev/null 2>&1 && [ -z "${PYTHONPATH:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site
  fi
  echo "==== ncu, batch 128, FlashInfer's MLA kernel (tools/bench/mla_fi_call.py, page 1, no sinks)"
  profile "$logs/ncu_flashinfer.log" --kernel-name regex:"[Mm][Ll][Aa]" --launch-skip 1 --launch-count 1 \
    python3 -W ignore "$here/mla_fi_call.py" --batch 128
  grep -E "^  [A-Za-z_].*\(|fi_mla" "$logs/ncu_flashinfer.log" | cut -c1-200 | head -4
  show "$logs/ncu_flashinfer.log"
fi

if has --peers "$@"; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site
  fi
  echo "==== peers of shape b, batch 128 (sparse_peers.py: torch gather + SDPA, FlashInfer MLA when .whl/ has it)"
  timeout 60 python3 -W ignore::DeprecationWarning "$here/sparse_peers.py" b --batch 128 --budget-s 25 2>&1 \
    | tee "$logs/sparse_peers.log" | grep -v "^kind="
fi
exit $status
