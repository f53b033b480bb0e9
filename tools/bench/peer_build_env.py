"""The host tools FlashInfer's JIT builds need, put where it looks (shared by the peer scripts in tools/bench)."""
import os
import shutil


def prepare_flashinfer_build_env():
    """The pip `ninja` binary and the toolkit's nvcc on PATH / CUDA_HOME, and g++ as $CXX where there is no `c++`
    (FlashInfer runs ninja and nvcc for its modules and links them with $CXX, default c++)."""
    try:
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    if not os.environ.get("CUDA_HOME") and shutil.which("nvcc") is None and os.path.exists("/usr/local/cuda/bin/nvcc"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"
    if "CXX" not in os.environ and shutil.which("c++") is None and shutil.which("g++"):
        os.environ["CXX"] = "g++"
