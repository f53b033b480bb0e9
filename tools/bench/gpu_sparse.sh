#!/usr/bin/env bash
# Issue 16 on the lent GPU (about 1.5 minutes, plus about 2 for the peers): correctness first (the sparse check matrix on CUDA: every
# case on the default path, tensor cores for 16-bit caches, and again forced onto the CUDA-core kernel, the cases
# named "[CUDA cores]"), then `swajit bench sparse` on shapes (a) and (b), default path vs the CUDA-core path, beside
# the floor. Usage on the GPU machine, from the root of the checkout, after
# tools/bench/prepare_gpu_carry.sh here:   tools/bench/gpu_sparse.sh .carry /tmp/sparse-logs
# Peers (tools/bench/sparse_peers.py, last): shape a beside fi_cc / fi_tc (FlashInfer page-size-1 decode)
# and torch (gather + SDPA); shape b beside torch and fi_mla (if it runs on the H200).
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB="$out/sparse.db"

echo "==== correctness 1: swajit check, the sparse MLA cases on tensor cores and forced onto CUDA cores (PASS/FAIL)"
timeout 120 $bin/swajit check --device cuda:0 --filter "MLA" > "$out/check_mla.log" 2>&1; rc=$?
echo "swajit check MLA cases (both kernels): $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc)"
grep -E "^FAIL|passed" "$out/check_mla.log" | tail -8
echo "==== correctness 2: test_decode_gpu, the whole sparse matrix (default path + [CUDA cores] copies)"
timeout 240 $bin/test_decode_gpu -tc="sparse decode correctness*" > "$out/sparse_matrix.log" 2>&1; rc=$?
echo "test_decode_gpu sparse matrix: $([ $rc -eq 0 ] && echo PASS || echo FAIL rc=$rc)"
grep -A6 "ERROR" "$out/sparse_matrix.log" | head -60; grep -E "test cases|assertions" "$out/sparse_matrix.log"

echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
mm=$(tools/bench/matmul_tflops.sh)
echo "matmul: ${mm} TFLOP/s"

echo "==== swajit bench sparse, default path (tensor cores): a (kv 32768 and 131072, topk 512/2048) and b (with/without window+sinks)"
timeout 100 $bin/swajit bench sparse --shape a,b --batch 1,32,128 --reps 20 --matmul-tflops "${mm:-0}" 2>&1 \
  | tee "$out/bench_default.log"
echo "==== swajit bench sparse, the CUDA-core kernel (same shapes, heuristic tile and splits)"
timeout 100 $bin/swajit bench sparse --cuda-cores --shape a,b --batch 1,32,128 --reps 20 --matmul-tflops "${mm:-0}" 2>&1 \
  | tee "$out/bench_cuda_cores.log"

# The peers: FlashInfer's page-size-1 decode and MLA wrapper when its wheels are carried in .whl/ (see
# ../shared/peers/README.md), torch gather + SDPA always.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
else
  echo "==== no .whl/: the FlashInfer rows are skipped"
fi
echo "==== peers (tools/bench/sparse_peers.py)"
timeout 150 python3 tools/bench/sparse_peers.py all --budget-s 120 2>&1 | tee "$out/sparse_peers.log" | grep -v "^kind="
