#!/usr/bin/env bash
# Issue 16 shape (b), the MLA kernel (templates/sparse_decode_mla.cuh), on the lent GPU (about a minute): correctness
# first (`swajit check` of every shared 576 / 512 case of the sparse matrix: the default path, which takes the MLA
# kernel for groups above 32 on sm_90a, and the copies forcing it, "[MLA kernel, 1 split]" / "[..., 3 splits]"), then
# `swajit bench sparse --shape b` (128 q heads over one 576 / 512 latent head, topk 2048, without and with a 128-token
# window and sinks; batch 1, 32, 128) on the MLA kernel (the heuristic's) and on the general tensor-core kernel
# (--mla false), each beside its floor = max(bytes / read bandwidth, FLOPs / matmul rate, both measured here); last
# the peers of shape b at batch 128 (torch gather + SDPA, FlashInfer's MLA wrapper if its wheels are in .whl/) unless
# --no-peers. Without the peers it took 20 s in session 5's run B2; the peers are capped at a minute.
# Usage, from the root of a checkout (binaries built by tools/bench/prepare_gpu_carry.sh into CARRY):
#   bash tools/bench/gpu_mla.sh CARRY LOGDIR [--no-peers]
here=$(cd "$(dirname "$0")" && pwd)
db_name=mla.db run_timeout=60  # a hung kernel costs at most a minute
source "$here/gpu_run_common.sh"
export SWAJIT_SHIPPED=0  # the heuristic, not a shipped winner

start=$SECONDS
run "$swajit" check --device cuda --family sparse_decode --filter 576 > "$logs/check_mla.log" 2>&1
echo "==== correctness, swajit check (every 576 / 512 case; MLA kernel forced and default): $([ $status -eq 0 ] && echo PASS || echo FAIL) ($((SECONDS - start)) s)"
grep -E "^(PASS|FAIL)|passed,|rror" "$logs/check_mla.log" | cut -c1-200 | head -40

mm=$(bash "$here/matmul_tflops.sh")
echo "==== bf16 matmul rate for the floor (torch, 8192^3): ${mm} TFLOP/s"
bench=("$swajit" bench sparse --shape b --matmul-tflops "${mm:-0}")
run "${bench[@]}" --batch 1,32,128 --reps 20 2>&1 | tee "$logs/bench_mla.log"  # the MLA kernel: the heuristic's on sm_90a
echo "==== the general tensor-core kernel (--mla false), as before"
run "${bench[@]}" --batch 1,32,128 --reps 10 --mla false 2>&1 | tee "$logs/bench_general.log" | grep "^| b"
for splits in 1 4; do
  echo "==== the MLA kernel with --splits $splits (beside the heuristic's above)"
  run "${bench[@]}" --batch 32,128 --reps 10 --mla true --splits $splits 2>&1 | tee "$logs/bench_mla_sp$splits.log" | grep "^| b"
done
echo "==== the MLA kernel at page size 1 (FlashInfer's MLA peer runs page size 1), batch 128"
run "${bench[@]}" --batch 128 --reps 10 --page-size 1 2>&1 | tee "$logs/bench_mla_page1.log" | grep "^| b"

if [ "${3:-}" != "--no-peers" ]; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site
  fi
  echo "==== peers of shape b, batch 128 (sparse_peers.py: torch gather + SDPA, FlashInfer MLA when .whl/ has it)"
  timeout 60 python3 -W ignore::DeprecationWarning "$here/sparse_peers.py" b --batch 128 --budget-s 25 2>&1 \
    | tee "$logs/sparse_peers.log" | grep -v "^kind="
fi
exit $status
