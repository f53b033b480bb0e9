#!/usr/bin/env bash
# Prints the bf16 matmul rate of GPU 0 in TFLOP/s (torch, 8192^3, median), or 0 without torch: the FLOP side of the
# floors that `swajit bench sparse --matmul-tflops` prints.
python3 - <<'PY' 2>/dev/null || echo 0
import torch
from triton.testing import do_bench
a = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
print(f"{2 * 8192**3 / (do_bench(lambda: a @ a, warmup=25, rep=100, return_mode='median') * 1e-3) / 1e12:.0f}")
PY
