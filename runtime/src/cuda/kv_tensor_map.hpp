// Tensor maps (CUtensorMap) of K/V caches for the TMA engine, encoded by the host per call: one place for the
// families whose producers move K/V tiles with cp.async.bulk.tensor (prefill's tma configs, paged decode's
// producer 4). A cache is seen as a 4-d tensor {channel, kv head, token in page, page} (a contiguous K/V: one "page"
// of all its tokens), head and token swapped when the tokens are the inner of the two (HND), so the strides ascend;
// a box is 128 bytes of channels (one 128-byte swizzle row: 64 16-bit or 128 8-bit channels) x box_rows tokens of one
// kv head and page, landing 128-byte-swizzled (tile_ops.cuh WgmmaTile: channel block-major, 1024-byte atoms).
#pragma once
#include <cuda.h>

#include <cstdint>
#include <string>

namespace swajit {

struct KvTensorView {
  const void* base = nullptr;
  int64_t stride_page = 0, stride_token = 0, stride_head = 0;  // elements
  int element_bytes = 2;                                        // 2: bf16 / fp16, 1: int8 / fp8 bytes
  bool bf16 = true;                                             // 16-bit only: bf16, else fp16
  int head_dim = 0, num_kv_heads = 0;
  int64_t tokens_per_page = 0, pages = 0;
  bool one_run = false;  // one "page" holding every token (contiguous K/V, a packed run of pages): no page stride
};

// Bytes of one box row: the 128-byte swizzle span.
inline constexpr int kTmaBoxRowBytes = 128;

// What keeps the TMA engine from reading k and v as tensor maps (empty: nothing): their base addresses and head,
// token and page strides must be positive multiples of 16 bytes, in the same order of the head and token strides.
// `contiguous`: no page dimension (its stride is not checked).
std::string kv_tensor_map_problem(const KvTensorView& k, const KvTensorView& v, bool contiguous);

// Encodes `view` into `map` (128 bytes, 128-byte aligned: a CUtensorMap) with boxes of box_rows tokens.
void encode_kv_tensor_map(void* map, const KvTensorView& view, int box_rows);

}  // namespace swajit
