import os
import tempfile

import pytest
import torch

# Compiled CPU kernels are cached in the tuning database: keep the tests' own (CI points SWAJIT_DB under build/, so a
# second run loads instead of compiling), never the user's.
os.environ.setdefault("SWAJIT_DB", os.path.join(tempfile.gettempdir(), "swajit-pytest.db"))


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request):
    """Every test that takes `device` runs on the CPU backend, and on the GPU too where there is one."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)
