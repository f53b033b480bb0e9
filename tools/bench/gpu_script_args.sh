# Sourced by the GPU scripts called as `SCRIPT CARRY_DIR LOG_DIR ...` (with $usage set): CARRY (the binaries of
# tools/bench/prepare_gpu_carry.sh) and LOG (created) as absolute paths, S (the carried CLI) with the carried
# libraries on the loader path, and `run CAP_S CMD...`, which logs a command, caps its time and remembers a failure
# in $status.
CARRY=$(realpath "${1:?$usage}")
mkdir -p "${2:?$usage}"
LOG=$(realpath "$2")
export LD_LIBRARY_PATH=$CARRY/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
S=$CARRY/swajit
status=0
run() {
  local cap=$1; shift
  echo "==== $*"
  timeout "$cap" "$@" || { echo "==== FAILED ($?): $*"; status=1; }
}
