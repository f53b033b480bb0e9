import os
import tempfile

import pytest
import torch

import swajit

# Compiled CPU kernels are cached in the tuning database: keep the tests' own (CI points SWAJIT_DB under build/, so a
# second run loads instead of compiling), never the user's.
os.environ.setdefault("SWAJIT_DB", os.path.join(tempfile.gettempdir(), "swajit-pytest.db"))


DEVICES = (["cpu"] if swajit.HAS_CPU_BACKEND else []) + (["cuda"] if torch.cuda.is_available() else [])
requires_cpu_backend = pytest.mark.skipif(not swajit.HAS_CPU_BACKEND, reason="built with SWAJIT_CPU_BACKEND=OFF")


@pytest.fixture(params=DEVICES)
def device(request):
    """Every test that takes `device` runs on the CPU backend, and on the GPU too where there is one (the GPU
    machine's build has no CPU backend: there only CUDA)."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
