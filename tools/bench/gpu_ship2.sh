#!/usr/bin/env bash
# Issue 17, phase 2 on the GPU: the H200's shipped tuning data (tuning_db/shipped/nvidia-h200-sm-90-x132.json, run A's
# decode winners) is found for this SKU and is worth shipping on the merged kernels. From a checkout of branch
# s3-ship2 with the binaries of tools/bench/prepare_gpu_carry.sh:
#   tools/bench/gpu_ship2.sh CARRY_DIR LOG_DIR
# 1. `swajit info` names the SKU's shipped file; `db list` on a fresh database lists its 5 winners as shipped rows.
# 2. `bench decode --compare-heuristic` at the shipped buckets (mistral-7b's shape, the bench default: 32 q / 8 kv
#    heads, window 4096, so kv 32768 falls in the kv4096 / kv8192 buckets; batch 1 and 8, q_seqlen 1 and 4): each
#    row prints the config used ("tuned ..." = the shipped winner), its time beside the bandwidth floor, the
#    heuristic's time and the speedup. A speedup below 1.00x means the merged heuristic beats run A's winner there:
#    drop that winner (or the file). About 40 s.
# The carried binary looks for shipped data beside itself or in the build machine's source tree, neither of which
# exists on the device, so the other GPU scripts never see shipped data; this one points SWAJIT_SHIPPED_DIR at the
# checkout's tuning_db/shipped.
set -uo pipefail
CARRY=$(realpath "${1:?usage: gpu_ship2.sh CARRY_DIR LOG_DIR}")
mkdir -p "${2:?usage: gpu_ship2.sh CARRY_DIR LOG_DIR}"
LOG=$(realpath "$2")
export LD_LIBRARY_PATH=$CARRY/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
S=$CARRY/swajit
export SWAJIT_DB=$LOG/ship2.db  # a fresh database: every tuned row comes from the shipped file
rm -f "$SWAJIT_DB"*
export SWAJIT_SHIPPED_DIR=$PWD/tuning_db/shipped
exec > >(tee "$LOG/gpu_ship2.log") 2>&1

echo "== 1. the SKU's shipped file and its rows (expect nvidia-h200-sm-90-x132.json, 5 shipped rows)"
"$S" info | grep -E '^  cuda:0:|shipped'
"$S" db list | tee "$LOG/ship2_list.md" | grep -c '| shipped:nvidia-h200' | sed 's/^/shipped H200 rows listed: /'

echo "== 2. shipped winners against the merged heuristic (speedup = heuristic us / tuned us; floor = bandwidth floor)"
"$S" bench decode --batch 1,8 --kv-len 32768 --q-seqlen 1,4 --reps 50 --compare-heuristic
