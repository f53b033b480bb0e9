"""Plain torch attention in float64 over explicit positions: the reference every swajit result is checked against."""
import torch


def visible(q_pos, k_pos, local_window, global_window, causal=True):
    """[q, k] bool: query at position p sees j iff (j <= p or not causal) and (p - j < W (W <= 0: any) or j < G)."""
    p, j = q_pos.view(-1, 1), k_pos.view(1, -1)
    in_window = (p - j < local_window) if local_window > 0 else torch.ones_like(p - j, dtype=torch.bool)
    ordered = (j <= p) if causal else torch.ones_like(in_window)
    return ordered & (in_window | (j < global_window))


def attention(q, k, v, q_pos, mask, scale, group, gqa="grouped", sink_logits=None):
    """q [Lq, H, D], k / v [Lk, Hkv, D], mask [Lq, Lk]: softmax(scale q.k^T) v per head in float64; rows that see
    nothing are zeros; learned sinks join each row's denominator."""
    q, k, v = q.double(), k.double(), v.double()
    num_heads = q.shape[1]
    kv_head = torch.arange(num_heads) // group if gqa == "grouped" else torch.arange(num_heads) % k.shape[1]
    k, v = k[:, kv_head], v[:, kv_head]  # [Lk, H, D]
    scores = torch.einsum("qhd,khd->hqk", q, k) * scale
    scores = scores.masked_fill(~mask.unsqueeze(0), float("-inf"))
    row_max = scores.amax(-1, keepdim=True)
    if sink_logits is not None:
        row_max = torch.maximum(row_max, sink_logits.double().view(-1, 1, 1))
    row_max = torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)
    weights = torch.exp(scores - row_max)
    denominator = weights.sum(-1, keepdim=True)
    if sink_logits is not None:
        denominator = denominator + torch.exp(sink_logits.double().view(-1, 1, 1) - row_max)
    out = torch.einsum("hqk,khd->qhd", weights / denominator.clamp_min(1e-300), v)
    return out


def gather_pages(cache, pages, length, kv_layout="nhd"):
    """A sequence's first `length` tokens [length, Hkv, D] from a paged cache and its block_table row."""
    rows = cache[pages.long()]
    if kv_layout == "hnd":
        rows = rows.transpose(1, 2)
    return rows.reshape(-1, *rows.shape[2:])[:length]


def paged_attention(q, k_cache, v_cache, block_table, seq_lens, q_lens, local_window=0, global_window=0,
                    causal=True, scale=None, kv_layout="nhd", gqa="grouped", sink_logits=None):
    """Per sequence b: queries q[b] [q_lens[b], H, D] at the last q_lens[b] positions of its seq_lens[b] tokens."""
    outs = []
    for b, (qb, kv_len, q_len) in enumerate(zip(q, seq_lens.tolist(), q_lens)):
        if kv_len == 0:  # an empty sequence's queries are zeros
            outs.append(torch.zeros(qb[:q_len].shape, dtype=torch.float64))
            continue
        k = gather_pages(k_cache, block_table[b], kv_len, kv_layout)
        v = gather_pages(v_cache, block_table[b], kv_len, kv_layout)
        group = qb.shape[1] // k.shape[1]
        q_pos = torch.arange(kv_len - q_len, kv_len)
        mask = visible(q_pos, torch.arange(kv_len), local_window, global_window, causal)
        s = scale if scale is not None else qb.shape[-1] ** -0.5
        outs.append(attention(qb[:q_len], k, v, q_pos, mask, s, group, gqa, sink_logits))
    return outs
