#!/usr/bin/env python3
"""Host cost of one swajit.paged_decode call from Python (torch tensors, torch's current stream): the wrapper, the
torch custom op (what torch.compile'd code calls) and the bare extension, each timed over back-to-back calls of a
small decode (batch 1, 4096 tokens, window 1024) whose kernel is already loaded, so the host is the bottleneck."""
import time

import torch

import swajit
from swajit import _swajit


def per_call_us(function, calls=2000):
    function()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def main():
    torch.manual_seed(0)
    device, dtype, page = torch.device("cuda"), torch.bfloat16, 16
    q = torch.randn(1, 1, 32, 128, dtype=dtype, device=device)
    k_cache = torch.randn(4096 // page, page, 8, 128, dtype=dtype, device=device)
    v_cache = torch.randn_like(k_cache)
    block_table = torch.arange(4096 // page, dtype=torch.int32, device=device).view(1, -1)
    seq_lens = torch.tensor([4096], dtype=torch.int32, device=device)
    out = torch.empty_like(q)
    stream = torch.cuda.current_stream().cuda_stream
    rows = {
        "swajit.paged_decode(out=)": lambda: swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, out=out,
                                                                 local_window=1024),
        "torch.ops.swajit.paged_decode": lambda: torch.ops.swajit.paged_decode(
            q, k_cache, v_cache, block_table, seq_lens, out, 1024, 0, None, "nhd", "grouped", None, "none", None,
            None, None, "default", None, False),
        "_swajit.paged_decode (bare)": lambda: _swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, out,
                                                                     stream, local_window=1024),
    }
    for name, function in rows.items():
        print(f"{name:32s} {per_call_us(function):8.1f} us per call")


if __name__ == "__main__":
    main()
