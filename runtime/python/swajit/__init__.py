"""swajit: sliding-window attention kernels for LLM inference, generated for the exact shapes they are called with,
JIT-compiled (NVRTC for the GPU, Clang/LLVM in process for the CPU) and autotuned.

    import swajit
    out = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, local_window=4096)
    out = swajit.prefill(q, k, v, cu_seqlens_q, cu_seqlens_k, local_window=4096)
    out = swajit.paged_prefill(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, local_window=4096)
    out = swajit.sparse_decode(q, kv_cache, None, block_table, seq_lens, topk_indices, head_dim_v=512)  # MLA

The functions take torch tensors (CUDA: torch's current stream; CPU: the CPU backend) and are also registered as
torch custom ops (torch.ops.swajit.paged_decode, ...). swajit.PagedKVCache keeps a paged KV cache the way serving
stacks do; `import swajit.hf` registers the Hugging Face attention function "swajit".
"""
# torch first: on the H200 machine (torch 2.11, Python 3.12) loading the extension before torch crashed the process
# (segfault, cause not found; torch first ran every test). The ops need torch anyway.
import torch  # noqa: F401

from ._swajit import HAS_CPU_BACKEND, Error, ErrorCode, check_device_errors, cuda_devices, set_tuning_db_path
from .ops import paged_decode, paged_decode_workspace_bytes, paged_prefill, prefill, sparse_decode
from .paged_cache import PagedKVCache

__version__ = "0.1.0"
__all__ = ["HAS_CPU_BACKEND", "Error", "ErrorCode", "PagedKVCache", "check_device_errors", "cuda_devices", "paged_decode",
           "paged_decode_workspace_bytes", "paged_prefill", "prefill", "set_tuning_db_path", "sparse_decode"]
