#!/usr/bin/env python3
"""A paged KV cache kept the way vLLM and SGLang keep theirs, decoded by swajit with speculative q_seqlen 4.

A batch of sequences of different lengths is prefilled (their K/V appended to the page pool, block_table and seq_lens
updated); then each step appends 4 draft tokens per sequence and verifies them with one swajit.paged_decode call of
q_seqlen 4 over the cache (each draft token sees the cache up to its own position, within the sliding window and the
sink tokens). Every step is checked against plain torch attention over the same tokens. Runs on the GPU when there
is one (torch's current stream), else on the CPU backend:
    python runtime/python/examples/paged_speculative_decode.py [--device cpu|cuda] [--steps 3]
"""
import argparse

import torch

import swajit

NUM_Q_HEADS, NUM_KV_HEADS, HEAD_DIM = 8, 2, 128
LOCAL_WINDOW, SINK_TOKENS, DRAFT_TOKENS = 64, 4, 4


def reference(q, k, v, kv_len):
    """Plain attention of the last DRAFT_TOKENS positions over one sequence's tokens k, v [kv_len, heads, dim]."""
    q_pos = torch.arange(kv_len - q.shape[0], kv_len, device=q.device).view(-1, 1)
    j = torch.arange(kv_len, device=q.device).view(1, -1)
    mask = (j <= q_pos) & ((q_pos - j < LOCAL_WINDOW) | (j < SINK_TOKENS))
    group = NUM_Q_HEADS // NUM_KV_HEADS
    k, v = k.float().repeat_interleave(group, 1), v.float().repeat_interleave(group, 1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * HEAD_DIM ** -0.5
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.einsum("hqk,khd->qhd", weights, v)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), torch.bfloat16
    torch.manual_seed(0)

    prompt_lens = [100, 37, 200]
    cache = swajit.PagedKVCache(NUM_KV_HEADS, HEAD_DIM, page_size=16, num_pages=8, dtype=dtype, device=device)
    cache.reset(len(prompt_lens))
    tokens_k = [torch.randn(n, NUM_KV_HEADS, HEAD_DIM, dtype=dtype, device=device) for n in prompt_lens]
    tokens_v = [torch.randn_like(k) for k in tokens_k]
    for b, (k, v) in enumerate(zip(tokens_k, tokens_v)):  # prefill: each sequence's prompt K/V into its pages
        cache.append(k.unsqueeze(0), v.unsqueeze(0), seq_ids=[b])

    worst = 0.0
    for step in range(args.steps):
        new_k = torch.randn(len(prompt_lens), DRAFT_TOKENS, NUM_KV_HEADS, HEAD_DIM, dtype=dtype, device=device)
        new_v = torch.randn_like(new_k)
        cache.append(new_k, new_v)  # the draft tokens' K/V, then one verification pass over all of them
        q = torch.randn(len(prompt_lens), DRAFT_TOKENS, NUM_Q_HEADS, HEAD_DIM, dtype=dtype, device=device)
        out = swajit.paged_decode(q, cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens,
                                  local_window=LOCAL_WINDOW, global_window=SINK_TOKENS)
        for b in range(len(prompt_lens)):
            tokens_k[b] = torch.cat([tokens_k[b], new_k[b]])
            tokens_v[b] = torch.cat([tokens_v[b], new_v[b]])
            expected = reference(q[b], tokens_k[b], tokens_v[b], tokens_k[b].shape[0])
            worst = max(worst, (out[b].float() - expected).abs().max().item())
        print(f"step {step}: seq_lens {cache.seq_lens.tolist()}, pages in use "
              f"{sum(-(-n // cache.page_size) for n in cache.seq_lens.tolist())} of {cache.num_pages}, "
              f"block_table {list(cache.block_table.shape)}, max |swajit - torch| so far {worst:.4f}")
    if worst > 2e-2:
        raise SystemExit(f"FAILED: swajit differs from the torch reference by {worst}")
    print(f"OK on {device}: {args.steps} speculative steps of q_seqlen {DRAFT_TOKENS} match the torch reference")


if __name__ == "__main__":
    main()
