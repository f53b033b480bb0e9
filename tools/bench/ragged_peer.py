#!/usr/bin/env python3
"""FlashInfer's tensor-core decode on the ragged batches `swajit bench decode --write-lengths DIR` timed.

    python3 tools/bench/ragged_peer.py DIR [--peers .peers] [--kv-dtype bf16|fp8]

For every DIR/lengths_b<batch>_q<q_seqlen>.txt (one KV length a line) it builds the batch the way
flashinfer_peer.py builds its uniform ones (its page-table setup is imported, not copied: each sequence gets only the
pages its window touches, scattered by a random permutation; decode_layout gives the slice FlashInfer sees), runs
BatchDecodeWithPagedKVCacheWrapper(use_tensor_cores=True) under a CUDA graph with one call per KV replica, checks the
shortest and the longest sequence against the float32 reference, and prints one `kind=ragged_fi_tc` line per file
with the floor counted from the tokens each sequence really reads (swajit's formula, the read bandwidth probed here).
Shapes as flashinfer_peer.py: 32 q / 8 kv heads, head_dim 128, page 16, bf16 q, window 4096; the KV cache bf16 or,
with --kv-dtype fp8, fp8 e4m3 (scale 1; the floor counts one byte an element, as swajit's 8-bit rows do). A sequence
of length 0 has no FlashInfer equivalent (its kv_len must be >= q_seqlen): it is given q_seqlen tokens, and the floor
counts them. gpu_ragged.sh writes the files: LOG_DIR/lengths/log-uniform and LOG_DIR/lengths/bimodal.
"""
import argparse
import glob
import math
import os
import re
import sys


def make_tc_wrapper(flashinfer, torch, fp, ws, B, Qs, M, indptr, indices, last, kv_dtype):
    """FlashInfer's tensor-core decode planned for this batch (CUDA-graph mode, index buffers holding all M pages):
    flashinfer_peer.make_decode_wrapper's "tc" variant, with the KV dtype a parameter."""
    i32, dev = torch.int32, ws.device
    w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
        ws, "NHD", use_cuda_graph=True, use_tensor_cores=True, paged_kv_indptr_buffer=torch.empty(B + 1, dtype=i32, device=dev),
        paged_kv_indices_buffer=torch.empty(M, dtype=i32, device=dev),
        paged_kv_last_page_len_buffer=torch.empty(B, dtype=i32, device=dev), backend="fa2")
    w.plan(indptr, indices, last, fp.HQ, fp.HKV, fp.D, fp.PAGE, window_left=fp.WINDOW_LEFT, q_data_type=torch.bfloat16,
           kv_data_type=kv_dtype, **({"q_len_per_req": Qs} if Qs > 1 else {}))
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lengths_dir")
    ap.add_argument("--peers", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../.peers"),
                    help="folder holding flashinfer_peer.py (prepare_gpu_carry.sh copies it to .peers/)")
    ap.add_argument("--reps-ms", type=float, default=100.0)
    ap.add_argument("--kv-dtype", choices=("bf16", "fp8"), default="bf16")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.peers))
    import flashinfer_peer as fp

    os.environ.setdefault("FLASHINFER_WORKSPACE_BASE", "/tmp/flashinfer_ws")
    fp.seed_jit_cache(os.path.join(os.path.abspath(args.peers), "flashinfer_jit_h200.tgz"), os.environ["FLASHINFER_WORKSPACE_BASE"])
    import torch
    import flashinfer
    from triton.testing import do_bench

    dev = torch.device("cuda")
    bf, i32 = torch.bfloat16, torch.int32
    x = torch.empty(1 << 31, dtype=bf, device=dev).normal_()
    RBW = x.numel() * 2 / (do_bench(lambda: x.sum(dtype=torch.float32), warmup=20, rep=200, return_mode="median") * 1e-3)
    del x
    fp.log(f"kind=ceiling_read,GBps={RBW / 1e9:.1f}")
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 50 << 20) or (50 << 20)
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device=dev)

    kv_dtype, kv_elem = (torch.float8_e4m3fn, 1) if args.kv_dtype == "fp8" else (bf, 2)
    files = sorted(glob.glob(os.path.join(args.lengths_dir, "lengths_b*_q*.txt")),
                   key=lambda f: tuple(int(n) for n in re.findall(r"\d+", os.path.basename(f))))
    for path in files:
        B, Qs = (int(n) for n in re.findall(r"\d+", os.path.basename(path)))
        lengths = [max(int(t), Qs) for t in open(path).read().split()]
        assert len(lengths) == B, f"{path}: {len(lengths)} lengths for batch {B}"
        layouts = [fp.decode_layout(L, Qs) for L in lengths]  # (visible, p0, npages, kv_len_eff, last_page_len)
        visible = sum(l[0] for l in layouts)
        kv_bytes = fp.HKV * visible * fp.D * kv_elem * 2
        floor_us = (kv_bytes + 2 * B * Qs * fp.HQ * fp.D * 2) / RBW * 1e6
        R = max(1, min(fp.MAX_REPLICAS, math.ceil(fp.L2_MULTIPLE * l2 / kv_bytes)))
        try:
            npg = [l[2] for l in layouts]
            M = sum(npg)
            g = torch.Generator(device="cpu").manual_seed(1000 * B + 10 * Qs)
            k_all = torch.randn(R, M, fp.PAGE, fp.HKV, fp.D, dtype=bf, device=dev).to(kv_dtype)
            v_all = torch.randn(R, M, fp.PAGE, fp.HKV, fp.D, dtype=bf, device=dev).to(kv_dtype)
            q_all = torch.randn(R, B * Qs, fp.HQ, fp.D, dtype=bf, device=dev)
            o_all = torch.zeros(R, B * Qs, fp.HQ, fp.D, dtype=bf, device=dev)
            indices = torch.randperm(M, generator=g).to(i32).to(dev)  # scattered pages, as in flashinfer_peer.py
            indptr_host = [0]
            for n in npg:
                indptr_host.append(indptr_host[-1] + n)
            indptr = torch.tensor(indptr_host, dtype=i32, device=dev)
            last = torch.tensor([l[4] for l in layouts], dtype=i32, device=dev)
            w = make_tc_wrapper(flashinfer, torch, fp, ws, B, Qs, M, indptr, indices, last, kv_dtype)
            run = lambda r: w.run(q_all[r], (k_all[r], v_all[r]), out=o_all[r])
            run(0)
            torch.cuda.synchronize()
            rel = 0.0
            for bi in sorted({lengths.index(min(lengths)), lengths.index(max(lengths))}):
                ref = fp.ref_decode_seq(q_all[0, bi * Qs:(bi + 1) * Qs], k_all[0], v_all[0],
                                        indices[indptr_host[bi]:indptr_host[bi + 1]].long(), layouts[bi][3])
                rel = max(rel, fp.err_of(o_all[0, bi * Qs:(bi + 1) * Qs], ref)[1])
            us = fp.time_graph(torch, do_bench, [(lambda r=r: run(r)) for r in range(R)], args.reps_ms)
            fp.log(f"kind=ragged_fi_tc,kv={args.kv_dtype},file={os.path.basename(path)},B={B},Qs={Qs},us={us:.1f},floor_us={floor_us:.1f},"
                   f"pct={100 * floor_us / us:.0f},rel={rel:.1e}{'' if rel < 2e-2 else ',FAIL'},replicas={R}")
            del k_all, v_all, q_all, o_all, w
        except Exception as e:
            fp.log(f"kind=ragged_fi_tc,kv={args.kv_dtype},file={os.path.basename(path)},B={B},Qs={Qs},error={fp.short_err(e)}")
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
