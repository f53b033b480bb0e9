#!/usr/bin/env bash
# The Python package's tests (tests/python): a virtual environment under build/ keeps the system clean; it gets
# torch, transformers, pytest and the build requirements from PyPI once (a later run finds them installed), then
# `pip install .` builds the package into it (incremental in build/python/) and pytest runs every test. Any failure,
# and pytest's "no tests ran" (exit 5), fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/py-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check torch transformers pytest scikit-build-core nanobind
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps .
# Compiled CPU kernels are cached in this database, so a second run loads them instead of compiling.
SWAJIT_DB="$PWD/build/pytest-tuning.db" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python
