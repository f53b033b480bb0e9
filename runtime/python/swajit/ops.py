"""swajit's attention kernels on torch tensors.

Each entry point is a torch.library custom op (``torch.ops.swajit.*``) that writes into ``out`` and has a fake (meta)
kernel, so torch.compile traces through it; the functions here allocate ``out`` when it is not given and return it.
Tensors reach the C++ library through DLPack over their own memory (no copies) and CUDA work is enqueued on torch's
current stream of the tensors' device, with no host synchronization: with ``out`` (and, for decode, ``workspace``)
given, a call allocates nothing and is safe to capture in a CUDA graph. CPU tensors run the CPU backend, synchronously.

Options are keyword arguments with the C++ defaults (swajit/swajit.hpp: DecodeOptions, PrefillOptions and
SparseDecodeOptions). Failures
raise swajit.Error, whose ``.code`` is a swajit.ErrorCode and whose message names the argument and its allowed range.
"""
import contextlib
from typing import List, Optional

import torch

from . import _swajit
from ._errors import invalid_argument, unsupported

# Paged decode takes at most this many query tokens per sequence (speculative decode's limit, C++
# SpecLimits::kMaxQSeqlen); the CPU prefill route feeds each sequence's queries through it in chunks of this size.
MAX_DECODE_Q_SEQLEN = 8


def _dlpack(t: Optional[torch.Tensor]):
    """A tensor as the extension takes it. CPU tensors go as they are (nanobind calls __dlpack__); CUDA tensors go as
    capsules exported with stream=-1, which asks torch for no cross-stream synchronization: the kernels run on the
    stream passed with them, and the default of older torch versions (make the legacy default stream wait for the
    current one) would cost an event per tensor and break CUDA graph capture. __dlpack__ refuses tensors that
    require grad; the kernels never take part in autograd."""
    if t is None:
        return None
    if t.requires_grad:
        t = t.detach()
    return t.__dlpack__(stream=-1) if t.is_cuda else t


def _device_of(q: torch.Tensor):
    """Makes q's GPU the current one while its tensors are exported (torch exports only the current device's)."""
    if q.is_cuda and q.device.index != torch.cuda.current_device():
        return torch.cuda.device(q.device)
    return contextlib.nullcontext()


def _tracing() -> bool:
    """Under torch.compile / export the calls go through the custom ops (their fake kernels trace); run eagerly they
    call the same bodies directly, skipping the dispatcher's Python-level cost (about 100 us a call measured here)."""
    return torch.compiler.is_compiling()


def _stream(t: torch.Tensor) -> int:
    """torch's current CUDA stream of t's device as a CUstream handle (0 for CPU tensors)."""
    return torch.cuda.current_stream(t.device).cuda_stream if t.is_cuda else 0


def _decode_into(q, k_cache, v_cache, block_table, seq_lens, out, local_window, global_window, softmax_scale,
                 kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, config, tuning, workspace,
                 check_device_args, host_seq_lens=None):
    x = _dlpack
    with _device_of(q):
        _swajit.paged_decode(x(q), x(k_cache), x(v_cache), x(block_table), x(seq_lens), x(out), _stream(q),
                             local_window=local_window, global_window=global_window, softmax_scale=softmax_scale,
                             kv_layout=kv_layout, gqa=gqa, sink_logits=x(sink_logits), kv_quant=kv_quant,
                             k_scale=x(k_scale), v_scale=x(v_scale), config=config, tuning=tuning,
                             workspace=x(workspace), check_device_args=check_device_args,
                             host_seq_lens=x(host_seq_lens))


@torch.library.custom_op("swajit::paged_decode", mutates_args=("out",))
def _paged_decode_op(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                     seq_lens: torch.Tensor, out: torch.Tensor, local_window: int, global_window: int,
                     softmax_scale: Optional[float], kv_layout: str, gqa: str, sink_logits: Optional[torch.Tensor],
                     kv_quant: str, k_scale: Optional[torch.Tensor], v_scale: Optional[torch.Tensor],
                     config: Optional[str], tuning: str, workspace: Optional[torch.Tensor],
                     check_device_args: bool, host_seq_lens: Optional[torch.Tensor]) -> None:
    _decode_into(q, k_cache, v_cache, block_table, seq_lens, out, local_window, global_window, softmax_scale,
                 kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, config, tuning, workspace,
                 check_device_args, host_seq_lens)


@_paged_decode_op.register_fake
def _(q, k_cache, v_cache, block_table, seq_lens, out, *options) -> None:
    return None  # writes into out only; its shape is the caller's (checked by the real kernel)


def paged_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                 seq_lens: torch.Tensor, *, out: Optional[torch.Tensor] = None, local_window: int = 0,
                 global_window: int = 0, softmax_scale: Optional[float] = None, kv_layout: str = "nhd",
                 gqa: str = "grouped", sink_logits: Optional[torch.Tensor] = None, kv_quant: str = "none",
                 k_scale: Optional[torch.Tensor] = None, v_scale: Optional[torch.Tensor] = None,
                 config: Optional[str] = None, tuning: str = "default", workspace: Optional[torch.Tensor] = None,
                 check_device_args: bool = False, host_seq_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Paged decode attention with a sliding window and sinks; returns ``out``.

    q, out: [batch, q_seqlen, num_q_heads, head_dim] (or [batch, num_q_heads, head_dim]), bf16 or fp16, any strides
        with a contiguous last dim; q_seqlen 1..8 (speculative decode).
    k_cache, v_cache: NHD [num_pages, page_size, num_kv_heads, head_dim] or HND [num_pages, num_kv_heads, page_size,
        head_dim] (``kv_layout``); q's dtype, or int8 / uint8 holding fp8 e4m3 with ``kv_quant`` "int8" / "fp8" and
        float32 ``k_scale`` / ``v_scale`` ([num_kv_heads, head_dim] or one value).
    block_table: int32 [batch, max_pages_per_seq]; seq_lens: int32 [batch], KV length including the new tokens.
    Query s of sequence b sits at p = seq_lens[b] - q_seqlen + s and sees j iff j <= p and (p - j < local_window or
    j < global_window); local_window <= 0 is unlimited. softmax_scale: default 1 / sqrt(head_dim). gqa: "grouped"
    (q head h reads kv head h // group) or "interleaved" (h % num_kv_heads). sink_logits: float32 [num_q_heads],
    learned sinks (gpt-oss). config: a forced GPU config key (e.g. "bn64_wn4_st3_sp1"); tuning: "default",
    "heuristic", "database" or "tune_on_miss". workspace: uint8 CUDA tensor of at least
    paged_decode_workspace_bytes(...) bytes for the split-KV scratch (else the library keeps one per device; pass it
    for CUDA graph capture of a first call). check_device_args: synchronize and raise if the kernel found invalid
    seq_lens / block_table values. host_seq_lens: int32 CPU tensor, the values of seq_lens as the host knows them
    (as FlashInfer's plan() takes them); they only plan the grid (equal lengths take the direct kernel, no work
    schedule), the kernel reads seq_lens, so stale values (a replayed graph) cost speed, never correctness.
    """
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    call = _paged_decode_op if _tracing() else _decode_into
    call(q, k_cache, v_cache, block_table, seq_lens, out, local_window, global_window, softmax_scale,
                     kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, config, tuning, workspace,
                     check_device_args, host_seq_lens)
    return out


def paged_decode_workspace_bytes(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                                 block_table: torch.Tensor, seq_lens: torch.Tensor, *,
                                 out: Optional[torch.Tensor] = None, local_window: int = 0, global_window: int = 0,
                                 softmax_scale: Optional[float] = None, kv_layout: str = "nhd", gqa: str = "grouped",
                                 sink_logits: Optional[torch.Tensor] = None, kv_quant: str = "none",
                                 k_scale: Optional[torch.Tensor] = None, v_scale: Optional[torch.Tensor] = None,
                                 config: Optional[str] = None, tuning: str = "default") -> int:
    """Bytes of split-KV workspace paged_decode needs for these arguments (0 when it does not split)."""
    x = _dlpack
    with _device_of(q):
        return _swajit.paged_decode_workspace_bytes(
            x(q), x(k_cache), x(v_cache), x(block_table), x(seq_lens), x(q if out is None else out),  # out: its shape
            local_window=local_window, global_window=global_window, softmax_scale=softmax_scale, kv_layout=kv_layout,
            gqa=gqa, sink_logits=x(sink_logits), kv_quant=kv_quant, k_scale=x(k_scale), v_scale=x(v_scale),
            config=config, tuning=tuning)


def _sparse_decode_into(q, k_cache, v_cache, block_table, seq_lens, indices, out, local_window, softmax_scale,
                        kv_layout, gqa, sink_logits, score_bias, kv_quant, k_scale, v_scale, config,
                        check_device_args):
    x = _dlpack
    with _device_of(q):
        _swajit.sparse_decode(x(q), x(k_cache), x(v_cache), x(block_table), x(seq_lens), x(indices), x(out),
                              _stream(q), local_window=local_window, softmax_scale=softmax_scale,
                              kv_layout=kv_layout, gqa=gqa, sink_logits=x(sink_logits), score_bias=x(score_bias),
                              kv_quant=kv_quant, k_scale=x(k_scale), v_scale=x(v_scale), config=config,
                              check_device_args=check_device_args)


@torch.library.custom_op("swajit::sparse_decode", mutates_args=("out",))
def _sparse_decode_op(q: torch.Tensor, k_cache: torch.Tensor, v_cache: Optional[torch.Tensor],
                      block_table: torch.Tensor, seq_lens: torch.Tensor, indices: torch.Tensor, out: torch.Tensor,
                      local_window: int, softmax_scale: Optional[float], kv_layout: str, gqa: str,
                      sink_logits: Optional[torch.Tensor], score_bias: Optional[torch.Tensor], kv_quant: str,
                      k_scale: Optional[torch.Tensor], v_scale: Optional[torch.Tensor], config: Optional[str],
                      check_device_args: bool) -> None:
    _sparse_decode_into(q, k_cache, v_cache, block_table, seq_lens, indices, out, local_window, softmax_scale,
                        kv_layout, gqa, sink_logits, score_bias, kv_quant, k_scale, v_scale, config,
                        check_device_args)


@_sparse_decode_op.register_fake
def _(q, k_cache, v_cache, block_table, seq_lens, indices, out, *options) -> None:
    return None  # writes into out only


def sparse_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: Optional[torch.Tensor], block_table: torch.Tensor,
                  seq_lens: torch.Tensor, indices: torch.Tensor, *, out: Optional[torch.Tensor] = None,
                  head_dim_v: Optional[int] = None, local_window: int = 0, softmax_scale: Optional[float] = None,
                  kv_layout: str = "nhd", gqa: str = "grouped", sink_logits: Optional[torch.Tensor] = None,
                  score_bias: Optional[torch.Tensor] = None, kv_quant: str = "none",
                  k_scale: Optional[torch.Tensor] = None, v_scale: Optional[torch.Tensor] = None,
                  config: Optional[str] = None, check_device_args: bool = False) -> torch.Tensor:
    """Top-k sparse decode (DeepSeek-V3.2/V4-style indexed attention) over a paged cache; returns ``out``.

    q: [batch, q_seqlen, num_q_heads, head_dim] (or [batch, num_q_heads, head_dim]), bf16 or fp16, q_seqlen 1..8,
        GQA groups 1..128.
    k_cache, v_cache, block_table, seq_lens, kv_layout, kv_quant / k_scale / v_scale: as in paged_decode; or
        v_cache=None: one shared cache whose rows are K and whose first head_dim_v columns are V (MLA: head_dim 576,
        head_dim_v 512).
    indices: int32 [batch, q_seqlen, topk], topk 1..2048: logical positions j of the sequence, -1 an unused slot.
        Query s of sequence b sits at p = seq_lens[b] - q_seqlen + s; a selected j > p is masked. An index >=
        seq_lens[b] or < -1 is invalid metadata: that query row is zeros and the error is reported as for decode's
        block_table (check_device_args / check_device_errors; on the CPU raised after the call).
    out: [batch, q_seqlen, num_q_heads, head_dim_v]; allocated when not given, head_dim_v defaulting to head_dim.
    local_window > 0: the query also sees the last local_window positions j <= p (a selected j inside the window
        counts once). score_bias: float32 [batch, q_seqlen, topk], added to each slot's scaled score (-inf: unused).
    softmax over scale * q.k (+ bias), sink_logits (float32 [num_q_heads]) joining the denominator; a row that sees
    nothing is zeros. softmax_scale: default 1 / sqrt(head_dim). gqa: as in paged_decode. config: a forced GPU config
    key (e.g. "bn64_st2_sp1"); else a heuristic from the device's limits.
    """
    if out is None:
        shape = (*q.shape[:-1], q.shape[-1] if head_dim_v is None else head_dim_v)
        out = torch.empty(shape, dtype=q.dtype, device=q.device)
    elif head_dim_v is not None and out.shape[-1] != head_dim_v:
        raise invalid_argument(f"head_dim_v = {head_dim_v} differs from out's last dimension {out.shape[-1]}")
    call = _sparse_decode_op if _tracing() else _sparse_decode_into
    call(q, k_cache, v_cache, block_table, seq_lens, indices, out, local_window, softmax_scale, kv_layout, gqa,
         sink_logits, score_bias, kv_quant, k_scale, v_scale, config, check_device_args)
    return out


def _host_ints(t: torch.Tensor, name: str) -> List[int]:
    if t.dim() != 1 or t.dtype != torch.int32:
        raise invalid_argument(f"{name} must be a 1-D int32 tensor, got {t.dim()}-D {t.dtype}")
    return t.tolist()


def _cpu_paged_prefill(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, local_window, global_window,
                       causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale):
    """Prefill on the CPU backend, exactly: each sequence's queries go through paged decode in chunks of at most
    MAX_DECODE_Q_SEQLEN tokens, each chunk with the KV length up to its own last query, so every query sees the cache
    up to its own position: the same causal windowed attention the CUDA prefill computes."""
    if not causal:
        raise unsupported("prefill with causal=False runs on CUDA only (the CPU route goes through causal paged "
                          "decode)")
    if q.dim() != 3 or out.shape != q.shape:
        raise invalid_argument(f"q and out must be 3-D [total_q, num_q_heads, head_dim] of one shape, got "
                               f"{list(q.shape)} and {list(out.shape)}")
    starts, kv_lens = _host_ints(cu_seqlens_q, "cu_seqlens_q"), _host_ints(seq_lens, "seq_lens")
    if len(starts) != len(kv_lens) + 1 or starts[0] != 0 or starts[-1] != q.shape[0]:
        raise invalid_argument(f"cu_seqlens_q must be [batch + 1] = [{len(kv_lens) + 1}] offsets from 0 to total_q "
                               f"= {q.shape[0]}, got {starts}")
    for b, kv_len in enumerate(kv_lens):
        q_len = starts[b + 1] - starts[b]
        if q_len < 0 or kv_len < q_len:
            raise invalid_argument(f"sequence {b}: {q_len} queries (from cu_seqlens_q) need 0 <= q_len <= seq_lens "
                                   f"= {kv_len}")
        for first in range(0, q_len, MAX_DECODE_Q_SEQLEN):
            count = min(MAX_DECODE_Q_SEQLEN, q_len - first)
            rows = slice(starts[b] + first, starts[b] + first + count)
            chunk_kv_len = torch.tensor([kv_len - q_len + first + count], dtype=torch.int32)
            _decode_into(q[rows].unsqueeze(0), k_cache, v_cache, block_table[b:b + 1], chunk_kv_len,
                         out[rows].unsqueeze(0), local_window, global_window, softmax_scale, kv_layout, gqa,
                         sink_logits, kv_quant, k_scale, v_scale, None, "default", None, False)


def _cpu_prefill(q, k, v, cu_seqlens_q, cu_seqlens_k, out, local_window, global_window, causal, softmax_scale, gqa,
                 sink_logits, kv_quant, k_scale, v_scale):
    """Contiguous K/V on the CPU: [total_kv, num_kv_heads, head_dim] is already a paged NHD cache of page size 1,
    whose block table lists each sequence's rows; then as _cpu_paged_prefill."""
    if k.dim() != 3 or v.dim() != 3:
        raise invalid_argument(f"k and v must be 3-D [total_kv, num_kv_heads, head_dim], got {list(k.shape)} and "
                               f"{list(v.shape)}")
    kv_starts = _host_ints(cu_seqlens_k, "cu_seqlens_k")
    kv_lens = [end - start for start, end in zip(kv_starts, kv_starts[1:])]
    if not kv_starts or kv_starts[0] != 0 or min(kv_lens, default=0) < 0 or kv_starts[-1] > k.shape[0]:
        raise invalid_argument(f"cu_seqlens_k must be non-decreasing offsets from 0 to at most total_kv = "
                               f"{k.shape[0]}, got {kv_starts}")
    block_table = torch.zeros(len(kv_lens), max(max(kv_lens, default=0), 1), dtype=torch.int32)
    for b, (start, length) in enumerate(zip(kv_starts, kv_lens)):
        block_table[b, :length] = torch.arange(start, start + length, dtype=torch.int32)
    _cpu_paged_prefill(q, k.unsqueeze(1), v.unsqueeze(1), block_table, torch.tensor(kv_lens, dtype=torch.int32),
                       cu_seqlens_q, out, local_window, global_window, causal, softmax_scale, "nhd", gqa,
                       sink_logits, kv_quant, k_scale, v_scale)


def _prefill_into(q, k, v, cu_seqlens_q, cu_seqlens_k, out, local_window, global_window, causal, softmax_scale, gqa,
                  sink_logits, kv_quant, k_scale, v_scale, max_q_len, config, tuning, check_device_args):
    if q.device.type == "cpu":
        _cpu_prefill(q, k, v, cu_seqlens_q, cu_seqlens_k, out, local_window, global_window, causal, softmax_scale,
                     gqa, sink_logits, kv_quant, k_scale, v_scale)
        return
    x = _dlpack
    with _device_of(q):
        _swajit.prefill(x(q), x(k), x(v), x(cu_seqlens_q), x(cu_seqlens_k), x(out), _stream(q),
                        local_window=local_window, global_window=global_window, causal=causal,
                        softmax_scale=softmax_scale, gqa=gqa, sink_logits=x(sink_logits), kv_quant=kv_quant,
                        k_scale=x(k_scale), v_scale=x(v_scale), max_q_len=max_q_len, config=config, tuning=tuning,
                        check_device_args=check_device_args)


@torch.library.custom_op("swajit::prefill", mutates_args=("out",))
def _prefill_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
                cu_seqlens_k: torch.Tensor, out: torch.Tensor, local_window: int, global_window: int, causal: bool,
                softmax_scale: Optional[float], gqa: str, sink_logits: Optional[torch.Tensor], kv_quant: str,
                k_scale: Optional[torch.Tensor], v_scale: Optional[torch.Tensor], max_q_len: int,
                config: Optional[str], tuning: str, check_device_args: bool) -> None:
    _prefill_into(q, k, v, cu_seqlens_q, cu_seqlens_k, out, local_window, global_window, causal, softmax_scale, gqa,
                  sink_logits, kv_quant, k_scale, v_scale, max_q_len, config, tuning, check_device_args)


@_prefill_op.register_fake
def _(q, k, v, cu_seqlens_q, cu_seqlens_k, out, *options) -> None:
    return None


def _paged_prefill_into(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, local_window, global_window,
                        causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, max_q_len,
                        config, tuning, check_device_args):
    if q.device.type == "cpu":
        _cpu_paged_prefill(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, local_window,
                           global_window, causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale,
                           v_scale)
        return
    x = _dlpack
    with _device_of(q):
        _swajit.paged_prefill(x(q), x(k_cache), x(v_cache), x(block_table), x(seq_lens), x(cu_seqlens_q), x(out),
                              _stream(q), local_window=local_window, global_window=global_window, causal=causal,
                              softmax_scale=softmax_scale, kv_layout=kv_layout, gqa=gqa, sink_logits=x(sink_logits),
                              kv_quant=kv_quant, k_scale=x(k_scale), v_scale=x(v_scale), max_q_len=max_q_len,
                              config=config, tuning=tuning, check_device_args=check_device_args)


@torch.library.custom_op("swajit::paged_prefill", mutates_args=("out",))
def _paged_prefill_op(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                      seq_lens: torch.Tensor, cu_seqlens_q: torch.Tensor, out: torch.Tensor, local_window: int,
                      global_window: int, causal: bool, softmax_scale: Optional[float], kv_layout: str, gqa: str,
                      sink_logits: Optional[torch.Tensor], kv_quant: str, k_scale: Optional[torch.Tensor],
                      v_scale: Optional[torch.Tensor], max_q_len: int, config: Optional[str], tuning: str,
                      check_device_args: bool) -> None:
    _paged_prefill_into(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, local_window, global_window,
                        causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, max_q_len,
                        config, tuning, check_device_args)


@_paged_prefill_op.register_fake
def _(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, *options) -> None:
    return None


_PREFILL_DOC = """
    q, out: [total_q, num_q_heads, head_dim] packed, bf16 or fp16; sequence b's queries are rows
        [cu_seqlens_q[b], cu_seqlens_q[b + 1]) (int32 [batch + 1], non-decreasing from 0).
    Query i of sequence b sits at p = kv_len_b - q_len_b + i (a chunk after a cached prefix works) and sees j iff
    (j <= p, or causal=False) and (p - j < local_window or j < global_window). gqa, softmax_scale, sink_logits,
    kv_quant / k_scale / v_scale, tuning and check_device_args as in paged_decode; max_q_len: the longest query run
    when known (sizes the grid; 0 reads it from host-visible cu_seqlens_q, else uses total_q); config: a forced
    prefill config key (e.g. "bm128_bn64_st2_mt1").
    CPU tensors: the CPU backend has paged decode only, so each sequence's queries run through it in chunks of at
    most 8 tokens, each chunk seeing the cache up to its own positions: exactly the same causal windowed attention
    (causal=False raises swajit.Error(unsupported) there; config, max_q_len and tuning apply to CUDA only).
"""


def prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
            cu_seqlens_k: torch.Tensor, *, out: Optional[torch.Tensor] = None, local_window: int = 0,
            global_window: int = 0, causal: bool = True, softmax_scale: Optional[float] = None,
            gqa: str = "grouped", sink_logits: Optional[torch.Tensor] = None, kv_quant: str = "none",
            k_scale: Optional[torch.Tensor] = None, v_scale: Optional[torch.Tensor] = None, max_q_len: int = 0,
            config: Optional[str] = None, tuning: str = "default", check_device_args: bool = False) -> torch.Tensor:
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    call = _prefill_op if _tracing() else _prefill_into
    call(q, k, v, cu_seqlens_q, cu_seqlens_k, out, local_window, global_window, causal, softmax_scale, gqa,
                sink_logits, kv_quant, k_scale, v_scale, max_q_len, config, tuning, check_device_args)
    return out


prefill.__doc__ = """Varlen sliding-window prefill over contiguous K/V; returns ``out``.

    k, v: [total_kv, num_kv_heads, head_dim]; sequence b's keys are rows [cu_seqlens_k[b], cu_seqlens_k[b + 1])
        (int32 [batch + 1]); q's dtype, or 8-bit with kv_quant.""" + _PREFILL_DOC


def paged_prefill(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, block_table: torch.Tensor,
                  seq_lens: torch.Tensor, cu_seqlens_q: torch.Tensor, *, out: Optional[torch.Tensor] = None,
                  local_window: int = 0, global_window: int = 0, causal: bool = True,
                  softmax_scale: Optional[float] = None, kv_layout: str = "nhd", gqa: str = "grouped",
                  sink_logits: Optional[torch.Tensor] = None, kv_quant: str = "none",
                  k_scale: Optional[torch.Tensor] = None, v_scale: Optional[torch.Tensor] = None,
                  max_q_len: int = 0, config: Optional[str] = None, tuning: str = "default",
                  check_device_args: bool = False) -> torch.Tensor:
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    call = _paged_prefill_op if _tracing() else _paged_prefill_into
    call(q, k_cache, v_cache, block_table, seq_lens, cu_seqlens_q, out, local_window, global_window,
                      causal, softmax_scale, kv_layout, gqa, sink_logits, kv_quant, k_scale, v_scale, max_q_len,
                      config, tuning, check_device_args)
    return out


paged_prefill.__doc__ = """Varlen sliding-window prefill over a paged KV cache; returns ``out``.

    k_cache, v_cache, block_table, kv_layout: as in paged_decode; seq_lens[b] (int32 [batch]) is sequence b's KV
    length including its queries, which are already in the cache.""" + _PREFILL_DOC
