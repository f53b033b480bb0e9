"""A paged KV cache kept the way vLLM and SGLang keep theirs, in the layout swajit's paged kernels read."""
from typing import List, Optional

import torch

from ._errors import invalid_argument


class PagedKVCache:
    """K and V for a batch of sequences in fixed-size pages of one pool.

    k_cache / v_cache: [num_pages, page_size, num_kv_heads, head_dim] (NHD). Sequence b owns the pages listed in row b
    of ``block_table`` (int32 [batch, max_pages_per_seq]); its token t lives in page block_table[b, t // page_size] at
    offset t % page_size; ``seq_lens`` (int32 [batch]) counts its tokens. ``append`` writes new tokens through a slot
    mapping (page * page_size + offset, as vLLM's reshape_and_cache does), taking pages from a free list and growing
    the pool (doubling, a copy) when it runs out. Pass ``block_table`` and ``seq_lens`` with the caches to
    swajit.paged_decode / paged_prefill right after an append: the new tokens are then the queries' own positions.
    ``host_seq_lens`` holds the same lengths on the CPU, for paged_decode's ``host_seq_lens=`` (it plans the grid).
    """

    def __init__(self, num_kv_heads: int, head_dim: int, *, page_size: int = 16, num_pages: int = 64,
                 dtype: torch.dtype = torch.bfloat16, device="cpu"):
        if page_size < 1 or num_pages < 1:
            raise invalid_argument(f"page_size = {page_size} and num_pages = {num_pages} must be >= 1")
        self.page_size = page_size
        shape = (num_pages, page_size, num_kv_heads, head_dim)
        self.k_cache = torch.zeros(shape, dtype=dtype, device=device)
        self.v_cache = torch.zeros(shape, dtype=dtype, device=device)
        self._free_pages: List[int] = list(range(num_pages - 1, -1, -1))  # pop() hands out low pages first
        self._pages: List[List[int]] = []
        self.block_table = torch.zeros(0, 1, dtype=torch.int32, device=device)
        self.seq_lens = torch.zeros(0, dtype=torch.int32, device=device)
        self.host_seq_lens = torch.zeros(0, dtype=torch.int32)

    @property
    def batch(self) -> int:
        return len(self._pages)

    @property
    def num_pages(self) -> int:
        return self.k_cache.shape[0]

    def recent_keys(self, count: int) -> torch.Tensor:
        """Each sequence's last `count` keys, [batch, count, num_kv_heads, head_dim]; count <= every seq_lens value."""
        device = self.k_cache.device
        positions = self.seq_lens.long().view(-1, 1) - count + torch.arange(count, device=device)
        pages = torch.gather(self.block_table.long(), 1, positions // self.page_size)
        slots = pages * self.page_size + positions % self.page_size
        return self.k_cache.view(-1, *self.k_cache.shape[2:])[slots]

    def reset(self, batch: int) -> None:
        """Forget every sequence and start `batch` empty ones; their pages return to the free list."""
        for pages in self._pages:
            self._free_pages.extend(reversed(pages))
        self._pages = [[] for _ in range(batch)]
        self.block_table = torch.zeros(batch, 1, dtype=torch.int32, device=self.k_cache.device)
        self.seq_lens = torch.zeros(batch, dtype=torch.int32, device=self.k_cache.device)
        self.host_seq_lens = torch.zeros(batch, dtype=torch.int32)

    def append(self, k: torch.Tensor, v: torch.Tensor, seq_ids: Optional[List[int]] = None) -> None:
        """Appends k, v [len(seq_ids), new_tokens, num_kv_heads, head_dim] to the sequences `seq_ids` (default:
        every sequence of the batch, in order); each gains new_tokens tokens."""
        seq_ids = list(range(self.batch)) if seq_ids is None else list(seq_ids)
        expected = (len(seq_ids), k.shape[1]) + tuple(self.k_cache.shape[2:])
        if tuple(k.shape) != expected or tuple(v.shape) != expected:
            raise invalid_argument(f"k and v must be [len(seq_ids), new_tokens, num_kv_heads, head_dim] = "
                                   f"{list(expected)}, got {list(k.shape)} and {list(v.shape)}")
        if any(not 0 <= b < self.batch for b in seq_ids):
            raise invalid_argument(f"seq_ids {seq_ids} must lie in [0, {self.batch}) (call reset(batch) first)")
        new_tokens = k.shape[1]
        lengths = self.host_seq_lens.tolist()  # the same values, without waiting for the device
        slots = []
        for b in seq_ids:
            start = lengths[b]
            self._reserve(b, start + new_tokens)
            pages = self._pages[b]
            slots += [pages[t // self.page_size] * self.page_size + t % self.page_size
                      for t in range(start, start + new_tokens)]
            lengths[b] = start + new_tokens
        slot_mapping = torch.tensor(slots, dtype=torch.long, device=self.k_cache.device)
        heads_dims = self.k_cache.shape[2:]
        self.k_cache.view(-1, *heads_dims).index_copy_(0, slot_mapping, k.reshape(-1, *heads_dims).to(self.k_cache.dtype))
        self.v_cache.view(-1, *heads_dims).index_copy_(0, slot_mapping, v.reshape(-1, *heads_dims).to(self.v_cache.dtype))
        self.seq_lens = torch.tensor(lengths, dtype=torch.int32, device=self.k_cache.device)
        self.host_seq_lens = torch.tensor(lengths, dtype=torch.int32)
        self._update_block_table()

    def _reserve(self, b: int, num_tokens: int) -> None:
        """Gives sequence b pages for num_tokens tokens, growing the pool when the free list runs out."""
        needed = -(-num_tokens // self.page_size) - len(self._pages[b])
        if needed > len(self._free_pages):
            self._grow(max(self.num_pages, needed - len(self._free_pages)))
        for _ in range(needed):
            self._pages[b].append(self._free_pages.pop())

    def _grow(self, extra_pages: int) -> None:
        old = self.num_pages
        pad = (extra_pages,) + tuple(self.k_cache.shape[1:])
        self.k_cache = torch.cat([self.k_cache, self.k_cache.new_zeros(pad)])
        self.v_cache = torch.cat([self.v_cache, self.v_cache.new_zeros(pad)])
        self._free_pages = list(range(old + extra_pages - 1, old - 1, -1)) + self._free_pages

    def _update_block_table(self) -> None:
        width = max(1, max(len(pages) for pages in self._pages))
        rows = [pages + [0] * (width - len(pages)) for pages in self._pages]  # unused entries are never read
        self.block_table = torch.tensor(rows, dtype=torch.int32, device=self.k_cache.device)
