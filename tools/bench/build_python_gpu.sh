#!/usr/bin/env bash
# On the GPU machine, from the repository root, with .carry/ carried (made here by
# tools/bench/prepare_python_gpu_carry.sh): builds the Python package with the CPU backend off against the carried
# headers and libsqlite3, with no network and no build isolation (torch, nanobind, scikit-build-core, cmake and ninja
# are that machine's), unpacks the wheel into $work/site (nothing is installed into the system), then runs the Python
# tests on CUDA tensors: decode / prefill / paged_prefill against the reference, CUDA graph capture, the example, and
# the Hugging Face models with attn_implementation="swajit" against "eager". Logs in $OUT.
#   tools/bench/build_python_gpu.sh [pytest arguments...]
set -uo pipefail
out=${OUT:-/tmp/swajit-out}
work=${SWAJIT_GPU_WORK:-/tmp/swajit-python}
deps=$PWD/.carry/python
mkdir -p "$out" "$work"
[ -f "$deps/include/cuda.h" ] || { echo "no $deps: run tools/bench/prepare_python_gpu_carry.sh here and carry .carry"; exit 1; }
python3 - <<'PY' || exit 1
import os, sysconfig
header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
print("python headers:", header, "found" if os.path.exists(header) else "MISSING (nanobind needs them)")
raise SystemExit(0 if os.path.exists(header) else 1)
PY
export LD_LIBRARY_PATH=$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # libsqlite3 if the machine has none
rm -rf "$work/wheel" "$work/site"
echo "==== build (log: $out/python_build.log)"
start=$(date +%s)
if ! python3 -m pip wheel --no-build-isolation --no-deps --no-index -v -w "$work/wheel" \
     -C cmake.define.SWAJIT_CPU_BACKEND=OFF -C "cmake.define.CMAKE_PREFIX_PATH=$deps" \
     -C build-dir="$work/build" . > "$out/python_build.log" 2>&1; then
  tail -60 "$out/python_build.log"
  echo "BUILD FAILED"
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s: $(ls "$work/wheel")"
python3 -c "import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]).extractall(sys.argv[2])" \
  "$work/wheel" "$work/site"
export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
export SWAJIT_DB=$work/tuning.db
echo "==== import"
python3 - <<'PY' 2>&1 | tee "$out/python_import.log"
import torch, swajit
print("swajit", swajit.__file__, "cpu backend", swajit.HAS_CPU_BACKEND, "torch", torch.__version__)
print("devices", swajit.cuda_devices())
PY
# Without a GPU every test would skip and pass: refuse that here.
python3 -c "import swajit, torch; raise SystemExit(0 if torch.cuda.is_available() and swajit.cuda_devices() else 'no CUDA device seen by torch and swajit')" || exit 1
echo "==== tests (log: $out/python_tests.log)"
# pytest from the machine if it has one, else the carried copy (appended, so the machine's packages win).
python3 - "$deps/site" "$@" <<'PY' 2>&1 | tee "$out/python_tests.log" | tail -40
import sys
sys.path.append(sys.argv[1])
import pytest
sys.exit(pytest.main(["-v", "-rs", "-p", "no:cacheprovider", "tests/python"] + sys.argv[2:]))
PY
status=${PIPESTATUS[0]}
echo "==== host cost per call (log: $out/python_call_overhead.log)"
python3 tools/bench/python_call_overhead.py 2>&1 | tee "$out/python_call_overhead.log"
exit "$status"
