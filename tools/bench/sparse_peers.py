#!/usr/bin/env python3
"""Peers of `swajit bench sparse` (issue 16): top-k sparse decode in FlashInfer and in torch, on the issue's shapes.

Run on the GPU machine from the root of a tree that carries `.whl/` and `.peers/` (tools/bench/prepare_gpu_carry.sh
copies ../shared/peers/*.py there; see ../shared/peers/README.md for the wheels):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
    python3 tools/bench/sparse_peers.py [a|b|all] [--budget-s 300] [--batch 32,128] [--topk 2048] [--kv-len 131072]
        [--peers torch,fi_cc,fi_tc]

Shapes (the issue's):
  (a) 64 q / 8 kv heads, head_dim 128, separate K/V, bf16, topk {512, 2048}, kv_len {32768, 131072}, batch {1, 8, 32,
      128}, q_seqlen 1, no window:
      - fi_cc / fi_tc: FlashInfer BatchDecodeWithPagedKVCacheWrapper (CUDA cores / tensor cores) with page_size 1 and
        each row's selection as its page table (FlashInfer's "vector-sparse" decode);
      - torch: gather the selected K and V rows (index_select through the block table) + SDPA (enable_gqa).
  (b) MLA: 128 q heads over one latent head of 576 (V = its first 512 columns), topk 2048, batch {1, 8, 32, 128},
      without and with a 128-token window and learned sinks:
      - torch: gather + two matmuls and a softmax (the sink as an extra logit column);
      - fi_mla: FlashInfer BatchMLAPagedAttentionWrapper, page size 1, the selection (+ window) as the page table
        (no sinks in FlashInfer: timed without them), when it builds and runs here.
All timed as the other peers are: a CUDA graph with one call per replica (distinct caches for 4x L2, at most 16),
replayed under triton's do_bench (L2 flushed, median), divided by the replicas (flashinfer_peer.time_graph).
Floor = max(selected K/V bytes / read bandwidth, FLOPs / bf16 matmul rate), both measured in this run, as
`swajit bench sparse` computes it. One `kind=...` line per measurement, then a table of us per row.
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The shared peer helpers: the run's checkout root (the GPU scripts run from there, this file possibly carried
# elsewhere), this tree's .peers/, or ../shared/peers beside the worktree.
PEERS = next((os.path.abspath(d) for d in (os.path.join(os.getcwd(), ".peers"), os.path.join(HERE, "..", "..", ".peers"),
                                            os.path.join(HERE, "..", "..", "..", "shared", "peers"))
              if os.path.exists(os.path.join(d, "flashinfer_peer.py"))), os.path.join(os.getcwd(), ".peers"))
sys.path.insert(0, PEERS)
from flashinfer_peer import log, seed_jit_cache, short_err, time_graph  # noqa: E402  (shared peer helpers)

T0 = time.time()
A_HQ, A_HKV, A_D = 64, 8, 128
BATCHES = (1, 8, 32, 128)
B_HQ, B_D, B_DV, B_TOPK, B_WINDOW = 128, 576, 512, 2048, 128

MAX_PHYSICAL_TOKENS = 1 << 22   # the cache every sequence's pages are scattered over (page size 1)
L2_MULTIPLE, MAX_REPLICAS = 4.0, 16
NO_WINDOW = 1 << 30  # FlashInfer window_left that masks nothing but picks its prebuilt sliding-window modules


def selection(torch, B, L, topk, physical, gen, dev):
    """Each row's topk distinct positions < L, mapped through a random block table (page size 1) to physical rows."""
    pos = torch.stack([torch.randperm(L, generator=gen)[:topk] for _ in range(B)])
    table = torch.randint(0, physical, (B, L), generator=gen)
    return pos.to(dev), torch.gather(table, 1, pos).to(torch.int32).to(dev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", "a", "b"])
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--reps-ms", type=float, default=100.0)
    ap.add_argument("--batch", default=",".join(map(str, BATCHES)), help="batch sizes (as `swajit bench sparse --batch`)")
    ap.add_argument("--topk", default="", help="shape a: only these topk values (default: 512 and 2048)")
    ap.add_argument("--kv-len", default="", help="shape a: only these kv lengths (default: 32768 and 131072)")
    ap.add_argument("--peers", default="torch,fi_cc,fi_tc", help="shape a: which peers to time")
    ap.add_argument("--jit-cache", default=os.path.join(PEERS, "flashinfer_jit_h200.tgz"))
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    # The rows of `swajit bench sparse --shape a,b` in its order: a by (kv_len, topk) then batch; b without, then with
    # the window and sinks.
    only = lambda text, x: not text or str(x) in text.split(",")  # noqa: E731
    peers = args.peers.split(",")
    a_grid = [(b, l, k) for l, k in ((32768, 512), (32768, 2048), (131072, 512), (131072, 2048)) for b in batches
              if only(args.topk, k) and only(args.kv_len, l)]
    b_grid = [(b, w) for w in (False, True) for b in batches]
    os.environ.setdefault("FLASHINFER_WORKSPACE_BASE", "/tmp/flashinfer_ws")
    seed_jit_cache(args.jit_cache, os.environ["FLASHINFER_WORKSPACE_BASE"])
    import torch
    import torch.nn.functional as F
    from triton.testing import do_bench

    if not torch.cuda.is_available():
        log("no CUDA device: nothing to measure")
        return 1
    try:
        import flashinfer
    except Exception as e:
        flashinfer = None
        log(f"flashinfer unavailable ({short_err(e)}): torch rows only")
    dev, bf = torch.device("cuda"), torch.bfloat16
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 << 20) or (50 << 20)
    x = torch.empty(1 << 31, dtype=bf, device=dev).normal_()
    read_bw = x.numel() * 2 / (do_bench(lambda: x.sum(dtype=torch.float32), warmup=20, rep=200, return_mode="median") * 1e-3)
    del x
    m = torch.randn(8192, 8192, dtype=bf, device=dev)
    mm_rate = 2 * 8192**3 / (do_bench(lambda: m @ m, warmup=25, rep=100, return_mode="median") * 1e-3)
    del m
    torch.cuda.empty_cache()
    log(f"kind=ceiling_read,GBps={read_bw / 1e9:.1f}")
    log(f"kind=ceiling_mm_bf16,TFLOPs={mm_rate / 1e12:.1f}")
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device=dev)
    gen = torch.Generator().manual_seed(16)
    rows = []

    def timed(label, shape, floor_us, calls):
        if time.time() - T0 > args.budget_s:
            log(f"kind=sparse_peer_skipped,peer={label},{shape},reason=budget")
            return
        try:
            calls[0]()
            torch.cuda.synchronize()
            us = time_graph(torch, do_bench, calls, args.reps_ms)
            rows.append((shape, label, us, floor_us))
            log(f"kind=sparse_peer,peer={label},{shape},us={us:.1f},floor_us={floor_us:.1f},pct={100 * floor_us / us:.0f}")
        except Exception as e:
            log(f"kind=sparse_peer,peer={label},{shape},error={short_err(e)}")
        torch.cuda.synchronize()

    if args.what in ("all", "a"):
        for B, L, topk in a_grid:
            physical = min(B * L, MAX_PHYSICAL_TOKENS)
            kv_bytes = B * topk * A_HKV * A_D * 2 * 2
            floor_us = max((kv_bytes + 2 * B * A_HQ * A_D * 2) / read_bw, 4 * B * A_HQ * topk * A_D / mm_rate) * 1e6
            R = max(1, min(MAX_REPLICAS, math.ceil(L2_MULTIPLE * l2 / kv_bytes), (16 << 30) // (physical * A_HKV * A_D * 4)))
            k = [torch.randn(physical, 1, A_HKV, A_D, dtype=bf, device=dev) for _ in range(R)]
            v = [torch.randn(physical, 1, A_HKV, A_D, dtype=bf, device=dev) for _ in range(R)]
            q = torch.randn(B, A_HQ, A_D, dtype=bf, device=dev)
            out = torch.empty_like(q)
            _, phys = selection(torch, B, L, topk, physical, gen, dev)
            shape = f"shape=a,B={B},L={L},topk={topk}"
            flat = phys.reshape(-1).long()

            def torch_call(r):
                ks = k[r].view(physical, A_HKV, A_D).index_select(0, flat).view(B, topk, A_HKV, A_D).transpose(1, 2)
                vs = v[r].view(physical, A_HKV, A_D).index_select(0, flat).view(B, topk, A_HKV, A_D).transpose(1, 2)
                out.copy_(F.scaled_dot_product_attention(q.unsqueeze(2), ks, vs, enable_gqa=True).squeeze(2))
            if "torch" in peers:
                timed("torch", shape, floor_us, [lambda r=r: torch_call(r) for r in range(R)])
            for variant in [v for v in ("cc", "tc") if f"fi_{v}" in peers] if flashinfer else ():
                try:
                    indptr = (torch.arange(B + 1, dtype=torch.int32) * topk).to(dev)
                    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                        ws, "NHD", use_cuda_graph=True, use_tensor_cores=variant == "tc",
                        paged_kv_indptr_buffer=torch.empty_like(indptr), paged_kv_indices_buffer=torch.empty_like(flat, dtype=torch.int32),
                        paged_kv_last_page_len_buffer=torch.empty(B, dtype=torch.int32, device=dev))
                    w.plan(indptr, phys.reshape(-1), torch.ones(B, dtype=torch.int32, device=dev), A_HQ, A_HKV, A_D, 1,
                           window_left=NO_WINDOW, q_data_type=bf, kv_data_type=bf)
                    timed(f"fi_{variant}", shape, floor_us, [lambda r=r: w.run(q, (k[r], v[r]), out=out) for r in range(R)])
                except Exception as e:
                    log(f"kind=sparse_peer,peer=fi_{variant},{shape},error={short_err(e)}")
            del k, v
            torch.cuda.empty_cache()

    if args.what in ("all", "b"):
        L = 131072
        for B, window in b_grid:
            n = B_TOPK + (B_WINDOW if window else 0)
            physical = min(B * L, MAX_PHYSICAL_TOKENS)
            kv_bytes = B * n * B_D * 2
            q_out_bytes = B * B_HQ * (B_D + B_DV) * 2  # as bench sparse counts them
            floor_us = max((kv_bytes + q_out_bytes) / read_bw, 2 * B * B_HQ * n * (B_D + B_DV) / mm_rate) * 1e6
            R = max(1, min(MAX_REPLICAS, math.ceil(L2_MULTIPLE * l2 / kv_bytes), (16 << 30) // (physical * B_D * 2)))
            cache = [torch.randn(physical, 1, B_D, dtype=bf, device=dev) for _ in range(R)]
            q = torch.randn(B, B_HQ, B_D, dtype=bf, device=dev)
            out = torch.empty(B, B_HQ, B_DV, dtype=bf, device=dev)
            sink = torch.randn(B_HQ, device=dev)
            pos, phys = selection(torch, B, L - B_WINDOW, B_TOPK, physical, gen, dev)  # the window: the last 128
            if window:
                last = torch.randint(0, physical, (B, B_WINDOW), generator=gen).to(torch.int32).to(dev)
                phys = torch.cat([phys, last], dim=1)
            flat = phys.reshape(-1).long()
            scale = 1 / math.sqrt(192)  # DeepSeek's (nope 128 + rope 64) softmax scale
            shape = f"shape=b,B={B},topk={B_TOPK},window={B_WINDOW if window else 0},sinks={int(window)}"

            def torch_call(r):
                kv = cache[r].view(physical, B_D).index_select(0, flat).view(B, n, B_D)
                s = torch.bmm(q, kv.transpose(1, 2)).float() * scale
                if window:
                    s = torch.cat([s, sink.view(1, B_HQ, 1).expand(B, B_HQ, 1)], dim=2)
                p = torch.softmax(s, dim=-1)[..., :n].to(bf)
                out.copy_(torch.bmm(p, kv[..., :B_DV]))
            timed("torch", shape, floor_us, [lambda r=r: torch_call(r) for r in range(R)])
            if flashinfer:
                try:
                    w = flashinfer.mla.BatchMLAPagedAttentionWrapper(ws, use_cuda_graph=True,
                                                                     qo_indptr=torch.empty(B + 1, dtype=torch.int32, device=dev),
                                                                     kv_indptr=torch.empty(B + 1, dtype=torch.int32, device=dev),
                                                                     kv_indices=torch.empty(B * n, dtype=torch.int32, device=dev),
                                                                     kv_len_arr=torch.empty(B, dtype=torch.int32, device=dev))
                    w.plan(torch.arange(B + 1, dtype=torch.int32, device=dev), (torch.arange(B + 1, dtype=torch.int32) * n).to(dev),
                           phys.reshape(-1), torch.full((B,), n, dtype=torch.int32, device=dev), B_HQ, B_DV, B_D - B_DV, 1,
                           False, scale, bf, bf)
                    q_nope, q_pe = q[..., :B_DV].contiguous(), q[..., B_DV:].contiguous()
                    ckv = [c[..., :B_DV].contiguous() for c in cache]  # FlashInfer keeps the two parts apart
                    kpe = [c[..., B_DV:].contiguous() for c in cache]
                    timed("fi_mla", shape + ",note=no_sinks", floor_us,
                          [lambda r=r: w.run(q_nope, q_pe, ckv[r], kpe[r], out=out) for r in range(R)])
                except Exception as e:
                    log(f"kind=sparse_peer,peer=fi_mla,{shape},error={short_err(e)}")
            del cache
            torch.cuda.empty_cache()

    log(f"\n{'shape':<58} {'peer':<8} {'us':>9} {'floor us':>9} {'% floor':>8}")
    for shape, label, us, floor_us in rows:
        log(f"{shape:<58} {label:<8} {us:9.1f} {floor_us:9.1f} {100 * floor_us / us:7.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
