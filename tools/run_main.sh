#!/usr/bin/env bash
# The main job: set up, build, then tune and benchmark paged decode on the GPU if there is one, else on the CPU
# backend. Tuning results go to the tuning database ($SWAJIT_DB, else ~/.cache/swajit/tuning.db).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
swajit=build/tools/swajit
$swajit info
if $swajit info | grep -q '^cuda:[0-9]'; then
  $swajit check --device cuda
  $swajit tune --device cuda --preset mistral-7b          # the decode bench grid
  $swajit bench decode --device cuda --compare-heuristic  # tuned vs heuristic, beside the bandwidth floor
  $swajit bench load --device cuda                        # a fresh process loads every tuned kernel
  $swajit bench prefill --device cuda                     # sliding-window prefill, useful TFLOP/s
else
  echo "No GPU here: the same pipeline on the CPU backend (kernels compiled in process by Clang)."
  $swajit check --device cpu
  # Tuning on 2 cores takes a while per shape: the small-batch half of the grid here; add --batch 32,128 for all.
  $swajit tune --device cpu --preset mistral-7b --batch 1,8 --quick-reps 3 --final-reps 5
  $swajit bench decode --device cpu --reps 5
  $swajit bench load --device cpu
fi
