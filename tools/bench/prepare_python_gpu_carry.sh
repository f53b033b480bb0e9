#!/usr/bin/env bash
# Prepares .carry/python/ for tools/bench/build_python_gpu.sh: the build inputs the GPU machine lacks (it has Python,
# torch, transformers, nanobind, scikit-build-core, cmake and ninja, but none of our Debian -dev packages and no
# network), laid out as a CMake prefix: include/ (cuda.h, nvrtc.h, dlpack, sqlite3.h, nlohmann), share/cmake/ (the
# nlohmann_json package files), lib/ (libsqlite3), and site/ (pytest and its pure-Python dependencies, used there only
# when its Python has no pytest). About 5 MB; pass `.carry` to the device tool's carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=.carry/python
rm -rf "$deps"
mkdir -p "$deps/include/dlpack" "$deps/share/cmake" "$deps/lib" "$deps/site"
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
cp "$cuda_include/cuda.h" "$cuda_include/nvrtc.h" "$deps/include/"
cp /usr/include/dlpack/dlpack.h "$deps/include/dlpack/"
cp /usr/include/sqlite3.h "$deps/include/"
cp -r /usr/include/nlohmann "$deps/include/"
cp -r /usr/share/cmake/nlohmann_json "$deps/share/cmake/"  # its targets file finds include/ from this prefix
sqlite=$(ldconfig -p | awk '/libsqlite3.so.0 /{print $NF; exit}')
cp -L "$sqlite" "$deps/lib/libsqlite3.so.0"
ln -sf libsqlite3.so.0 "$deps/lib/libsqlite3.so"  # the name the linker looks for
# pytest from this checkout's test environment (tools/run_python_tests.sh makes it), pure Python.
site=$(build/py-venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
for package in pytest _pytest pluggy iniconfig py.py pygments packaging; do
  [ -e "$site/$package" ] && cp -r "$site/$package" "$deps/site/"
done
find "$deps/site" -name __pycache__ -prune -exec rm -rf {} +
du -sh "$deps"
