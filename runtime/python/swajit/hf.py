"""Hugging Face transformers attention backed by swajit, registered as attn_implementation="swajit".

    import swajit.hf  # registers "swajit" with transformers' AttentionInterface (and its mask interface)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="swajit")  # Mistral, Gemma 3, Llama ...
    model.generate(input_ids, max_new_tokens=32)

Each attention layer keeps its own swajit.PagedKVCache (pages of 16 tokens; block_table, seq_lens) next to the
transformers cache: a call appends the layer's new keys and values to it, then runs the prompt through
swajit.paged_prefill and every later step of at most 8 tokens (generation, speculative verification) through
swajit.paged_decode, with the layer's sliding window (Mistral's sliding_window, Gemma's sliding layers) and scaling.
Before appending, a call checks that the paged cache ends where the transformers cache's history ends (the last
key of each sequence); when it does not (new sequences, beams reordered, rejected speculative tokens cropped) it
rebuilds the paged cache from the keys and values transformers passes, which hold every token the layer can see. On the CPU the prefill runs
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


def _layer_cache(module: torch.nn.Module, num_kv_heads: int, head_dim: int, dtype: torch.dtype,
                 device: torch.device) -> PagedKVCache:
    cache = getattr(module, "_swajit_cache", None)
    if (cache is None or cache.k_cache.shape[2:] != (num_kv_heads, head_dim) or cache.k_cache.dtype != dtype
            or cache.k_cache.device != device):
        cache = PagedKVCache(num_kv_heads, head_dim, page_size=PAGE_SIZE, dtype=dtype, device=device)
        module._swajit_cache = cache  # a plain attribute: not a parameter or buffer, not in the state dict
    return cache


def _continues(cache: PagedKVCache, key: torch.Tensor, q_len: int) -> bool:
    """Whether the paged cache ends with exactly the history (the keys before this call's q_len tokens) that the
    transformers cache hands over: all of it for a full-attention layer, the window's for a sliding one. It does not
    after generate() started new sequences, reordered beams or cropped rejected speculative tokens; the caller then
    rebuilds the paged cache from that history. Comparing every key (not only the last) keeps histories that merely
    end alike apart; two that are equal key for key give the same attention, so equality is all that matters."""
    history = key.shape[2] - q_len
    if history == 0 or cache.batch != key.shape[0] or min(cache.seq_lens.tolist()) < history:
        return False
    return torch.equal(cache.recent_keys(history), key[:, :, :history].transpose(1, 2).to(cache.k_cache.dtype))


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
    cache = _layer_cache(module, num_kv_heads, head_dim, dtype, query.device)
    rebuild = not _continues(cache, key, q_len)
    if rebuild:  # every token the transformers cache holds (a sliding layer's holds the window's), then ours
        cache.reset(batch)
    new = slice(0, None) if rebuild else slice(-q_len, None)
    cache.append(key[:, :, new].transpose(1, 2), value[:, :, new].transpose(1, 2))

    q = query.transpose(1, 2).to(dtype)  # [batch, q_len, heads, head_dim]: a view when no cast is needed
    window = sliding_window if sliding_window else 0
    if not rebuild and q_len <= ops.MAX_DECODE_Q_SEQLEN:  # generation / speculative verification
        out = ops.paged_decode(q, cache.k_cache, cache.v_cache, cache.block_table, cache.seq_lens,
                               local_window=window, softmax_scale=scaling, host_seq_lens=cache.host_seq_lens)
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
