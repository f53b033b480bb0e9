#!/usr/bin/env bash
# Issue 16 shape (b), the MLA kernels on the lent GPU (under a minute without --ncu): correctness first (`swajit check`
# of every shared 576 / 512 case of the sparse matrix: the default path, which takes the MLA kernel for groups above
# 32 on sm_90a, and the copies forcing each MLA kernel: "[MLA kernel, 1 split]" / "[..., 3 splits]", the
# warp-specialized one "[MLA kernel bn32_st4_mma_mla_ws, ...]", "bn64_st2_mma_mla_ws", "bn32_st6_mma_mla_ws" (Q in
# registers), with the L2 prefetch "..._l2"), then `swajit bench sparse --shape b` (128 q heads over one 576 / 512
# latent head, topk 2048, without and with a 128-token window and sinks; batch 1, 32, 128): the default (the
# heuristic's: the two-warpgroup MLA kernel), then the knobs beside it (warp specialized 64 x 2 and 32 x 4, the L2
# prefetch), each beside its floor = max(bytes / read bandwidth, FLOPs / matmul rate, both measured here).
# Options: --ncu: a profile of the default kernel at batch 128 with every warp-stall reason; --peers: the peers of
# shape b at batch 128 (tools/bench/sparse_peers.py: torch gather + SDPA, FlashInfer's MLA wrapper if its wheels are
# in .whl/); --tma-probe: first CARRY/tma_row_probe if it is there (tools/bench/tma_row_probe.cu).
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_mla.sh CARRY LOGDIR [--ncu] [--peers] [--tma-probe]
here=$(cd "$(dirname "$0")" && pwd)
db_name=mla.db run_timeout=60  # a hung kernel costs at most a minute
source "$here/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # the heuristic, not a shipped winner
has() { [[ " ${*:2} " == *" $1 "* ]]; }

start=$SECONDS
if has --tma-probe "$@" && [ -x "$carry/tma_row_probe" ]; then  # built from tools/bench/tma_row_probe.cu into CARRY
  echo "==== does a one-row TMA box land in WgmmaTile's swizzle at any row? (tools/bench/tma_row_probe.cu)"
  timeout 20 "$carry/tma_row_probe" 2>&1 | tee "$logs/tma_row_probe.log"
fi
run "$swajit" check --device cuda --family sparse_decode --filter 576 > "$logs/check_mla.log" 2>&1
echo "==== correctness, swajit check (every 576 / 512 case; MLA kernels forced and default): $([ $status -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - start)) s)"
grep -E "^FAIL|passed,|rror" "$logs/check_mla.log" | cut -c1-200 | head -40
# The knobs' benches only when their cases passed (a hang there would cost a minute per bench).
knobs_ok=1
if grep -qE "^FAIL.*(_ws|_l2)" "$logs/check_mla.log" || ! grep -q "passed," "$logs/check_mla.log"; then
  knobs_ok=0
  echo "==== a knob's cases failed or the check did not finish: the knobs' benches are skipped"
fi

mm=$(bash "$here/matmul_tflops.sh")
echo "==== bf16 matmul rate for the floor (torch, 8192^3): ${mm} TFLOP/s"
bench=("$swajit" bench sparse --shape b --matmul-tflops "${mm:-0}")
echo "==== the default (the heuristic's kernel and splits)"
run "${bench[@]}" --batch 1,32,128 --reps 20 2>&1 | tee "$logs/bench_default.log"
if [ $knobs_ok = 1 ]; then
  echo "==== knob: warp-specialized MLA kernel, 64-token tiles x 2 stages (--warp-specialize 1 --block-n 64 --stages 2)"
  run "${bench[@]}" --batch 1,32,128 --reps 20 --mla true --warp-specialize 1 --block-n 64 --stages 2 2>&1 \
    | tee "$logs/bench_ws64.log" | grep "^| b"
  echo "==== knob: warp-specialized MLA kernel, 32-token tiles x 4 stages (--warp-specialize 1)"
  run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 1 2>&1 | tee "$logs/bench_ws32.log" | grep "^| b"
  echo "==== knob: the two-warpgroup MLA kernel with the L2 prefetch of the next tile's rows (--l2-prefetch true)"
  run "${bench[@]}" --batch 32,128 --reps 10 --mla true --warp-specialize 0 --l2-prefetch true 2>&1 \
    | tee "$logs/bench_mla_l2.log" | grep "^| b"
fi

echo "==== benches done ($((SECONDS - start)) s)"

if has --ncu "$@" && command -v ncu >/dev/null; then  # one launch of the default kernel at batch 128
  echo "==== ncu, batch 128, the default kernel: warp stall reasons (% of active warp cycles), memory"
  timeout 30 ncu --kernel-name regex:swajit_sparse --launch-skip 1 --launch-count 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis --metrics "regex:smsp__warp_issue_stalled_.*_per_warp_active.pct" \
    "${bench[@]}" --batch 128 --reps 1 --splits 1 > "$logs/ncu_default.log" 2>&1
  grep -E "Duration|Throughput|Hit Rate|Mem Busy|Max Bandwidth|stalled" "$logs/ncu_default.log" | grep -vE " 0$|0\.00$" | head -40
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
