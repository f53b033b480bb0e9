#!/usr/bin/env python3
"""FlashInfer prefill on the rows issue 15 adds beside `swajit bench prefill` (same shapes, same FLOP count).

Extends ../shared/peers/flashinfer_peer.py (imported, not copied: its JIT cache seeding, timing conventions, reference
and error helpers) with:
  - head_dim 64 and 256 (32 q / 8 kv heads) and GQA 32/4 (head_dim 128), seq 8192 and 32768, window 4096 causal,
    BatchPrefillWithRaggedKVCacheWrapper (contiguous K/V);
  - a varlen batch: 16 sequences of 512..8192 queries, each chunked after a cached prefix of 4096 tokens, K/V in a
    paged NHD cache of 16-token pages, window 4096 causal, BatchPrefillWithPagedKVCacheWrapper;
each with backend "fa3" and "fa2", eager calls under triton's do_bench (median), like the peer's prefill grid.
The matching swajit rows: `swajit_commands()` below (printed at the start; tools/bench/gpu_prefill.sh runs them).

    python3 tools/bench/prefill_peers.py [--no-fa3] [--budget-s 300]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# flashinfer_peer.py: $PEERS_DIR, else beside a checkout (tools/bench -> .peers), else beside this folder copied to
# .carry/h_<name>/bench of a checkout, else the shared folder next to the checkout
for peers in (os.environ.get("PEERS_DIR", ""), os.path.join(HERE, "..", "..", ".peers"),
              os.path.join(HERE, "..", "..", "..", ".peers"), os.path.join(HERE, "..", "..", "..", "shared", "peers"),
              os.path.join(HERE, "..", "..", "shared", "peers")):
    if peers and os.path.exists(os.path.join(peers, "flashinfer_peer.py")):
        sys.path.insert(0, os.path.abspath(peers))
        break
import flashinfer_peer as fp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_build_env import prepare_flashinfer_build_env  # noqa: E402

HQ, W, PAGE, PREFIX = 32, 4096, 16, 4096
SEQS = (8192, 32768)
UNIFORM_ROWS = [("head_dim 64", 8, 64), ("head_dim 256", 8, 256), ("GQA 32/4", 4, 128)]  # (name, kv heads, head_dim)
VARLEN_Q_LENS = [512, 640, 768, 1024, 1280, 1536, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 7680, 8192]
VARLEN_KV_HEADS, VARLEN_HEAD_DIM = 8, 128


def swajit_commands(swajit="swajit"):
    """The `swajit bench prefill` calls that time the same shapes."""
    seqs = ",".join(map(str, SEQS))
    cmds = [f"{swajit} bench prefill --seq {seqs} --num-kv-heads {hkv} --head-dim {d}" for _, hkv, d in UNIFORM_ROWS]
    cmds.append(f"{swajit} bench prefill --q-lens {','.join(map(str, VARLEN_Q_LENS))} --prefix-len {PREFIX} "
                f"--page-size {PAGE} --num-kv-heads {VARLEN_KV_HEADS} --head-dim {VARLEN_HEAD_DIM}")
    return cmds


def visible_pairs(q_len, kv_len, w=W):
    """Causal window-w pairs of q_len queries that are the last of kv_len keys (the FLOP count swajit uses)."""
    first = kv_len - q_len
    return sum(min(p + 1, w) for p in range(first, kv_len))


def ref_chunked_rows(q, k, v, rows, prefix, w=W):
    """float32 reference of query rows of sequence 0 (positions prefix + row); q [L, HQ, D], k/v [prefix + L, HKV, D]."""
    import math
    import torch

    g = q.shape[1] // k.shape[1]
    outs = []
    for i in rows:
        p = prefix + i
        j0 = max(0, p - w + 1)
        K = k[j0 : p + 1].float().repeat_interleave(g, dim=1)
        V = v[j0 : p + 1].float().repeat_interleave(g, dim=1)
        s = torch.einsum("hd,nhd->hn", q[i].float(), K) / math.sqrt(q.shape[2])
        outs.append(torch.einsum("hn,nhd->hd", torch.softmax(s, dim=-1), V))
    return torch.stack(outs)


def prebuild(torch, backends, head_dims):
    """The batch prefill modules of every (backend, head_dim) in one ninja run (nvcc: minutes for a new head_dim)."""
    bf, i32 = torch.bfloat16, torch.int32
    t = time.time()
    try:
        from flashinfer.jit.attention.modules import gen_batch_prefill_module
        from flashinfer.jit.core import build_jit_specs

        try:  # the FA2 module the wrappers load (as flashinfer_peer.prebuild); the public one otherwise
            from flashinfer.jit.attention.modules import _gen_batch_prefill_primary_module as gen_fa2
        except ImportError:
            gen_fa2 = gen_batch_prefill_module
        # (dtype_q, dtype_kv, dtype_o, dtype_idx, head_dim_qk, head_dim_vo, no pos encoding, sliding window, no soft
        #  cap, no fp16 qk reduction): the keys plan() derives for these calls
        specs = [(gen_fa2 if be == "fa2" else gen_batch_prefill_module)(be, bf, bf, bf, i32, d, d, 0, True, False, False)
                 for be in backends for d in head_dims]
        todo = [s for s in specs if not s.is_compiled]
        fp.log(f"JIT: {len(specs)} prefill modules, {len(todo)} to build")
        if todo:
            build_jit_specs(todo)
        fp.log(f"kind=peer_jit,modules={len(todo)},s={time.time() - t:.0f}")
    except Exception as e:
        fp.log(f"JIT prebuild failed after {time.time() - t:.0f} s (modules build lazily at first use): {fp.short_err(e)}")


def time_call(torch, do_bench, run, reps_ms):
    run()
    torch.cuda.synchronize()
    return do_bench(run, warmup=25, rep=reps_ms, return_mode="median")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-fa3", action="store_true")
    ap.add_argument("--budget-s", type=float, default=300.0)
    ap.add_argument("--reps-ms", type=float, default=100.0)
    ap.add_argument("--jit-cache", default=os.path.join(os.path.dirname(fp.__file__), "flashinfer_jit_h200.tgz"))
    args = ap.parse_args()
    for c in swajit_commands():
        fp.log(f"swajit row: {c}")
    os.environ.setdefault("FLASHINFER_WORKSPACE_BASE", "/tmp/flashinfer_ws")
    fp.seed_jit_cache(args.jit_cache, os.environ["FLASHINFER_WORKSPACE_BASE"])
    prepare_flashinfer_build_env()
    import torch
    from triton.testing import do_bench

    if not torch.cuda.is_available():
        fp.log("no CUDA device: nothing to measure")
        return 1
    import flashinfer

    dev, bf, i32 = torch.device("cuda"), torch.bfloat16, torch.int32
    backends = (["fa3"] if not args.no_fa3 and torch.cuda.get_device_capability()[0] == 9 else []) + ["fa2"]
    prebuild(torch, backends, sorted({d for _, _, d in UNIFORM_ROWS} | {VARLEN_HEAD_DIM}))
    a = torch.randn(8192, 8192, dtype=bf, device=dev)
    mm = 2 * 8192**3 / (do_bench(lambda: a @ a, warmup=25, rep=100, return_mode="median") * 1e-3)
    del a
    fp.log(f"kind=ceiling_mm_bf16,TFLOPs={mm / 1e12:.1f}")
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device=dev)
    t0 = time.time()

    def report(name, hkv, d, seq, be, ms, flops, rel):
        tf = flops / (ms * 1e-3) / 1e12
        fp.log(f"kind=prefill_peer_{be},row={name.replace(' ', '_')},Hq={HQ},Hkv={hkv},D={d},S={seq},ms={ms:.4f},"
               f"TFLOPs={tf:.1f},pct_mm={100 * tf * 1e12 / mm:.0f},rel={rel:.1e}{'' if rel < 2e-2 else ',FAIL'}")

    for name, hkv, d in UNIFORM_ROWS:
        for S in SEQS:
            torch.manual_seed(S + hkv + d)
            q = torch.randn(S, HQ, d, dtype=bf, device=dev)
            k = torch.randn(S, hkv, d, dtype=bf, device=dev)
            v = torch.randn(S, hkv, d, dtype=bf, device=dev)
            o = torch.zeros_like(q)
            ind = torch.tensor([0, S], dtype=i32, device=dev)
            rows = [0, W - 1, S // 2, S - 1]
            ref = fp.ref_prefill_rows(q, k, v, rows)
            for be in backends:
                if time.time() - t0 > args.budget_s:
                    fp.log(f"kind=prefill_peer_skipped,row={name.replace(' ', '_')},S={S},backend={be},reason=budget")
                    continue
                try:
                    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(ws, "NHD", backend=be)
                    w.plan(ind, ind, HQ, hkv, d, causal=True, window_left=W - 1, q_data_type=bf, kv_data_type=bf)
                    ms = time_call(torch, do_bench, lambda: w.run(q, k, v, out=o), args.reps_ms)
                    report(name, hkv, d, S, be, ms, 4 * d * HQ * visible_pairs(S, S), fp.err_of(o[rows], ref)[1])
                except Exception as e:
                    fp.log(f"kind=prefill_peer_{be},row={name.replace(' ', '_')},S={S},error={fp.short_err(e)}")
                finally:
                    w = None
                    fp.sync_quietly(torch)
            del q, k, v, o
            torch.cuda.empty_cache()

    # varlen: sequence b has VARLEN_Q_LENS[b] queries after PREFIX cached tokens; its pages are consecutive
    hkv, d = VARLEN_KV_HEADS, VARLEN_HEAD_DIM
    kv_lens = [PREFIX + n for n in VARLEN_Q_LENS]
    pages = [(n + PAGE - 1) // PAGE for n in kv_lens]
    qo_indptr = torch.tensor([0] + list(torch.tensor(VARLEN_Q_LENS).cumsum(0).tolist()), dtype=i32, device=dev)
    kv_indptr = torch.tensor([0] + list(torch.tensor(pages).cumsum(0).tolist()), dtype=i32, device=dev)
    kv_indices = torch.arange(sum(pages), dtype=i32, device=dev)
    last_page_len = torch.tensor([n - (p - 1) * PAGE for n, p in zip(kv_lens, pages)], dtype=i32, device=dev)
    torch.manual_seed(1)
    q = torch.randn(sum(VARLEN_Q_LENS), HQ, d, dtype=bf, device=dev)
    k_cache = torch.randn(sum(pages), PAGE, hkv, d, dtype=bf, device=dev)
    v_cache = torch.randn(sum(pages), PAGE, hkv, d, dtype=bf, device=dev)
    o = torch.zeros_like(q)
    rows = [0, VARLEN_Q_LENS[0] // 2, VARLEN_Q_LENS[0] - 1]
    ref = ref_chunked_rows(q[: VARLEN_Q_LENS[0]], k_cache.reshape(-1, hkv, d)[: kv_lens[0]],
                           v_cache.reshape(-1, hkv, d)[: kv_lens[0]], rows, PREFIX)
    flops = 4 * d * HQ * sum(visible_pairs(n, kv) for n, kv in zip(VARLEN_Q_LENS, kv_lens))
    for be in backends:
        if time.time() - t0 > args.budget_s:
            fp.log(f"kind=prefill_peer_skipped,row=varlen,backend={be},reason=budget")
            continue
        try:
            w = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", backend=be)
            w.plan(qo_indptr, kv_indptr, kv_indices, last_page_len, HQ, hkv, d, PAGE, causal=True, window_left=W - 1,
                   q_data_type=bf, kv_data_type=bf)
            ms = time_call(torch, do_bench, lambda: w.run(q, (k_cache, v_cache), out=o), args.reps_ms)
            report("varlen", hkv, d, 0, be, ms, flops, fp.err_of(o[rows], ref)[1])
        except Exception as e:
            fp.log(f"kind=prefill_peer_{be},row=varlen,error={fp.short_err(e)}")
        finally:
            w = None
            fp.sync_quietly(torch)
    fp.log(f"done in {fp.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
