# Sourced by the GPU bench scripts (gpu_prefill*.sh): CARRY_DIR ($1) and LOG_DIR ($2) set up, a fresh tuning database
# named $db_name in the log directory (first uses compile; nothing tuned is picked up, "default" is the heuristic),
# and run(), which logs a command and its output and remembers a failure in $status; a hung kernel costs at most
# $run_timeout seconds.
carry=$(cd "$1" && pwd) logs=$2
mkdir -p "$logs"
export LD_LIBRARY_PATH=$carry/lib
export SWAJIT_DB=$logs/$db_name
rm -f "$SWAJIT_DB"
swajit=$carry/swajit
mm=${MATMUL_TFLOPS:-700}
status=0
run() {
  echo "==== $*"
  timeout "$run_timeout" "$@" || { echo "==== FAILED ($?): $*"; status=1; }
}
