#!/usr/bin/env bash
# The Python package's tests (tests/python): a virtual environment under build/ keeps the system clean; it gets
# torch, transformers, pytest and the build requirements from PyPI once (a later run finds them installed), then
# `pip install .` builds the package into it (incremental in build/python/) and pytest runs every test. Any failure,
# and pytest's "no tests ran" (exit 5), fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/py-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# torch's wheel brings the CUDA libraries (about 6 GB installed): no pip cache beside them (it would hold another
# copy of every wheel), and a clear message instead of pip's ENOSPC when the disk cannot hold them.
export PIP_NO_CACHE_DIR=1
if ! "$venv/bin/python" -c "import torch, transformers, pytest" 2>/dev/null; then
  free_kib=$(df -Pk "$venv" | awk 'NR==2 {print $4}')
  needed_kib=$((10 * 1024 * 1024))
  if [ "$free_kib" -lt "$needed_kib" ]; then
    echo "run_python_tests.sh: installing torch and transformers into $venv needs about 10 GiB free;" \
         "$((free_kib / 1024)) MiB are free on its disk" >&2
    exit 1
  fi
fi
# cuobjdump and nvdisasm (the toolkit here lacks them): tests/python/test_sass_cache_policy.py reads the decode SASS.
"$venv/bin/python" -m pip install -q --disable-pip-version-check torch transformers pytest scikit-build-core nanobind \
  nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps .
# Compiled CPU kernels are cached in this database, so a second run loads them instead of compiling.
SWAJIT_DB="$PWD/build/pytest-tuning.db" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python
