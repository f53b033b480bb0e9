#!/usr/bin/env bash
# The test command: set up, build, run every test (GPU tests skip cleanly where there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
cd build && ctest --output-on-failure
