"""Decode kernels' L2-hinted K/V copies name cache-policy descriptors the kernel writes.

CUDA 13.0's ptxas gave the producer-warp decode kernels' evict-first cp.async a descriptor in uniform registers no
instruction writes (the H200 raised CUDA_ERROR_ILLEGAL_INSTRUCTION); the every-warp loaders carry the hint by default.
A template change could move ptxas onto that path there too, so this runs tools/bench/sass_policy_check.py over its
every-warp configs and its producer-warp control on every CI run. Here, not in ctest, because cuobjdump and nvdisasm
come from PyPI wheels that tools/run_python_tests.sh installs into this suite's virtual environment.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CUDA_BIN = pathlib.Path("/usr/local/cuda/bin")


def test_every_hinted_kv_copy_has_a_written_policy_descriptor():
    nvcc = shutil.which("nvcc") or (str(CUDA_BIN / "nvcc") if (CUDA_BIN / "nvcc").exists() else None)
    if nvcc is None:
        pytest.skip("no nvcc: the CUDA toolkit is not installed")
    wheel_tools = pathlib.Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "bin"
    assert (wheel_tools / "cuobjdump").exists() and (wheel_tools / "nvdisasm").exists(), \
        "nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm are not installed (tools/run_python_tests.sh installs them)"
    swajit = ROOT / "build" / "tools" / "swajit"
    assert swajit.exists(), f"{swajit}: build the CLI first (tools/build.sh)"
    env = dict(os.environ, PATH=os.pathsep.join([str(wheel_tools), os.path.dirname(nvcc), os.environ["PATH"]]))
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "bench" / "sass_policy_check.py"), "--swajit", str(swajit)],
                         capture_output=True, text=True, env=env, timeout=900)
    report = run.stdout + run.stderr
    assert "flagged, as expected" in report, report  # the control: the check sees the defect it guards against
    assert re.search(r"^0 of \d+ kernels flagged$", report, re.M), report
    assert run.returncode == 0, report
