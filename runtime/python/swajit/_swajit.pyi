"""
swajit's C++ API over DLPack tensors; use the wrappers in the swajit package (swajit.ops)
"""
# Written by `python -m nanobind.stubgen -m swajit._swajit`, then: tensors typed as torch.Tensor (any object with
# __dlpack__ is accepted), the Error class spelled out.

import enum

from torch import Tensor


class ErrorCode(enum.Enum):
    """What kind of failure a swajit.Error reports"""

    invalid_argument = 0
    """an argument is outside its allowed range"""

    unsupported = 1
    """a valid request this build or device cannot serve"""

    no_device = 2
    """no CUDA driver, GPU or NVRTC where one is needed"""

    compile_error = 3
    """NVRTC or Clang rejected generated source"""

    cuda_error = 4
    """a CUDA Driver API call failed"""

    database_error = 5
    """the tuning database could not be used"""

    device_argument = 6
    """a kernel found invalid seq_lens / block_table"""

class Error(RuntimeError):
    """A swajit call failed; .code (swajit.ErrorCode) says how, the message names the argument."""

    code: ErrorCode

def paged_decode(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor, seq_lens: Tensor, out: Tensor, stream: int = 0, *, local_window: int = 0, global_window: int = 0, softmax_scale: float | None = None, kv_layout: str = 'nhd', gqa: str = 'grouped', sink_logits: Tensor | None = None, kv_quant: str = 'none', k_scale: Tensor | None = None, v_scale: Tensor | None = None, config: str | None = None, tuning: str = 'default', workspace: Tensor | None = None, check_device_args: bool = False, host_seq_lens: Tensor | None = None) -> None:
    """
    swajit::paged_decode on DLPack tensors; `stream` is a CUstream handle (0: the legacy default stream)
    """

def paged_decode_workspace_bytes(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor, seq_lens: Tensor, out: Tensor, *, local_window: int = 0, global_window: int = 0, softmax_scale: float | None = None, kv_layout: str = 'nhd', gqa: str = 'grouped', sink_logits: Tensor | None = None, kv_quant: str = 'none', k_scale: Tensor | None = None, v_scale: Tensor | None = None, config: str | None = None, tuning: str = 'default') -> int:
    """Bytes of split-KV workspace paged_decode needs for these arguments"""

def prefill(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, out: Tensor, stream: int = 0, *, local_window: int = 0, global_window: int = 0, causal: bool = True, softmax_scale: float | None = None, gqa: str = 'grouped', sink_logits: Tensor | None = None, kv_quant: str = 'none', k_scale: Tensor | None = None, v_scale: Tensor | None = None, max_q_len: int = 0, config: str | None = None, tuning: str = 'default', check_device_args: bool = False) -> None:
    """swajit::prefill (CUDA) on DLPack tensors"""

def paged_prefill(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor, seq_lens: Tensor, cu_seqlens_q: Tensor, out: Tensor, stream: int = 0, *, local_window: int = 0, global_window: int = 0, causal: bool = True, softmax_scale: float | None = None, kv_layout: str = 'nhd', gqa: str = 'grouped', sink_logits: Tensor | None = None, kv_quant: str = 'none', k_scale: Tensor | None = None, v_scale: Tensor | None = None, max_q_len: int = 0, config: str | None = None, tuning: str = 'default', check_device_args: bool = False) -> None:
    """swajit::paged_prefill (CUDA) on DLPack tensors"""

def sparse_decode(q: Tensor, k_cache: Tensor, v_cache: Tensor | None, block_table: Tensor, seq_lens: Tensor, indices: Tensor, out: Tensor, stream: int = 0, *, local_window: int = 0, softmax_scale: float | None = None, kv_layout: str = 'nhd', gqa: str = 'grouped', sink_logits: Tensor | None = None, score_bias: Tensor | None = None, kv_quant: str = 'none', k_scale: Tensor | None = None, v_scale: Tensor | None = None, config: str | None = None, check_device_args: bool = False) -> None:
    """swajit::sparse_decode on DLPack tensors; v_cache None: one shared K/V cache (MLA)"""

def check_device_errors(device: int, stream: int) -> None:
    """
    Waits for the stream; raises Error(device_argument) if a kernel since the last check found bad metadata
    """

def set_tuning_db_path(path: str) -> None:
    """Use this tuning database file from now on"""

def cuda_devices() -> list[dict]:
    """The CUDA devices swajit sees (empty without a driver or GPU)"""

HAS_CPU_BACKEND: bool

def decode_defaults() -> dict[str, object]:
    """DecodeOptions' C++ defaults, as the Python wrappers expose them"""

def sparse_decode_defaults() -> dict[str, object]:
    """SparseDecodeOptions' C++ defaults, as the Python wrapper exposes them"""

def prefill_defaults() -> dict[str, object]:
    """PrefillOptions' C++ defaults, as the Python wrappers expose them"""
