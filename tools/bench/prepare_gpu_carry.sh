#!/usr/bin/env bash
# Builds the GPU-run binaries (no CPU backend: the GPU machine has no LLVM) into build-gpu/ and copies them, with
# the one shared library they need from this machine (libsqlite3), into .carry/ for the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-gpu -G Ninja -DSWAJIT_CPU_BACKEND=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-gpu -j "$(nproc)" --target swajit_cli test_decode_gpu test_kernel_cache test_warm_start
mkdir -p .carry/lib .peers
cp build-gpu/tools/swajit build-gpu/tests/test_decode_gpu build-gpu/tests/test_kernel_cache build-gpu/tests/test_warm_start .carry/
strip .carry/swajit .carry/test_decode_gpu .carry/test_kernel_cache .carry/test_warm_start
cp "$(ldconfig -p | awk '/libsqlite3.so.0 /{print $NF; exit}')" .carry/lib/
cp ../shared/peers/*.py .peers/ 2>/dev/null || true
du -sh .carry
