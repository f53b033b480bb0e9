#!/usr/bin/env bash
# Installs the Debian packages swajit builds against, only those that are missing.
set -euo pipefail
packages=(cmake ninja-build g++ ccache llvm-19-dev libclang-cpp19-dev libclang-19-dev clang-19 nlohmann-json3-dev libsqlite3-dev
          libcli11-dev doctest-dev libdlpack-dev python3 python3-venv python3-dev)  # python3-*: the tests and the Python package
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f /usr/local/cuda/include/cuda.h ] && [ -z "${CUDA_HOME:-}" ]; then
  echo "setup: the CUDA 13 toolkit headers (cuda.h, nvrtc.h) are needed; set CUDA_HOME if it is not in /usr/local/cuda" >&2
  exit 1
fi
