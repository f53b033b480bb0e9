#!/usr/bin/env bash
# The test command: set up, build, run every test (GPU tests skip cleanly where there is no GPU), the Python
# package's tests, then the sanitizer and fuzzing pass (tools/sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
(cd build && ctest --output-on-failure)
tools/run_python_tests.sh
# The CPU suites again under AddressSanitizer + UndefinedBehaviorSanitizer, then the JSON fuzzer for a minute.
tools/sanitize.sh
