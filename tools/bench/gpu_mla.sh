#!/usr/bin/env bash
# Issue 16 shape (b), the MLA kernels on the lent GPU (about a minute and a half): correctness first (`swajit check` of
# every shared 576 / 512 case of the sparse matrix: the default path, which takes the MLA kernel for groups above 32 on
# sm_90a, and the copies forcing it, "[MLA kernel, 1 split]" / "[..., 3 splits]", and its warp-specialized variant,
# "[MLA kernel bn32_st4_mma_mla_ws, ...]" / "bn64_st2_mma_mla_ws"), then `swajit bench sparse --shape b` (128 q heads
# over one 576 / 512 latent head, topk 2048, without and with a 128-token window and sinks; batch 1, 32, 128): the
# heuristic's kernel, the warp-specialized one (sparse_decode_mla_ws.cuh) in 32-token tiles x 4 stages, x 6 (Q in
# registers) and in 64 x 2, and with the L2 prefetch of the next tile's rows (both kernels),
# each at the split rule's count and at forced ones, each beside its
# floor = max(bytes / read bandwidth, FLOPs / matmul rate, both measured here); last the peers of shape b at batch 128
# (torch gather + SDPA, FlashInfer's MLA wrapper if its wheels are in .whl/) unless --no-peers.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_mla.sh CARRY LOGDIR [--no-peers] [--ncu]   (--ncu: a short profile of one MLA kernel)
here=$(cd "$(dirname "$0")" && pwd)
db_name=mla.db run_timeout=60  # a hung kernel costs at most a minute
source "$here/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # the heuristic, not a shipped winner

start=$SECONDS
run "$swajit" check --device cuda --family sparse_decode --filter 576 > "$logs/check_mla.log" 2>&1
echo "==== correctness, swajit check (every 576 / 512 case; MLA kernels forced and default): $([ $status -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - start)) s)"
grep -E "^(PASS|FAIL)|passed,|rror" "$logs/check_mla.log" | cut -c1-200 | head -60
# The warp-specialized kernel's benches only when its cases passed (a hang there would cost a minute per bench).
ws_ok=1
if grep -qE "^FAIL.*_ws" "$logs/check_mla.log" || ! grep -q "passed," "$logs/check_mla.log"; then
  ws_ok=0
  echo "==== the warp-specialized cases failed or the check did not finish: its benches skipped"
fi

mm=$(bash "$here/matmul_tflops.sh")
echo "==== bf16 matmul rate for the floor (torch, 8192^3): ${mm} TFLOP/s"
bench=("$swajit" bench sparse --shape b --matmul-tflops "${mm:-0}")
echo "==== the heuristic's kernel (default)"
run "${bench[@]}" --batch 1,32,128 --reps 20 2>&1 | tee "$logs/bench_default.log"
if [ $ws_ok = 1 ]; then
  echo "==== warp-specialized MLA kernel, 32-token tiles x 4 stages (--warp-specialize 1), the split rule's count"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 2>&1 | tee "$logs/bench_ws32.log" | grep "^| b"
  echo "==== warp-specialized MLA kernel, 64-token tiles x 2 stages, the split rule's count"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 --block-n 64 --stages 2 2>&1 \
    | tee "$logs/bench_ws64.log" | grep "^| b"
  echo "==== warp-specialized MLA kernel, 32-token tiles x 6 stages (Q in the scorer's registers), the split rule's count"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 --stages 6 2>&1 | tee "$logs/bench_ws32x6.log" | grep "^| b"
  for splits in 1 4; do
    echo "==== warp-specialized, 32 x 6, --splits $splits"
    run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 1 --stages 6 --splits $splits 2>&1 \
      | tee "$logs/bench_ws32x6_sp$splits.log" | grep "^| b"
  done
  echo "==== warp-specialized, 32 x 4, --splits 4"
  run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 1 --splits 4 2>&1 \
    | tee "$logs/bench_ws32_sp4.log" | grep "^| b"
  echo "==== warp-specialized 32 x 6 with the L2 prefetch of the next tile's rows (--l2-prefetch true)"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 --stages 6 --l2-prefetch true 2>&1 \
    | tee "$logs/bench_ws32x6_l2.log" | grep "^| b"
  echo "==== warp-specialized 32 x 4 with the L2 prefetch"
  run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 1 --l2-prefetch true 2>&1 \
    | tee "$logs/bench_ws32_l2.log" | grep "^| b"
fi
echo "==== the two-warpgroup MLA kernel with the L2 prefetch of the next tile's rows (--l2-prefetch true)"
run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 0 --l2-prefetch true 2>&1 \
  | tee "$logs/bench_mla_l2.log" | grep "^| b"
echo "==== page size 1 (FlashInfer's MLA peer runs page size 1), batch 128: default, then warp-specialized 32 x 4 and 32 x 6"
run "${bench[@]}" --batch 128 --reps 10 --page-size 1 2>&1 | tee "$logs/bench_page1.log" | grep "^| b"
if [ $ws_ok = 1 ]; then
  run "${bench[@]}" --batch 128 --reps 10 --page-size 1 --mla true --warp-specialize 1 2>&1 | tee "$logs/bench_page1_ws.log" | grep "^| b"
  run "${bench[@]}" --batch 128 --reps 10 --page-size 1 --mla true --warp-specialize 1 --stages 6 2>&1 \
    | tee "$logs/bench_page1_ws32x6.log" | grep "^| b"
  echo "==== batch 1, warp-specialized 32 x 6, --splits 32 (64 blocks of two tiles each)"
  run "${bench[@]}" --batch 1 --reps 20 --mla true --warp-specialize 1 --stages 6 --splits 32 2>&1 \
    | tee "$logs/bench_ws32x6_b1_sp32.log" | grep "^| b"
fi
echo "==== benches done ($((SECONDS - start)) s)"

if [[ " $* " == *" --ncu "* ]] && command -v ncu >/dev/null; then  # one launch of an MLA kernel at batch 128
  variants=("--warp-specialize 0")
  [ $ws_ok = 1 ] && variants=("--warp-specialize 1 --stages 6")
  for i in "${!variants[@]}"; do
    echo "==== ncu, batch 128, --mla true ${variants[$i]}"
    timeout 30 ncu --kernel-name regex:swajit_sparse --launch-skip 1 --launch-count 1 --section SpeedOfLight \
      --section MemoryWorkloadAnalysis --section WarpStateStats --section LaunchStats \
      "${bench[@]}" --batch 128 --reps 1 --mla true ${variants[$i]} --splits 1 > "$logs/ncu_$i.log" 2>&1
    grep -E "Duration|Throughput|Registers|Stall|Warp Cycles|Eligible|Issued Warp|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth" \
      "$logs/ncu_$i.log" | head -30
  done
fi

if [[ " $* " != *" --no-peers "* ]]; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site
  fi
  echo "==== peers of shape b, batch 128 (sparse_peers.py: torch gather + SDPA, FlashInfer MLA when .whl/ has it)"
  timeout 60 python3 -W ignore::DeprecationWarning "$here/sparse_peers.py" b --batch 128 --budget-s 25 2>&1 \
    | tee "$logs/sparse_peers.log" | grep -v "^kind="
fi
exit $status
