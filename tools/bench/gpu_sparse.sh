#!/usr/bin/env bash
# Issue 16 on the lent GPU (about 3 minutes): the sparse_decode check matrix on CUDA, then `swajit bench sparse` on the
# issue's shapes (a) and (b) beside the floor, then (when the FlashInfer wheels are carried) its peers.
# Usage on the GPU machine, from the root of a checkout of branch s3-sparse, after tools/bench/prepare_gpu_carry.sh
# here:   tools/bench/gpu_sparse.sh .carry /tmp/sparse-logs
# Compare with the peer rows of tools/bench/sparse_peers.py (same run): shape a: fi_cc, fi_tc and torch; shape b:
# torch and fi_mla (if it runs).
set -uo pipefail
bin=${1:-.carry}
out=${2:-${OUT:-/tmp/swajit-sparse}}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SWAJIT_DB="$out/sparse.db"

echo "==== correctness: the sparse check matrix on CUDA (every case against the double-precision reference)"
$bin/test_decode_gpu -tc="sparse decode correctness*" 2>&1 | tee "$out/sparse_check.log" | tail -15
$bin/swajit check --device cuda:0 --filter "MLA" 2>&1 | grep -E "sparse|MLA|passed" | tee "$out/sparse_check_cli.log"

echo "==== bf16 matmul rate for the floor (torch, 8192^3)"
mm=$(tools/bench/matmul_tflops.sh)
echo "matmul: ${mm} TFLOP/s"

echo "==== swajit bench sparse: shapes a and b, batch 1, 8, 32, 128"
timeout 120 $bin/swajit bench sparse --shape a,b --batch 1,8,32,128 --matmul-tflops "${mm:-0}" 2>&1 | tee "$out/bench_sparse.log"

if ls .whl/*.whl >/dev/null 2>&1; then
  echo "==== peers (FlashInfer page-size-1 decode / MLA wrapper, torch gather + SDPA)"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
  timeout 150 python3 tools/bench/sparse_peers.py all --budget-s 120 2>&1 | tee "$out/sparse_peers.log" | grep -v "^kind="
else
  echo "==== peers skipped: no .whl/ (see ../shared/peers/README.md); torch-only rows:"
  timeout 150 python3 tools/bench/sparse_peers.py all --budget-s 120 2>&1 | tee "$out/sparse_peers.log" | grep -v "^kind="
fi
