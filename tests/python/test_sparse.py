"""swajit.sparse_decode (top-k indexed attention over a paged cache) against a float64 torch reference: gather the
selected positions and the local window, softmax with bias and sink, weight V."""
import inspect

import pytest
import torch

import swajit
from conftest import requires_cpu_backend
from reference import gather_pages

TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


def sparse_reference(q, k_cache, v_cache, block_table, seq_lens, indices, head_dim_v, local_window=0, scale=None,
                     kv_layout="nhd", gqa="grouped", sink_logits=None, score_bias=None):
    """[batch, q_seqlen, H, head_dim_v] float64. Row (b, s) at p = seq_lens[b] - q_seqlen + s attends to each listed
    j with 0 <= j <= p outside the window (with its bias), then to the window's j in (p - local_window, p] (bias 0);
    a row that sees nothing is zeros; the sink joins the denominator."""
    batch, q_seqlen, num_heads, head_dim = q.shape
    out = torch.zeros(batch, q_seqlen, num_heads, head_dim_v, dtype=torch.float64)
    scale = head_dim ** -0.5 if scale is None else scale
    for b, length in enumerate(seq_lens.tolist()):
        k = gather_pages(k_cache, block_table[b], length, kv_layout).double()  # [length, Hkv, D]
        v = gather_pages(k_cache if v_cache is None else v_cache, block_table[b], length, kv_layout).double()
        num_kv_heads = k.shape[1]
        kv_head = (torch.arange(num_heads) // (num_heads // num_kv_heads) if gqa == "grouped"
                   else torch.arange(num_heads) % num_kv_heads)
        for s in range(q_seqlen):
            p = length - q_seqlen + s
            seen, bias = [], []
            for slot, j in enumerate(indices[b, s].tolist()):
                in_window = local_window > 0 and p - j < local_window
                if 0 <= j <= p and not in_window:
                    seen.append(j)
                    bias.append(0.0 if score_bias is None else float(score_bias[b, s, slot]))
            window_start = max(0, p - local_window + 1) if local_window > 0 else p + 1
            seen += list(range(window_start, p + 1))
            bias += [0.0] * (p + 1 - window_start)
            if not seen:
                continue
            rows = torch.tensor(seen)
            keys, values = k[rows][:, kv_head], v[rows][:, kv_head, :head_dim_v]  # [n, H, D]
            scores = torch.einsum("hd,nhd->hn", q[b, s].double(), keys) * scale + torch.tensor(bias).double()
            row_max = scores.amax(-1, keepdim=True)
            weights = torch.exp(scores - row_max)
            denominator = weights.sum(-1, keepdim=True)
            if sink_logits is not None:
                denominator = denominator + torch.exp(sink_logits.double().view(-1, 1) - row_max)
            out[b, s] = torch.einsum("hn,nhd->hd", weights / denominator, values)
    return out


def paged_pool(kv_lens, num_kv_heads, head_dim, page_size, dtype, kv_layout, separate_v):
    pages_per_seq = max(-(-n // page_size) for n in kv_lens) + 1
    num_pages = len(kv_lens) * pages_per_seq
    shape = ((num_pages, page_size, num_kv_heads, head_dim) if kv_layout == "nhd"
             else (num_pages, num_kv_heads, page_size, head_dim))
    k_cache = torch.randn(shape, dtype=dtype)
    v_cache = torch.randn(shape, dtype=dtype) if separate_v else None
    block_table = torch.randperm(num_pages).view(len(kv_lens), pages_per_seq).to(torch.int32)
    return k_cache, v_cache, block_table, torch.tensor(kv_lens, dtype=torch.int32)


def random_indices(kv_lens, q_seqlen, topk):
    """Valid selections: positions anywhere in each sequence (some past a query's own p, which the kernel masks), a
    duplicate and -1 padding."""
    indices = torch.full((len(kv_lens), q_seqlen, topk), -1, dtype=torch.int32)
    for b, length in enumerate(kv_lens):
        for s in range(q_seqlen):
            count = min(length, topk - 2)
            if count > 0:
                indices[b, s, :count] = torch.randperm(length)[:count].to(torch.int32)
                indices[b, s, count] = indices[b, s, 0]  # listed twice: counts twice, as written
    return indices


SPARSE_CASES = [
    # q_seqlen, heads, kv_heads, head_dim, head_dim_v, page, layout, gqa, local, separate_v, bias, sinks, dtype, lens
    (2, 8, 2, 64, 64, 16, "nhd", "grouped", 0, True, True, True, torch.bfloat16, [70, 9]),
    (1, 4, 1, 128, 64, 5, "hnd", "grouped", 6, False, False, True, torch.float16, [41, 0, 3]),
    (3, 6, 2, 64, 64, 8, "nhd", "interleaved", 4, True, True, False, torch.bfloat16, [30]),
]


@pytest.mark.parametrize("case", SPARSE_CASES, ids=["separate_kv", "shared_kv_window", "interleaved_window"])
def test_sparse_decode_matches_reference(case, device):
    q_seqlen, heads, kv_heads, head_dim, head_dim_v, page, layout, gqa, local, separate_v, bias, sinks, dtype, lens = case
    topk = 16
    k_cache, v_cache, block_table, seq_lens = paged_pool(lens, kv_heads, head_dim, page, dtype, layout, separate_v)
    q = torch.randn(len(lens), q_seqlen, heads, head_dim, dtype=dtype)
    indices = random_indices(lens, q_seqlen, topk)
    score_bias = torch.randn(len(lens), q_seqlen, topk) if bias else None
    if score_bias is not None:
        score_bias[:, :, 1] = float("-inf")  # a masked slot (every row keeps others)
    sink_logits = torch.randn(heads) if sinks else None
    scale = 0.8 / head_dim ** 0.5
    on = lambda t: None if t is None else t.to(device)  # noqa: E731  (the reference reads the CPU originals)
    out = swajit.sparse_decode(on(q), on(k_cache), on(v_cache), on(block_table), on(seq_lens), on(indices),
                               head_dim_v=head_dim_v, local_window=local, softmax_scale=scale, kv_layout=layout,
                               gqa=gqa, sink_logits=on(sink_logits), score_bias=on(score_bias), check_device_args=True)
    assert out.shape == (len(lens), q_seqlen, heads, head_dim_v) and out.device == q.to(device).device
    expected = sparse_reference(q, k_cache, v_cache, block_table, seq_lens, indices, head_dim_v, local, scale, layout,
                                gqa, sink_logits, score_bias)
    torch.testing.assert_close(out.cpu().double(), expected, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])
    assert out.abs().sum() > 0  # not the zeros of an unwritten buffer


@requires_cpu_backend
def test_sparse_decode_writes_given_out_and_reports_bad_indices():
    lens = [20, 12]
    k_cache, v_cache, block_table, seq_lens = paged_pool(lens, 2, 64, 16, torch.bfloat16, "nhd", True)
    q = torch.randn(2, 1, 8, 64, dtype=torch.bfloat16)[:, :, ::2]  # every other head: a strided view
    indices = random_indices(lens, 1, 8)
    buffer = torch.zeros(3, 1, 4, 64, dtype=torch.bfloat16)
    out = swajit.sparse_decode(q, k_cache, v_cache, block_table, seq_lens, indices, out=buffer[1:])
    assert out.data_ptr() == buffer[1:].data_ptr() and buffer[0].abs().sum() == 0
    expected = sparse_reference(q, k_cache, v_cache, block_table, seq_lens, indices, 64)
    torch.testing.assert_close(out.double(), expected, atol=2e-2, rtol=2e-2)
    indices[1, 0, 0] = 12  # == seq_lens[1]: out of range
    with pytest.raises(swajit.Error, match="indices value is outside") as info:
        swajit.sparse_decode(q, k_cache, v_cache, block_table, seq_lens, indices, out=out)
    assert info.value.code == swajit.ErrorCode.device_argument
    torch.testing.assert_close(out[0].double(), expected[0], atol=2e-2, rtol=2e-2)  # the valid row is still written
    assert out[1].abs().sum() == 0  # the invalid row is zeros
    with pytest.raises(swajit.Error, match="topk\\) = 4096 is outside \\[1, 2048\\]") as info:
        swajit.sparse_decode(q, k_cache, v_cache, block_table, seq_lens, torch.full((2, 1, 4096), -1, dtype=torch.int32))
    assert info.value.code == swajit.ErrorCode.invalid_argument


def test_sparse_decode_keyword_defaults_are_the_cpp_defaults():
    parameters = inspect.signature(swajit.sparse_decode).parameters
    for name, value in swajit._swajit.sparse_decode_defaults().items():
        assert parameters[name].kind == inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == value, name


@requires_cpu_backend
def test_sparse_decode_custom_op_passes_opcheck():
    lens = [10, 7]
    k_cache, _, block_table, seq_lens = paged_pool(lens, 1, 128, 16, torch.bfloat16, "nhd", False)
    q = torch.randn(2, 1, 4, 128, dtype=torch.bfloat16)
    out = torch.empty(2, 1, 4, 64, dtype=torch.bfloat16)
    args = (q, k_cache, None, block_table, seq_lens, random_indices(lens, 1, 8), out, 4, None, "nhd", "grouped", None,
            None, "none", None, None, None, False)
    torch.library.opcheck(torch.ops.swajit.sparse_decode.default, args)
