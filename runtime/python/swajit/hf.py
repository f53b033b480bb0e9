"""Hugging Face transformers attention backed by swajit, registered as attn_implementation="swajit".

    import swajit.hf  # registers "swajit" with transformers' AttentionInterface (and its mask interface)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="swajit")  # Mistral, Gemma 3, Llama ...
    model.generate(input_ids, max_new_tokens=32)

Each attention layer keeps its own swajit.PagedKVCache (pages of 16 tokens; block_table, seq_lens) next to the
transformers cache: a call appends the layer's new keys and values to it, then runs the prompt through
swajit.paged_prefill and every later step of at most 8 tokens (generation, speculative verification) through
swajit.paged_decode, with the layer's sliding window (Mistral's sliding_window, Gemma's sliding layers) and scaling.
A call whose keys are only its own tokens (nothing cached before) starts new sequences. On the CPU the prefill runs
through paged decode in chunks of at most 8 query tokens (see swajit.paged_prefill): the same attention, exactly.

Limits (each raises swajit.Error(unsupported) rather than computing something else): batches without padding (a
2-D attention_mask with zeros), no explicit 4-D masks, no attention dropout, no logit soft-capping (Gemma 2), head_dim
64/128/256. bf16 / fp16 models run in their dtype; float32 models attend in float16 (10 mantissa bits, against
bfloat16's 7: the closest the kernels come to float32) and get float32 back.
"""
import torch
from transformers import AttentionInterface, AttentionMaskInterface

from . import ops
from ._errors import unsupported
from .paged_cache import PagedKVCache

NAME = "swajit"
PAGE_SIZE = 16
FLOAT32_ATTENTION_DTYPE = torch.float16
_KERNEL_DTYPES = (torch.bfloat16, torch.float16)


def _attention_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in _KERNEL_DTYPES else FLOAT32_ATTENTION_DTYPE


def _layer_cache(module: torch.nn.Module, batch: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device, starts_new_sequences: bool) -> PagedKVCache:
    cache = getattr(module, "_swajit_cache", None)
    fits = (cache is not None and cache.k_cache.shape[2:] == (num_kv_heads, head_dim) and cache.k_cache.dtype == dtype
            and cache.k_cache.device == device)
    if not fits:
        cache = PagedKVCache(num_kv_heads, head_dim, page_size=PAGE_SIZE, dtype=dtype, device=device)
        module._swajit_cache = cache  # a plain attribute: not a parameter or buffer, not in the state dict
        starts_new_sequences = True
    if starts_new_sequences:
        cache.reset(batch)
    elif cache.batch != batch:
        raise unsupported(f"the batch changed from {cache.batch} to {batch} while continuing cached sequences")
    return cache


def swajit_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask, scaling=None, dropout: float = 0.0, sliding_window=None, softcap=None,
                     **kwargs):
    """The AttentionInterface function: query [batch, heads, q_len, head_dim], key / value [batch, kv_heads,
    kv_len, head_dim] (the transformers cache's view, ending with this call's tokens); returns ([batch, q_len, heads,
    head_dim], None)."""
    if attention_mask is not None:
        raise unsupported("attn_implementation='swajit' builds its own causal window mask; an explicit attention "
                          "mask cannot be honored")
    if dropout:
        raise unsupported(f"attention dropout {dropout} (swajit attention is for inference)")
    if softcap:
        raise unsupported(f"attention logit soft-capping ({softcap})")
    batch, _, q_len, head_dim = query.shape
    num_kv_heads = key.shape[1]
    dtype = _attention_dtype(query.dtype)
    starts_new_sequences = key.shape[2] == q_len  # the transformers cache held nothing before this call
    cache = _layer_cache(module, batch, num_kv_heads, head_dim, dtype, query.device, starts_new_sequences)
    cache.append(key[:, :, -q_len:].transpose(1, 2), value[:, :, -q_len:].transpose(1, 2))

    q = query.transpose(1, 2).to(dtype)  # [batch, q_len, heads, head_dim]: a view when no cast is needed
    window = sliding_window if sliding_window else 0
    if not starts_new_sequences and q_len <= ops.MAX_DECODE_Q_SEQLEN:  # generation / speculative verification
        out = ops.paged_decode(q, cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens,
                               local_window=window, softmax_scale=scaling)
    else:
        cu_seqlens_q = torch.arange(0, (batch + 1) * q_len, q_len, dtype=torch.int32, device=query.device)
        out = ops.paged_prefill(q.reshape(batch * q_len, *q.shape[2:]), cache.k_cache, cache.v_cache,
                                cache.block_table, cache.seq_lens, cu_seqlens_q, local_window=window,
                                softmax_scale=scaling, max_q_len=q_len).view(q.shape)
    return out.to(query.dtype), None


def _mask_without_padding(attention_mask=None, **kwargs):
    """The mask interface for "swajit": the kernels apply the causal window themselves, so no mask is built; a 2-D
    padding mask with any padded position is refused (the paged cache holds unpadded sequences)."""
    if attention_mask is not None and not bool(attention_mask.all()):
        raise unsupported("attn_implementation='swajit' takes batches without padding (the attention_mask has zeros)")
    return None


def register() -> None:
    """Registers "swajit" with transformers (done on import; calling it again is harmless)."""
    AttentionInterface.register(NAME, swajit_attention)
    AttentionMaskInterface.register(NAME, _mask_without_padding)


register()
