#!/usr/bin/env python3
"""swajit's CPU backend beside PyTorch's CPU scaled_dot_product_attention, same shapes, same window mask.

Installs torch from PyPI into a virtual environment (build/torch-venv) when it is missing, times
F.scaled_dot_product_attention on the CPU (bf16, GQA, boolean sliding-window mask; K/V cut to the tokens the
window can reach, PyTorch's best case) with the same thread count swajit uses, runs `swajit bench decode --device
cpu` on the same grid, and prints one table with the ratio. Usage:
    tools/bench/cpu_vs_torch.py [--batch 1,8,32,128] [--kv-len 4096,32768] [--q-seqlen 1,4] [--reps 5]
"""
import argparse, os, re, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, "build", "torch-venv")


def ensure_torch():
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass
    python = os.path.join(VENV, "bin", "python3")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([python, "-m", "pip", "install", "-q", "torch"])
    os.execv(python, [python] + sys.argv)  # rerun inside the environment that has torch


def torch_times(args, threads):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    hq, hkv, d, window = args.num_q_heads, args.num_kv_heads, args.head_dim, args.local_window
    rows = {}
    for b in args.batch:
        for length in args.kv_len:
            for qs in args.q_seqlen:
                visible = min(length, window + qs - 1)  # the keys the window can reach
                q = torch.randn(b, hq, qs, d, dtype=torch.bfloat16)
                k = torch.randn(b, hkv, visible, d, dtype=torch.bfloat16)
                v = torch.randn(b, hkv, visible, d, dtype=torch.bfloat16)
                pos_q = torch.arange(length - qs, length).view(qs, 1)
                pos_k = torch.arange(length - visible, length).view(1, visible)
                mask = (pos_k <= pos_q) & (pos_q - pos_k < window)
                run = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
                run()
                times = []
                for _ in range(args.reps):
                    start = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - start) * 1e3)
                rows[(b, length, qs)] = statistics.median(times)
    return rows, torch.__version__


def swajit_times(args):
    cli = os.path.join(ROOT, "build", "tools", "swajit")
    csv = lambda xs: ",".join(map(str, xs))
    out = subprocess.check_output([cli, "bench", "decode", "--device", "cpu", "--batch", csv(args.batch),
                                   "--kv-len", csv(args.kv_len), "--q-seqlen", csv(args.q_seqlen),
                                   "--reps", str(args.reps), "--local-window", str(args.local_window)], text=True)
    rows, header = {}, [line for line in out.splitlines() if not line.startswith("|")]
    threads = int(re.search(r"(\d+) threads", out).group(1))
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 5 and cells[0].isdigit():
            rows[(int(cells[0]), int(cells[1]), int(cells[2]))] = float(cells[3])
    return rows, threads, header


def main():
    ints = lambda text: [int(x) for x in text.split(",")]
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=ints, default=[1, 8, 32, 128])
    p.add_argument("--kv-len", type=ints, default=[4096, 32768])
    p.add_argument("--q-seqlen", type=ints, default=[1, 4])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--num-q-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--local-window", type=int, default=4096)
    args = p.parse_args()
    ensure_torch()
    ours, threads, header = swajit_times(args)
    theirs, version = torch_times(args, threads)
    print("\n".join(header[:2]))
    print(f"PyTorch {version} scaled_dot_product_attention on the CPU, {threads} threads, bf16, boolean window mask, "
          f"K/V cut to the window; median of {args.reps}\n")
    print("| batch | kv_len | q_seqlen | swajit (ms) | PyTorch SDPA (ms) | PyTorch / swajit |")
    print("|---:|---:|---:|---:|---:|---:|")
    slower = 0
    for key in sorted(ours):
        ratio = theirs[key] / ours[key]
        slower += ratio < 1
        print(f"| {key[0]} | {key[1]} | {key[2]} | {ours[key]:.3f} | {theirs[key]:.3f} | {ratio:.2f}x |")
    print(f"\nswajit faster on {len(ours) - slower} of {len(ours)} shapes")


if __name__ == "__main__":
    main()
