#!/usr/bin/env bash
# The test command: set up, build, run every test (GPU tests skip cleanly where there is no GPU), then the Python
# package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
(cd build && ctest --output-on-failure)
tools/run_python_tests.sh
