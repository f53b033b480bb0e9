#!/usr/bin/env bash
# Tunes the shipped data of this machine's GPU SKU into a fresh database and exports it as <out dir>/<sku slug>.json,
# ready to commit under tuning_db/shipped/ (README: "Shipped tuning data").
#   tools/bench/tune_shipped.sh SWAJIT_BINARY OUT_DIR [BUDGET_S]
# What is tuned: the three decode presets (mistral-7b, gemma-3-27b, gpt-oss-20b) at batch 1, 8, 32, 128, kv 32768
# (the long-context rows; every shorter table maps to smaller buckets and falls back to the heuristic), q_seqlen 1
# and 4, and prefill's grid at seq 4096 and 16384 with 32 and 8 kv heads. Reps are cut from the defaults (decode
# 20/100 -> 10/50 graph replays, prefill 5/20 -> 3/10 runs): enough to order candidates that differ by >= 2%.
# Each stage has a time cap and the whole a budget (default 330 s, about 6 minutes with the export on an H200):
# a stage cut short keeps every shape it finished, and running the script again with the same OUT_DIR resumes the
# decode presets where they stopped. --device cuda:all: one worker per GPU when the host has several.
set -uo pipefail
SWAJIT=$(realpath "${1:?usage: tune_shipped.sh SWAJIT_BINARY OUT_DIR [BUDGET_S]}")
OUT=${2:?usage: tune_shipped.sh SWAJIT_BINARY OUT_DIR [BUDGET_S]}
BUDGET=${3:-330}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
DB="$OUT/shipped_tune.db"
START=$SECONDS

# The file name of cuda:0's SKU, as `swajit info` prints it (shipped data read from OUT, which exists).
SLUG=$(SWAJIT_SHIPPED_DIR="$OUT" SWAJIT_SHIPPED=1 "$SWAJIT" info | grep '^  cuda:0:' | grep -o '[a-z0-9-]*\.json' | head -1)
[ -n "$SLUG" ] || { echo "tune_shipped: no GPU found (swajit info):"; "$SWAJIT" info; exit 1; }
echo "tune_shipped: SKU file $SLUG, database $DB, budget ${BUDGET} s"

stage() {  # stage CAP_S TUNE_ARGS...: one `swajit tune` run, capped by CAP_S and by what is left of the budget
  local cap=$1; shift
  local left=$((BUDGET - (SECONDS - START)))
  if ((left <= 5)); then echo "tune_shipped: SKIPPED (budget spent): tune $*"; return; fi
  ((cap > left)) && cap=$left
  local t0=$SECONDS
  # timeout signals the whole process group: the cuda:all workers stop with their parent.
  timeout "$cap" "$SWAJIT" tune --db "$DB" --device cuda:all "$@"
  local rc=$?
  echo "tune_shipped: stage done in $((SECONDS - t0)) s (rc $rc$( ((rc == 124)) && echo ': cut at its cap; finished shapes are kept')): tune $*"
}
# shellcheck disable=SC2054  # the commas are swajit's list separators
DECODE=(--batch 1,8,32,128 --kv-len 32768 --q-seqlen 1,4 --quick-reps 10 --final-reps 50)
stage 110 --preset mistral-7b "${DECODE[@]}"
stage 70 --preset gemma-3-27b "${DECODE[@]}"
stage 70 --preset gpt-oss-20b "${DECODE[@]}"
stage 90 --family prefill --seq 4096,16384 --num-kv-heads 32,8 --quick-reps 3 --final-reps 10

"$SWAJIT" db export "$OUT/$SLUG" --db "$DB"
echo "tune_shipped: $(grep -c '"spec_key"' "$OUT/$SLUG") winners in $OUT/$SLUG after $((SECONDS - START)) s"
