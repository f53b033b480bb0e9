"""swajit's torch entry points against the float64 reference: decode, prefill, paged prefill, errors, custom ops."""
import inspect

import pytest
import torch

import swajit
import conftest
from conftest import requires_cpu_backend
from reference import paged_attention, visible, attention

TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 4e-3}  # the output's rounding; math is fp32 inside


def random_paged(batch, kv_lens, num_kv_heads, head_dim, page_size, dtype, device, kv_layout="nhd"):
    """A shuffled page pool holding batch sequences of kv_lens tokens, its block_table and seq_lens."""
    pages_per_seq = max(-(-n // page_size) for n in kv_lens) + 1  # one spare, never read
    num_pages = batch * pages_per_seq
    shape = ((num_pages, page_size, num_kv_heads, head_dim) if kv_layout == "nhd"
             else (num_pages, num_kv_heads, page_size, head_dim))
    k_cache = torch.randn(shape, dtype=dtype, device=device)
    v_cache = torch.randn(shape, dtype=dtype, device=device)
    block_table = torch.randperm(num_pages, device=device).view(batch, pages_per_seq).to(torch.int32)
    seq_lens = torch.tensor(kv_lens, dtype=torch.int32, device=device)
    return k_cache, v_cache, block_table, seq_lens


def assert_close(actual, expected, dtype):
    torch.testing.assert_close(actual.double().cpu(), expected.cpu(), atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


# One case per q_seqlen 1..8; together they cover the windows, sinks, GQA groups and mappings, layouts, page sizes,
# head_dims and both dtypes (each distinct combination is one JIT compile, so the matrix is kept this size).
DECODE_CASES = [
    # q_seqlen, heads, kv_heads, head_dim, page, layout, gqa, local, global, sinks, dtype, kv_lens
    (1, 8, 2, 128, 16, "nhd", "grouped", 32, 0, False, torch.bfloat16, [70, 5, 0]),
    (2, 4, 4, 64, 8, "hnd", "grouped", 0, 0, False, torch.float16, [33, 9]),
    (3, 8, 1, 64, 16, "nhd", "interleaved", 16, 4, False, torch.bfloat16, [100, 3]),
    (4, 16, 2, 64, 16, "nhd", "grouped", 24, 2, True, torch.bfloat16, [90, 41, 4]),
    (5, 6, 2, 256, 4, "hnd", "interleaved", 0, 0, True, torch.float16, [17, 60]),
    (6, 4, 2, 64, 32, "nhd", "grouped", 8, 0, False, torch.float16, [64, 6]),
    (7, 16, 1, 64, 16, "nhd", "grouped", 0, 3, False, torch.bfloat16, [50]),
    (8, 8, 4, 128, 16, "hnd", "grouped", 12, 1, True, torch.bfloat16, [77, 8, 20]),
]


@pytest.mark.parametrize("case", DECODE_CASES, ids=[f"q{c[0]}" for c in DECODE_CASES])
def test_paged_decode_matches_reference(case, device):
    q_seqlen, heads, kv_heads, head_dim, page, layout, gqa, local, glob, sinks, dtype, kv_lens = case
    batch = len(kv_lens)
    k_cache, v_cache, block_table, seq_lens = random_paged(batch, kv_lens, kv_heads, head_dim, page, dtype, device,
                                                           layout)
    q = torch.randn(batch, q_seqlen, heads, head_dim, dtype=dtype, device=device)
    sink_logits = torch.randn(heads, device=device) if sinks else None
    out = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, local_window=local, global_window=glob,
                              kv_layout=layout, gqa=gqa, sink_logits=sink_logits, softmax_scale=0.7 / head_dim ** 0.5)
    expected = paged_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), block_table.cpu(), seq_lens.cpu(),
                               [q_seqlen] * batch, local, glob, True, 0.7 / head_dim ** 0.5, layout, gqa,
                               None if sink_logits is None else sink_logits.cpu())
    for b in range(batch):
        assert_close(out[b], expected[b], dtype)  # seq_lens 0 gives zeros


def test_paged_decode_host_seq_lens_plan_the_call(device):
    """Equal lengths told on the host (the direct kernel on a GPU) give the reference's output; a wrong tensor is
    refused with the argument's name."""
    kv_lens = [300, 300, 300]
    k_cache, v_cache, block_table, seq_lens = random_paged(3, kv_lens, 2, 64, 16, torch.bfloat16, device)
    q = torch.randn(3, 1, 8, 64, dtype=torch.bfloat16, device=device)
    told = torch.tensor(kv_lens, dtype=torch.int32)
    out = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, local_window=128, host_seq_lens=told)
    expected = paged_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), block_table.cpu(), seq_lens.cpu(), [1] * 3,
                               128, 0, True, 1 / 64 ** 0.5, "nhd", "grouped", None)
    for b in range(3):
        assert_close(out[b], expected[b], torch.bfloat16)
    with pytest.raises(swajit.Error, match="host_seq_lens") as info:
        swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, local_window=128, host_seq_lens=told[:2])
    assert info.value.code == swajit.ErrorCode.invalid_argument


def test_paged_decode_writes_given_out_through_strided_views(device):
    """q a strided view (HF's [b, h, s, d] transposed), out= a slice of a bigger buffer, 3-D q: no copies anywhere."""
    dtype, kv_lens = torch.bfloat16, [40, 25]
    k_cache, v_cache, block_table, seq_lens = random_paged(2, kv_lens, 2, 64, 16, dtype, device)
    q_bhsd = torch.randn(2, 4, 1, 64, dtype=dtype, device=device)
    q = q_bhsd.transpose(1, 2)  # [2, 1, 4, 64], not contiguous
    buffer = torch.zeros(3, 1, 4, 64, dtype=dtype, device=device)
    out = buffer[1:]
    returned = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, out=out, local_window=16)
    assert returned.data_ptr() == out.data_ptr() and torch.all(buffer[0] == 0)
    expected = paged_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), block_table.cpu(), seq_lens.cpu(), [1, 1], 16)
    for b in range(2):
        assert_close(out[b], expected[b], dtype)
    out3 = swajit.paged_decode(q[:, 0], k_cache, v_cache, block_table, seq_lens, local_window=16)  # 3-D q
    assert out3.shape == (2, 4, 64)
    torch.testing.assert_close(out3, out[:, 0], atol=0, rtol=0)


def test_paged_decode_int8_kv_cache(device):
    kv_lens, heads, kv_heads, d = [45, 12], 4, 2, 64
    k_cache, v_cache, block_table, seq_lens = random_paged(2, kv_lens, kv_heads, d, 16, torch.float16, device)
    k8 = torch.randint(-127, 128, k_cache.shape, dtype=torch.int8, device=device)
    v8 = torch.randint(-127, 128, v_cache.shape, dtype=torch.int8, device=device)
    k_scale = torch.rand(kv_heads, d, device=device) / 64
    v_scale = torch.tensor(1 / 100, device=device)
    q = torch.randn(2, 2, heads, d, dtype=torch.float16, device=device)
    out = swajit.paged_decode(q, k8, v8, block_table, seq_lens, kv_quant="int8", k_scale=k_scale, v_scale=v_scale,
                              local_window=20)
    k_real = (k8.double().cpu() * k_scale.double().cpu())
    v_real = v8.double().cpu() * float(v_scale)
    expected = paged_attention(q.cpu(), k_real, v_real, block_table.cpu(), seq_lens.cpu(), [2, 2], 20)
    for b in range(2):
        assert_close(out[b], expected[b], torch.float16)


def varlen_reference(q, k_rows, v_rows, q_lens, kv_lens, local, glob, causal=True, sinks=None):
    """Prefill reference over per-sequence K/V row lists."""
    out, row = [], 0
    for k, v, q_len, kv_len in zip(k_rows, v_rows, q_lens, kv_lens):
        q_pos = torch.arange(kv_len - q_len, kv_len)
        mask = visible(q_pos, torch.arange(kv_len), local, glob, causal)
        out.append(attention(q[row:row + q_len].cpu(), k.cpu(), v.cpu(), q_pos, mask, q.shape[-1] ** -0.5,
                             q.shape[1] // k.shape[1], "grouped", sinks))
        row += q_len
    return torch.cat(out)


def offsets(lengths, device):
    return torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), dtype=torch.int32, device=device)


def test_prefill_matches_reference(device):
    """Varlen contiguous prefill: three sequences (one a chunk after a cached prefix), window and sinks."""
    dtype, heads, kv_heads, d = torch.bfloat16, 4, 2, 64
    q_lens, kv_lens = [19, 1, 12], [19, 7, 30]
    q = torch.randn(sum(q_lens), heads, d, dtype=dtype, device=device)
    k = torch.randn(sum(kv_lens), kv_heads, d, dtype=dtype, device=device)
    v = torch.randn_like(k)
    out = swajit.prefill(q, k, v, offsets(q_lens, device), offsets(kv_lens, device), local_window=8,
                         global_window=2)
    bounds = offsets(kv_lens, "cpu").tolist()
    k_rows = [k[a:b] for a, b in zip(bounds, bounds[1:])]
    v_rows = [v[a:b] for a, b in zip(bounds, bounds[1:])]
    assert_close(out, varlen_reference(q, k_rows, v_rows, q_lens, kv_lens, 8, 2), dtype)


def test_paged_prefill_matches_reference(device):
    dtype, heads, kv_heads, d = torch.float16, 8, 2, 128
    q_lens, kv_lens = [9, 16], [30, 16]
    k_cache, v_cache, block_table, seq_lens = random_paged(2, kv_lens, kv_heads, d, 8, dtype, device, "hnd")
    sinks = torch.randn(heads, device=device)
    q = torch.randn(sum(q_lens), heads, d, dtype=dtype, device=device)
    out = swajit.paged_prefill(q, k_cache, v_cache, block_table, seq_lens, offsets(q_lens, device),
                               kv_layout="hnd", local_window=10, sink_logits=sinks)
    q_split = [q[:9].cpu(), q[9:].cpu()]  # the reference runs on the CPU
    expected = paged_attention(q_split, k_cache.cpu(), v_cache.cpu(), block_table.cpu(), seq_lens.cpu(), q_lens, 10,
                               kv_layout="hnd", sink_logits=sinks.cpu())
    assert_close(out, torch.cat(expected), dtype)


@requires_cpu_backend
def test_errors_carry_code_and_message():
    kv = torch.zeros(4, 16, 2, 64, dtype=torch.bfloat16)
    block_table, seq_lens = torch.zeros(1, 4, dtype=torch.int32), torch.tensor([10], dtype=torch.int32)
    with pytest.raises(swajit.Error) as info:
        swajit.paged_decode(torch.zeros(1, 3, 64, dtype=torch.bfloat16), kv, kv, block_table, seq_lens)
    assert info.value.code == swajit.ErrorCode.invalid_argument
    assert "num_q_heads = 3 must be a multiple of num_kv_heads = 2" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(swajit.Error, match="q_seqlen.*outside \\[1, 8\\]") as info:
        swajit.paged_decode(torch.zeros(1, 9, 4, 64, dtype=torch.bfloat16), kv, kv, block_table, seq_lens)
    assert info.value.code == swajit.ErrorCode.invalid_argument
    with pytest.raises(swajit.Error, match="kv layout 'xyz' is unknown; accepted: nhd, hnd") as info:
        swajit.paged_decode(torch.zeros(1, 4, 64, dtype=torch.bfloat16), kv, kv, block_table, seq_lens,
                            kv_layout="xyz")
    with pytest.raises(swajit.Error, match="tuning = 'sometimes'") as info:
        swajit.paged_decode(torch.zeros(1, 4, 64, dtype=torch.bfloat16), kv, kv, block_table, seq_lens,
                            tuning="sometimes")
    with pytest.raises(swajit.Error, match="q must have dtype bf16 or fp16") as info:
        swajit.paged_decode(torch.zeros(1, 4, 64), kv, kv, block_table, seq_lens)  # float32 q
    q = torch.zeros(3, 4, 64, dtype=torch.bfloat16)
    cu = torch.tensor([0, 3], dtype=torch.int32)
    with pytest.raises(swajit.Error, match="causal=False") as info:
        swajit.prefill(q, kv[0, :3], kv[0, :3], cu, cu, causal=False)
    assert info.value.code == swajit.ErrorCode.unsupported
    with pytest.raises(swajit.Error, match="cu_seqlens_q must be") as info:
        swajit.prefill(q, kv[0, :3], kv[0, :3], torch.tensor([0, 2], dtype=torch.int32), cu)
    assert info.value.code == swajit.ErrorCode.invalid_argument


@pytest.mark.parametrize("function, defaults", [
    (swajit.paged_decode, swajit._swajit.decode_defaults()),
    (swajit.prefill, {k: v for k, v in swajit._swajit.prefill_defaults().items() if k != "kv_layout"}),
    (swajit.paged_prefill, swajit._swajit.prefill_defaults()),
])
def test_keyword_defaults_are_the_cpp_defaults(function, defaults):
    parameters = inspect.signature(function).parameters
    for name, value in defaults.items():
        assert parameters[name].kind == inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == value, name


def decode_inputs():
    kv_lens = [30, 11]
    k_cache, v_cache, block_table, seq_lens = random_paged(2, kv_lens, 2, 64, 16, torch.bfloat16, "cpu")
    q = torch.randn(2, 2, 4, 64, dtype=torch.bfloat16)
    return q, k_cache, v_cache, block_table, seq_lens


@requires_cpu_backend
def test_custom_op_passes_opcheck():
    q, k_cache, v_cache, block_table, seq_lens = decode_inputs()
    out = torch.empty_like(q)
    args = (q, k_cache, v_cache, block_table, seq_lens, out, 8, 0, None, "nhd", "grouped", None, "none", None, None,
            None, "default", None, False, seq_lens.clone())
    torch.library.opcheck(torch.ops.swajit.paged_decode.default, args)


@requires_cpu_backend
def test_torch_compile_fullgraph_traces_through_the_ops():
    q, k_cache, v_cache, block_table, seq_lens = decode_inputs()

    def attend(q, k_cache, v_cache, block_table, seq_lens):
        out = swajit.paged_decode(q * 2, k_cache, v_cache, block_table, seq_lens, local_window=8)
        return out + 1

    compiled = torch.compile(attend, fullgraph=True)
    torch.testing.assert_close(compiled(q, k_cache, v_cache, block_table, seq_lens),
                               attend(q, k_cache, v_cache, block_table, seq_lens), atol=0, rtol=0)


def test_paged_kv_cache_append_then_decode_speculative(device):
    """PagedKVCache: appends in uneven steps (pages cross, the pool grows), then a q_seqlen 4 decode over it."""
    cache = swajit.PagedKVCache(2, 64, page_size=4, num_pages=2, dtype=torch.bfloat16, device=device)
    cache.reset(2)
    ks, vs = [], []
    for new in [5, 3, 9, 4]:
        k = torch.randn(2, new, 2, 64, dtype=torch.bfloat16, device=device)
        v = torch.randn_like(k)
        cache.append(k, v)
        ks.append(k)
        vs.append(v)
    assert cache.seq_lens.tolist() == [21, 21] and cache.num_pages >= 12
    q = torch.randn(2, 4, 4, 64, dtype=torch.bfloat16, device=device)
    out = swajit.paged_decode(q, cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens, local_window=6)
    k_all, v_all = torch.cat(ks, 1), torch.cat(vs, 1)
    q_pos = torch.arange(17, 21)
    mask = visible(q_pos, torch.arange(21), 6, 0)
    for b in range(2):
        assert_close(out[b], attention(q[b].cpu(), k_all[b].cpu(), v_all[b].cpu(), q_pos, mask, 64 ** -0.5, 2), torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_capture_and_replay():
    """With out= and workspace= given, a captured decode and prefill replay on new inputs with exact results."""
    dtype, device, kv_lens = torch.bfloat16, torch.device("cuda"), [300, 1000, 17]
    k_cache, v_cache, block_table, seq_lens = random_paged(3, kv_lens, 2, 128, 16, dtype, device)
    q = torch.randn(3, 4, 8, 128, dtype=dtype, device=device)
    out = torch.empty_like(q)
    options = dict(local_window=256, global_window=4)
    workspace = torch.empty(max(1, swajit.paged_decode_workspace_bytes(q, k_cache, v_cache, block_table, seq_lens,
                                                                       **options)), dtype=torch.uint8, device=device)
    pq = torch.randn(40, 8, 128, dtype=dtype, device=device)
    pk, pv = torch.randn(60, 2, 128, dtype=dtype, device=device), torch.randn(60, 2, 128, dtype=dtype, device=device)
    cu_q, cu_k = offsets([25, 15], device), offsets([30, 30], device)
    pout = torch.empty_like(pq)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # warm up (compiles, allocates the library's status record) off the graph
        swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, out=out, workspace=workspace, **options)
        swajit.prefill(pq, pk, pv, cu_q, cu_k, out=pout, local_window=16, max_q_len=25)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, out=out, workspace=workspace, **options)
        swajit.prefill(pq, pk, pv, cu_q, cu_k, out=pout, local_window=16, max_q_len=25)
    q.copy_(torch.randn_like(q))
    pq.copy_(torch.randn_like(pq))
    graph.replay()
    torch.cuda.synchronize()
    expected = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, **options)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    torch.testing.assert_close(pout, swajit.prefill(pq, pk, pv, cu_q, cu_k, local_window=16, max_q_len=25),
                               atol=0, rtol=0)
    reference = paged_attention(q.cpu(), k_cache.cpu(), v_cache.cpu(), block_table.cpu(), seq_lens.cpu(), [4] * 3,
                                256, 4)
    for b in range(3):
        assert_close(out[b], reference[b], dtype)


@pytest.mark.parametrize("device", conftest.DEVICES)
def test_example_paged_speculative_decode_runs(device):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "runtime", "python", "examples", "paged_speculative_decode.py")
    result = subprocess.run([sys.executable, script, "--device", device, "--steps", "2"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK on {device}: 2 speculative steps of q_seqlen 4 match" in result.stdout


def test_calls_from_many_threads_at_once(device):
    """The extension releases the GIL: threads run decodes of their own shapes concurrently, each result exact."""
    import threading
    inputs = [decode_inputs() for _ in range(4)]
    inputs = [tuple(t.to(device) for t in group) for group in inputs]
    expected = [swajit.paged_decode(*group, local_window=8) for group in inputs]
    results, errors = {}, []

    def work(index):
        try:
            for _ in range(5):
                results[index] = swajit.paged_decode(*inputs[index], local_window=8)
        except Exception as error:  # noqa: BLE001  reported below with its thread
            errors.append((index, error))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    if device.type == "cuda":
        torch.cuda.synchronize()
    assert sorted(results) == list(range(len(inputs)))
    for index, out in enumerate(expected):
        torch.testing.assert_close(results[index], out, atol=0, rtol=0)


@requires_cpu_backend
def test_extension_takes_dlpack_capsules():
    """The route CUDA tensors take (capsules exported with stream=-1), here on CPU tensors: same memory, same result."""
    q, k_cache, v_cache, block_table, seq_lens = decode_inputs()
    expected = swajit.paged_decode(q, k_cache, v_cache, block_table, seq_lens, local_window=8)
    out = torch.zeros_like(q)
    capsule = lambda t: t.__dlpack__(stream=-1)  # noqa: E731
    swajit._swajit.paged_decode(capsule(q), capsule(k_cache), capsule(v_cache), capsule(block_table),
                                capsule(seq_lens), capsule(out), 0, local_window=8)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


def test_package_ships_tuning_data():
    """The shipped tuning data travels in the package, where the runtime looks (beside the extension: swajit/shipped)."""
    import json
    import pathlib
    shipped = pathlib.Path(swajit.__file__).parent / "shipped"
    files = sorted(shipped.glob("*.json"))
    assert shipped / "nvidia-h100-80gb-hbm3-sm-90-x132.json" in files
    for f in files:
        doc = json.loads(f.read_text())
        assert doc["format"] == "swajit-tuning-db" and doc["winners"], f
