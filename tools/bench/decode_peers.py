#!/usr/bin/env python3
"""FlashInfer paged decode on the shapes beyond swajit's decode grid (issue 14), timed as `swajit bench decode` times.

How to run (GPU machine: Python 3.12, torch 2.11+cu130, nvcc 13.0; no internet). From the root of a tree that carries
`.whl/` (flashinfer_python 0.7.2.post1 and apache_tvm_ffi 0.1.15.post2, see ../shared/peers/README.md):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site
    OUT=/some/dir python3 tools/bench/decode_peers.py --budget-s 300 [--jit-cache A.tgz --jit-cache B.tgz] \
        [--jit-out /some/dir/flashinfer_jit_decode_peers.txz] [--cases gpt-oss,gemma3,...]

Cases (all: CUDA graph replay over KV replicas, triton's do_bench with L2 flushed per rep, median, time / replicas;
page tables list only the pages the window touches, as SGLang passes them for sliding-window layers; floor =
(window KV + q + out bytes) / read bandwidth probed in this run, swajit's formula):
- gpt-oss: 64 q / 8 kv heads, head_dim 64, window 128, learned sinks, page 16, batch 1..256.
  FlashInfer 0.7.2 takes sinks only through `BatchAttentionWithAttentionSinkWrapper` (a paged prefill wrapper with
  the `AttentionSink` JIT variant: `run(q, (k, v), sinks, sm_scale)`); its decode wrappers' `sinks=` argument reaches
  only the trtllm-gen / cuDNN / cute-dsl backends (not Hopper's fa2 path, where it is dropped). Variant `sink` is that
  wrapper (fa2); `tc` is the tensor-core decode wrapper WITHOUT sinks (a different, cheaper computation: the cost of
  the same shape if sinks were free), checked against a reference without sinks.
- gemma3: 32 q / 16 kv heads, head_dim 256, window 1024, page 16, batch 1..256.
- page1, page64: the grid shape (32 q / 8 kv heads, head_dim 128, window 4096) at page sizes 1 and 64, batch 1..256.
- grid: the grid shape at page 16, batch 1..256, q_seqlen 1 and 4, tensor cores only (FlashInfer's fastest there).
- b256: the grid shape at page 16, batch 256, q_seqlen 1 and 4 (batch 1..128: ../shared/peers/flashinfer_peer.py).
- fp8: the grid shape with an fp8 e4m3 KV cache (per-tensor scale 1, so no scale ops), batch 1..256, q_seqlen 1, 4.
Variants: `cc` BatchDecodeWithPagedKVCacheWrapper on CUDA cores (q_seqlen 1 only), `tc` the same with
use_tensor_cores=True (FA2 prefill kernel, q_len_per_req = q_seqlen), `sink` as above. Every variant is checked
against a float32 torch reference on sequences 0 and B-1 of replica 0 before it is timed.

JIT: FlashInfer compiles each (dtype, head_dim, variant) module with nvcc on first use. The script places the
modules of the --jit-cache tarballs where FlashInfer loads prebuilt (AOT) modules, so they load without its ninja
run (which, over unpacked files, recompiles them: seed_jit_cache), asks every variant for the modules it will load
(nothing runs), builds what is still missing in ONE parallel ninja run in a background thread, and meanwhile times
the rows whose modules are ready; rows waiting for the build run after it (if the budget allows) or print "skipped".
--jit-out writes the modules this run built (their .so, xz) as a tarball that --jit-cache takes on the next machine
(--jit-only: build them, time nothing).
"""
import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_build_env import prepare_flashinfer_build_env  # noqa: E402

T0 = time.time()
L2_MULTIPLE, MAX_REPLICAS = 4.0, 64
BATCHES = (1, 8, 32, 128, 256)
KV_LEN = 32768
# name: q heads, kv heads, head_dim, page size, window, sinks, KV dtype, batches, q_seqlens, variants
CASES = {
    "gpt-oss": dict(hq=64, hkv=8, d=64, page=16, window=128, sinks=True, kv="bf16", batches=BATCHES, qs=(1,),
                    variants=("sink", "tc")),
    "gemma3": dict(hq=32, hkv=16, d=256, page=16, window=1024, sinks=False, kv="bf16", batches=BATCHES, qs=(1,),
                   variants=("cc", "tc")),
    "page1": dict(hq=32, hkv=8, d=128, page=1, window=4096, sinks=False, kv="bf16", batches=BATCHES, qs=(1,),
                  variants=("cc", "tc")),
    "page64": dict(hq=32, hkv=8, d=128, page=64, window=4096, sinks=False, kv="bf16", batches=BATCHES, qs=(1,),
                   variants=("cc", "tc")),
    "grid": dict(hq=32, hkv=8, d=128, page=16, window=4096, sinks=False, kv="bf16", batches=BATCHES, qs=(1, 4),
                 variants=("tc",)),
    "b256": dict(hq=32, hkv=8, d=128, page=16, window=4096, sinks=False, kv="bf16", batches=(256,), qs=(1, 4),
                 variants=("cc", "tc")),
    "fp8": dict(hq=32, hkv=8, d=128, page=16, window=4096, sinks=False, kv="fp8", batches=(1, 8, 32, 128, 256),
                qs=(1, 4), variants=("cc", "tc")),
}
VARIANT_NAMES = {"cc": "FI decode, CUDA cores", "tc": "FI decode, tensor cores (FA2)",
                 "sink": "FI AttentionSink wrapper (FA2)"}


def log(*a):
    print(*a, flush=True)


def elapsed():
    return time.time() - T0


def short_err(e, n=600):
    s = f"{type(e).__name__}: {e}".replace("\n", " | ")
    return s if len(s) <= n else s[: n // 2] + " ... " + s[-n // 2 :]


# ---------------------------------------------------------------------------------------------------------------
# Shapes and the reference (pure torch).
# ---------------------------------------------------------------------------------------------------------------
def window_pages(L, Qs, window, page):
    """The page-aligned slice of a sequence FlashInfer is given: pages [p0, ceil(L/page)).

    Returns (visible, npages, kv_len_eff, last_page_len): keys any of the Qs queries can see (swajit's count), the
    pages listed, the length FlashInfer sees (from the start of page p0 to L) and the fill of the last page.
    Positions shift uniformly by p0 * page, so the window test p - j <= window - 1 is unchanged.
    """
    visible = min(window + Qs - 1, L)
    p0 = (L - visible) // page
    npages = (L + page - 1) // page - p0
    kv_len_eff = L - p0 * page
    return visible, npages, kv_len_eff, kv_len_eff - (npages - 1) * page


def ref_decode_seq(q_rows, k_pages, v_pages, page_ids, kv_len_eff, window, sinks=None):
    """float32 reference of one sequence: q_rows [Qs, HQ, D], caches [M, page, HKV, D] (NHD), page_ids [npages].

    Query s sits at kv_len_eff - Qs + s and sees j iff j <= p and p - j < window; grouped GQA; scale 1/sqrt(D);
    sinks (float32 [HQ]) add exp(sink_h) to the softmax denominator.
    """
    import torch

    Qs, hq, d = q_rows.shape
    hkv = k_pages.shape[2]

    def gather(pages):  # the sequence's pages as float32 [kv_len_eff, HQ, D]; 8-bit pages gathered as bytes
        rows = pages.view(torch.uint8)[page_ids].view(pages.dtype) if pages.element_size() == 1 else pages[page_ids]
        return rows.reshape(-1, hkv, d)[:kv_len_eff].float().repeat_interleave(hq // hkv, dim=1)

    K, V = gather(k_pages), gather(v_pages)
    s = torch.einsum("qhd,nhd->hqn", q_rows.float(), K) / math.sqrt(d)
    pos = kv_len_eff - Qs + torch.arange(Qs, device=q_rows.device)
    j = torch.arange(kv_len_eff, device=q_rows.device)
    ok = (j[None, :] <= pos[:, None]) & (pos[:, None] - j[None, :] < window)
    s = s.masked_fill(~ok[None], float("-inf"))
    if sinks is not None:  # one more logit per (head, query) that takes probability but has no value
        s = torch.cat([s, sinks.float()[:, None, None].expand(hq, Qs, 1)], dim=-1)
        p = torch.softmax(s, dim=-1)[..., :-1]
    else:
        p = torch.softmax(s, dim=-1)
    return torch.einsum("hqn,nhd->qhd", p, V)


def err_of(out, ref):
    """(max abs error, the same relative to max |ref|)."""
    e = (out.float() - ref.float()).abs().max().item()
    return e, e / max(ref.float().abs().max().item(), 1e-30)


# ---------------------------------------------------------------------------------------------------------------
# FlashInfer wrappers.
# ---------------------------------------------------------------------------------------------------------------
def make_wrapper(flashinfer, torch, var, ws, c, B, Qs, npg, indptr, indices, last, qo_indptr):
    """A planned wrapper of variant `var` for case c (CUDA-graph mode, buffers sized for exactly this batch)."""
    bf, i32, dev = torch.bfloat16, torch.int32, ws.device
    kv_dtype = torch.float8_e4m3fn if c["kv"] == "fp8" else bf
    window_left = c["window"] - 1  # FlashInfer: j visible from p iff p - j <= window_left
    indptr_buf = torch.empty(B + 1, dtype=i32, device=dev)
    indices_buf = torch.empty(B * npg, dtype=i32, device=dev)
    last_buf = torch.empty(B, dtype=i32, device=dev)
    if var in ("cc", "tc"):
        w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
            ws, "NHD", use_cuda_graph=True, use_tensor_cores=(var == "tc"), paged_kv_indptr_buffer=indptr_buf,
            paged_kv_indices_buffer=indices_buf, paged_kv_last_page_len_buffer=last_buf, backend="fa2")
        w.plan(indptr, indices, last, c["hq"], c["hkv"], c["d"], c["page"], window_left=window_left,
               q_data_type=bf, kv_data_type=kv_dtype, **({"q_len_per_req": Qs} if Qs > 1 else {}))
        return w
    assert var == "sink"
    w = flashinfer.BatchAttentionWithAttentionSinkWrapper(
        ws, "NHD", use_cuda_graph=True, qo_indptr_buf=torch.empty(B + 1, dtype=i32, device=dev),
        paged_kv_indptr_buf=indptr_buf, paged_kv_indices_buf=indices_buf, paged_kv_last_page_len_buf=last_buf,
        backend="fa2", q_data_type=bf, kv_data_type=kv_dtype, head_dim_qk=c["d"], head_dim_vo=c["d"],
        window_left=window_left)
    w.plan(qo_indptr, indptr, indices, last, c["hq"], c["hkv"], c["d"], c["page"], causal=True,
           window_left=window_left, q_data_type=bf, kv_data_type=kv_dtype)
    return w


def run_call(w, var, q, k, v, o, sinks, d):
    if var == "sink":
        return w.run(q, (k, v), sinks, 1.0 / math.sqrt(d), out=o)
    return w.run(q, (k, v), out=o)


class _NeedsBuild(Exception):
    pass


def modules_of(flashinfer, torch, ws, c, var):
    """The JIT specs variant `var` of case c loads, found by planning a one-page batch with JitSpec.build_and_load
    intercepted: a spec already built loads as usual, the first one not built is recorded and stops the plan.
    Returns (missing specs, error text or None); called again after a build until nothing is missing."""
    from flashinfer.jit import core

    original = core.JitSpec.build_and_load
    missing = []

    def intercept(spec):
        if spec.is_compiled:
            return original(spec)
        missing.append(spec)
        raise _NeedsBuild()

    i32, dev = torch.int32, ws.device
    one = torch.tensor([0, 1], dtype=i32, device=dev)
    core.JitSpec.build_and_load = intercept
    try:
        make_wrapper(flashinfer, torch, var, ws, c, 1, 1, 1, one, one[:1], torch.ones(1, dtype=i32, device=dev), one)
        return missing, None
    except _NeedsBuild:
        return missing, None
    except Exception as e:
        return missing, short_err(e)
    finally:
        core.JitSpec.build_and_load = original


# ---------------------------------------------------------------------------------------------------------------
# JIT cache in and out.
# ---------------------------------------------------------------------------------------------------------------
def seed_jit_cache(tarballs, workspace, aot_dir):
    """Prebuilt FlashInfer modules from workspaces built on this GPU kind (tarball root: flashinfer_ws/).

    Each tarball is unpacked into `workspace` (merged), and each module's .so
    (.cache/flashinfer/<version>/<arch>/cached_ops/<name>/<name>.so) is also placed where FlashInfer looks for
    ahead-of-time builds (`aot_dir`/<name>/<name>.so). FlashInfer loads those directly; a module found only in the JIT
    workspace goes through its ninja run, which recompiles every object whose dependency record is older than the
    object (the unpacked files' times), taking the minutes the cache was meant to save. Returns the modules placed.
    """
    for tb in tarballs:
        if not tb or not os.path.exists(tb):
            if tb:
                log(f"JIT cache {tb}: not found")
            continue
        with tarfile.open(tb) as tf:
            members = []
            for m in tf.getmembers():
                parts = m.name.split("/", 1)
                if len(parts) < 2 or parts[0] != "flashinfer_ws" or ".." in m.name.split("/"):
                    continue
                m.name = parts[1]
                if m.islnk():  # hard links name their target by its path in the archive
                    m.linkname = m.linkname.split("/", 1)[-1]
                members.append(m)
            tf.extractall(workspace, members=members)
        log(f"JIT cache {tb}: {len(members)} entries unpacked")
    placed = []
    for root, _, files in os.walk(workspace):
        name = os.path.basename(root)
        if os.path.basename(os.path.dirname(root)) == "cached_ops" and f"{name}.so" in files:
            target = os.path.join(aot_dir, name, f"{name}.so")
            if not os.path.exists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(root, f"{name}.so"), target)
            placed.append(name)
    if placed:
        log(f"JIT cache: {len(placed)} prebuilt modules loadable without a build (in {aot_dir})")
    return placed


def write_jit_cache(workspace, path, names):
    """The modules `names` (their .so, all seed_jit_cache needs) as an xz tarball rooted at flashinfer_ws/."""
    t = time.time()
    count = 0
    with tarfile.open(path, "w:xz") as tf:
        for root, _, files in os.walk(workspace):
            name = os.path.basename(root)
            if name in names and f"{name}.so" in files and os.path.basename(os.path.dirname(root)) == "cached_ops":
                full = os.path.join(root, f"{name}.so")
                tf.add(full, arcname=os.path.join("flashinfer_ws", os.path.relpath(full, workspace)))
                count += 1
    log(f"JIT cache written: {path} ({count} modules, {os.path.getsize(path) / 2**20:.1f} MiB, {time.time() - t:.0f} s)")


# ---------------------------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma list of: " + ", ".join(CASES))
    ap.add_argument("--batches", default="", help="only these batch sizes (comma list)")
    ap.add_argument("--budget-s", type=float, default=float(os.environ.get("FI_PEER_BUDGET_S", 300)),
                    help="rows left after this many seconds are printed as skipped")
    ap.add_argument("--reps-ms", type=float, default=100.0, help="do_bench rep (ms of timed work per measurement)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--jit-cache", action="append", default=None,
                    help="tarball of a FlashInfer workspace built on this GPU kind (repeatable; default: "
                         "flashinfer_jit*.tgz / .txz beside this script)")
    ap.add_argument("--jit-out", default="", help="write the modules this run built here (an xz tarball of their .so) at "
                                                  "the end, for --jit-cache on the next machine")
    ap.add_argument("--jit-only", action="store_true",
                    help="only build the missing modules (and write --jit-out): a cache for a later timed run")
    ap.add_argument("--jit-wait-s", type=float, default=600,
                    help="with --jit-out: wait at most this long for a JIT build still running (0: write at once; "
                         "ninja rebuilds whatever a cut build left unfinished)")
    args = ap.parse_args()
    cases = [n for n in args.cases.split(",") if n]
    for n in cases:
        if n not in CASES:
            ap.error(f"--cases: unknown case {n!r} (known: {', '.join(CASES)})")
    only_batches = {int(b) for b in args.batches.split(",") if b}
    if args.jit_cache is None:
        args.jit_cache = sorted(os.path.join(here, f) for f in os.listdir(here)
                                if f.startswith("flashinfer_jit") and f.endswith((".tgz", ".txz")))

    os.environ.setdefault("FLASHINFER_WORKSPACE_BASE", "/tmp/flashinfer_ws")
    workspace = os.environ["FLASHINFER_WORKSPACE_BASE"]
    os.makedirs(workspace, exist_ok=True)
    prepare_flashinfer_build_env()

    import torch
    from triton.testing import do_bench

    if not torch.cuda.is_available():
        log("no CUDA device: nothing to measure")
        return 1
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(0)
    t = time.time()
    import flashinfer

    log(f"flashinfer {flashinfer.__version__} imported in {time.time() - t:.1f} s; device {props.name} "
        f"({props.multi_processor_count} SMs, L2 {props.L2_cache_size / 2**20:.0f} MiB), torch {torch.__version__}")
    from flashinfer.jit import env as jit_env

    seed_jit_cache(args.jit_cache, workspace, str(jit_env.FLASHINFER_AOT_DIR))
    bf, i32 = torch.bfloat16, torch.int32
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device=dev)  # float workspace shared by the wrappers
    l2 = props.L2_cache_size or (50 << 20)
    results = {"device": props.name, "torch": torch.__version__, "flashinfer": flashinfer.__version__, "rows": []}

    # ---- JIT: which modules each (case, variant) needs; build the missing ones in the background ---------------
    t = time.time()
    need = {}  # (case, variant) -> list of spec names still missing
    specs = {}
    for n in cases:
        for var in CASES[n]["variants"]:
            missing, err = modules_of(flashinfer, torch, ws, CASES[n], var)
            if err:
                log(f"JIT probe {n}/{var}: {err}")
            need[(n, var)] = [s.name for s in missing]
            specs.update({s.name: s for s in missing})
    log(f"JIT: {len(specs)} modules to build ({sum(len(s.sources) for s in specs.values())} nvcc units) for "
        + (", ".join(f"{n}/{v}" for (n, v), m in need.items() if m) or "nothing") + f" (probe {time.time() - t:.1f} s)")
    build = {"done": not specs, "error": None, "built": set()}

    def build_all(todo):
        from flashinfer.jit.core import build_jit_specs

        t1 = time.time()
        try:
            build_jit_specs(list(todo))
        except Exception as e:
            build["error"] = short_err(e, 3000)
            for s in todo:  # one by one, so one broken module does not take the others along
                if not s.is_compiled:
                    try:
                        s.build()
                    except Exception as e2:
                        log(f"JIT {s.name} failed: {short_err(e2, 2000)}")
        build["built"].update(s.name for s in todo if s.is_compiled)
        log(f"JIT build done in {time.time() - t1:.0f} s: " + ", ".join(
            f"{s.name}={'ok' if s.is_compiled else 'MISSING'}" for s in todo)
            + (f" (parallel run failed: {build['error']})" if build["error"] else ""))
        build["done"] = True

    builder = None
    if specs:
        builder = threading.Thread(target=build_all, args=(list(specs.values()),), daemon=True)
        builder.start()

    if args.jit_only:  # build (in the foreground), hand the cache on, time nothing
        if builder is not None:
            builder.join()
        for _ in range(3):  # a module may load a second one only once the first exists
            more = {}
            for n in cases:
                for var in CASES[n]["variants"]:
                    more.update({s.name: s for s in modules_of(flashinfer, torch, ws, CASES[n], var)[0]})
            if not more:
                break
            log(f"JIT: {len(more)} more module(s)")
            build_all(list(more.values()))
        if args.jit_out:
            write_jit_cache(workspace, args.jit_out, build["built"])
        log(f"--jit-only: done in {elapsed():.0f} s")
        return 0

    def ready(n, var):
        return all(specs[s].is_compiled for s in need[(n, var)])

    # ---- the read-bandwidth ceiling ------------------------------------------------------------------------------
    x = torch.empty(1 << 31, dtype=bf, device=dev).normal_()  # 4 GiB
    ms = do_bench(lambda: x.sum(dtype=torch.float32), warmup=20, rep=200, return_mode="median")
    RBW = x.numel() * 2 / (ms * 1e-3)
    del x
    torch.cuda.empty_cache()
    results["read_GBps"] = RBW / 1e9
    log(f"kind=ceiling_read,GBps={RBW / 1e9:.1f}" + ("  (measured while nvcc builds on the host)" if specs else ""))

    def time_row(n, B, Qs, variants):
        """Times `variants` of case n on one (batch, q_seqlen) row; returns {variant: result dict}."""
        c = CASES[n]
        visible, npg, kv_len_eff, last_len = window_pages(KV_LEN, Qs, c["window"], c["page"])
        kv_elem = 1 if c["kv"] == "fp8" else 2
        kv_bytes = B * c["hkv"] * visible * c["d"] * kv_elem * 2
        floor_us = (kv_bytes + 2 * B * Qs * c["hq"] * c["d"] * 2) / RBW * 1e6
        R = max(1, min(MAX_REPLICAS, math.ceil(L2_MULTIPLE * l2 / kv_bytes)))
        out = {"floor_us": floor_us, "replicas": R}
        M = B * npg
        g = torch.Generator(device="cpu").manual_seed(1000 * B + 10 * Qs + c["page"])
        kv_dtype = torch.float8_e4m3fn if c["kv"] == "fp8" else bf
        k_all = torch.randn(R, M, c["page"], c["hkv"], c["d"], dtype=bf, device=dev).to(kv_dtype)
        v_all = torch.randn(R, M, c["page"], c["hkv"], c["d"], dtype=bf, device=dev).to(kv_dtype)
        q_all = torch.randn(R, B * Qs, c["hq"], c["d"], dtype=bf, device=dev)
        o_all = torch.zeros(R, B * Qs, c["hq"], c["d"], dtype=bf, device=dev)
        sinks = (torch.randn(c["hq"], generator=g) * 2).float().to(dev)
        indices = torch.randperm(M, generator=g).to(i32).to(dev)  # scattered pages, as in a real cache
        indptr = (torch.arange(B + 1, dtype=i32) * npg).to(dev)
        last = torch.full((B,), last_len, dtype=i32, device=dev)
        qo_indptr = (torch.arange(B + 1, dtype=i32) * Qs).to(dev)
        for var in variants:
            if var == "cc" and Qs > 1:
                out[var] = {"note": "n/a: CUDA-core decode has no q_seqlen > 1"}
                continue
            t1 = time.time()
            w = run = None
            try:
                w = make_wrapper(flashinfer, torch, var, ws, c, B, Qs, npg, indptr, indices, last, qo_indptr)
                run = lambda r: run_call(w, var, q_all[r], k_all[r], v_all[r], o_all[r], sinks, c["d"])
                run(0)
                torch.cuda.synchronize()
                with_sinks = sinks if var == "sink" else None
                errs = [err_of(o_all[0, b * Qs : (b + 1) * Qs],
                               ref_decode_seq(q_all[0, b * Qs : (b + 1) * Qs], k_all[0], v_all[0],
                                              indices[b * npg : (b + 1) * npg].long(), kv_len_eff, c["window"],
                                              with_sinks))
                        for b in sorted({0, B - 1})]
                err, rel = max(e[0] for e in errs), max(e[1] for e in errs)
                us = time_graph(torch, do_bench, [(lambda r=r: run(r)) for r in range(R)], args.reps_ms)
                ok = rel < 2e-2
                out[var] = dict(us=us, pct=100 * floor_us / us, err=err, rel_err=rel, ok=ok)
                log(f"kind=decode_peer,case={n},variant={var},B={B},L={KV_LEN},Qs={Qs},us={us:.2f},"
                    f"floor_us={floor_us:.2f},pct={100 * floor_us / us:.0f},max_abs_err={err:.2e},rel={rel:.1e}"
                    f"{'' if ok else ',FAIL'},replicas={R},t={time.time() - t1:.1f}s")
            except Exception as e:
                out[var] = {"error": short_err(e)}
                log(f"kind=decode_peer,case={n},variant={var},B={B},Qs={Qs},error={short_err(e)}")
                if os.environ.get("FI_PEER_TRACE"):
                    traceback.print_exc()
            finally:
                w = run = None
                sync_quietly(torch)
        del k_all, v_all, q_all, o_all
        torch.cuda.empty_cache()
        return out

    # ---- rows: first those whose modules are ready, then (after the build) the rest --------------------------------
    rows = {}  # (case, B, Qs) -> row dict
    order = [(n, B, Qs) for n in cases for B in CASES[n]["batches"] if not only_batches or B in only_batches
             for Qs in CASES[n]["qs"]]
    for key in order:
        n, B, Qs = key
        rows[key] = dict(case=n, batch=B, kv_len=KV_LEN, q_seqlen=Qs)
    for attempt in ("ready", "after build"):
        if attempt == "after build" and builder is not None:
            left = args.budget_s - elapsed()
            if left > 0 and not build["done"]:
                log(f"waiting up to {left:.0f} s for the JIT build")
                builder.join(timeout=left)
            for (n, var), missing in need.items():  # a module may load a second one only once the first exists
                if missing and ready(n, var):
                    more, err = modules_of(flashinfer, torch, ws, CASES[n], var)
                    if more and elapsed() < args.budget_s:
                        log(f"JIT {n}/{var}: {len(more)} more module(s); building")
                        build_all(more)
        for key in order:
            n, B, Qs = key
            row = rows[key]
            todo = [v for v in CASES[n]["variants"] if v not in row and (attempt != "ready" or ready(n, v))]
            if not todo:
                continue
            if elapsed() > args.budget_s:
                for v in todo:
                    row[v] = {"skipped": "time budget" if ready(n, v) else "JIT module not built in the budget"}
                continue
            try:
                row.update(time_row(n, B, Qs, todo))
            except Exception as e:  # setup (allocation) failed
                for v in todo:
                    row[v] = {"error": "setup: " + short_err(e)}
                log(f"kind=decode_peer,case={n},B={B},Qs={Qs},error=setup: {short_err(e)}")
                torch.cuda.empty_cache()
    results["rows"] = [rows[k] for k in order]
    print_tables(results, cases, RBW)

    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "decode_peers.json"), "w") as f:
            json.dump(results, f, indent=1)
    if args.jit_out:
        if builder is not None and not build["done"] and args.jit_wait_s > 0:
            log(f"JIT build still running: waiting up to {args.jit_wait_s:.0f} s before writing the cache")
            builder.join(timeout=args.jit_wait_s)
        write_jit_cache(workspace, args.jit_out, build["built"])
    if builder is not None and not build["done"]:
        log("JIT build still running at exit: stopping its ninja / nvcc processes")
        stop_descendants()
    log(f"done in {elapsed():.0f} s ({props.name}, torch {torch.__version__}, flashinfer {flashinfer.__version__})")
    return 0


def stop_descendants():
    """SIGTERM to this process's own descendants (the cut JIT build), found through /proc, so none outlives it."""
    import signal

    children = {}
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    todo, mine = [os.getpid()], []
    while todo:
        for child in children.get(todo.pop(), []):
            mine.append(child)
            todo.append(child)
    for pid in mine:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def sync_quietly(torch):
    try:
        torch.cuda.synchronize()
    except Exception as e:  # a sticky CUDA error: later rows will say so themselves
        log(f"  (synchronize after the row: {short_err(e)})")


def time_graph(torch, do_bench, calls, rep_ms):
    """us per call: one CUDA graph holding every call (one per KV replica), replayed under do_bench (median)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            for c in calls:
                c()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for c in calls:
            c()
    torch.cuda.synchronize()
    ms = do_bench(graph.replay, warmup=25, rep=rep_ms, return_mode="median")
    del graph
    return ms * 1e3 / len(calls)


def _cell(d, key, fmt):
    if not isinstance(d, dict):
        return "-"
    if key in d:
        return fmt.format(d[key]) + ("" if d.get("ok", True) else " FAIL")
    for k in ("error", "skipped", "note"):
        if k in d:
            return "error" if k == "error" else ("n/a" if k == "note" else "skipped")
    return "-"


def print_tables(results, cases, RBW):
    for n in cases:
        c = CASES[n]
        rows = [r for r in results["rows"] if r["case"] == n]
        if not rows:
            continue
        vs = c["variants"]
        log("")
        log(f"FlashInfer decode, case {n}: {c['hq']} q / {c['hkv']} kv heads, head_dim {c['d']}, page {c['page']}, "
            f"window {c['window']}, KV {c['kv']}{', learned sinks' if c['sinks'] else ''}, kv_len {KV_LEN}; CUDA graph "
            f"replay, L2 flushed per rep, median; floor = (window KV + q + out) / read {RBW / 1e9:.0f} GB/s")
        log("| batch | q_seqlen | floor (us) |" + "".join(f" {VARIANT_NAMES[v]} (us) | % of floor |" for v in vs)
            + " max abs err (" + " / ".join(vs) + ") |")
        log("|---:|---:|---:|" + "---:|---:|" * len(vs) + "---|")
        for r in rows:
            floor = next((r[v].get("floor_us") for v in vs if isinstance(r.get(v), dict) and "floor_us" in r[v]),
                         r.get("floor_us"))
            line = f"| {r['batch']} | {r['q_seqlen']} | " + (f"{floor:.1f}" if floor else "-") + " |"
            for v in vs:
                line += f" {_cell(r.get(v), 'us', '{:.1f}')} | {_cell(r.get(v), 'pct', '{:.0f}%')} |"
            log(line + " " + " / ".join(_cell(r.get(v), "err", "{:.1e}") for v in vs) + " |")
        for r in rows:
            for v in vs:
                d = r.get(v)
                if isinstance(d, dict) and ("error" in d or "skipped" in d):
                    log(f"  {n} B={r['batch']} Qs={r['q_seqlen']} {v}: {d.get('error') or d.get('skipped')}")
        if n == "gpt-oss":
            log("  (tc runs WITHOUT sinks: FlashInfer's decode wrappers drop sinks on Hopper's fa2 path; "
                "`sink` is the AttentionSink prefill wrapper with sinks)")


if __name__ == "__main__":
    sys.exit(main())
