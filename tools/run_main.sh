#!/usr/bin/env bash
# The main job: set up, build, then on a GPU run the correctness matrix and the decode benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
build/tools/swajit info
if build/tools/swajit info | grep -q '^cuda:[0-9]'; then
  build/tools/swajit check
  build/tools/swajit bench decode
else
  echo "No GPU here: the generated kernels are compiled with NVRTC for sm_90a as a check; the CPU backend is not built yet."
  build/tests/test_nvrtc
fi
