#!/usr/bin/env python3
"""FlashInfer's MLA wrapper on issue 16's shape b, called a few times and nothing else: the process gpu_mla.sh
profiles with ncu beside swajit's MLA kernel (same batch, topk 2048, 128 q heads over a 576 / 512 latent, page size
1 with the selection as the page table, as tools/bench/sparse_peers.py calls it, eager: no graph, so that ncu sees
each launch).

    python3 tools/bench/mla_fi_call.py [--batch 128] [--calls 3]

Needs the FlashInfer wheels on PYTHONPATH (gpu_mla.sh installs them from .whl/) and the JIT cache in .peers/.
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sparse_peers import B_D, B_DV, B_HQ, B_TOPK, MAX_PHYSICAL_TOKENS, PEERS, selection  # noqa: E402
from flashinfer_peer import seed_jit_cache  # noqa: E402  (on sys.path through sparse_peers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("FLASHINFER_WORKSPACE_BASE", "/tmp/flashinfer_ws")
    seed_jit_cache(os.path.join(PEERS, "flashinfer_jit_h200.tgz"), os.environ["FLASHINFER_WORKSPACE_BASE"])
    import torch
    import flashinfer

    dev, bf, B, L = torch.device("cuda"), torch.bfloat16, args.batch, 131072
    physical = min(B * L, MAX_PHYSICAL_TOKENS)
    gen = torch.Generator().manual_seed(16)
    cache = torch.randn(physical, 1, B_D, dtype=bf, device=dev)
    q = torch.randn(B, B_HQ, B_D, dtype=bf, device=dev)
    out = torch.empty(B, B_HQ, B_DV, dtype=bf, device=dev)
    _, phys = selection(torch, B, L, B_TOPK, physical, gen, dev)
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device=dev)
    w = flashinfer.mla.BatchMLAPagedAttentionWrapper(ws)
    w.plan(torch.arange(B + 1, dtype=torch.int32, device=dev), (torch.arange(B + 1, dtype=torch.int32) * B_TOPK).to(dev),
           phys.reshape(-1), torch.full((B,), B_TOPK, dtype=torch.int32, device=dev), B_HQ, B_DV, B_D - B_DV, 1, False,
           1 / math.sqrt(192), bf, bf)
    q_nope, q_pe = q[..., :B_DV].contiguous(), q[..., B_DV:].contiguous()
    ckv, kpe = cache[..., :B_DV].contiguous(), cache[..., B_DV:].contiguous()
    for _ in range(args.calls):
        w.run(q_nope, q_pe, ckv, kpe, out=out)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    w.run(q_nope, q_pe, ckv, kpe, out=out)
    end.record()
    torch.cuda.synchronize()
    print(f"fi_mla batch {B}: one eager call {start.elapsed_time(end) * 1e3:.1f} us (L2 warm from the calls before)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
