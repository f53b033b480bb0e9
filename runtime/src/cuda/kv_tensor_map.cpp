#include "kv_tensor_map.hpp"

#include "cuda_driver.hpp"

namespace swajit {

namespace {
constexpr int64_t kTmaAlignment = 16;  // bytes: base address and every stride of a tensor map

// HND: the token stride below the head stride.
bool tokens_inside_heads(const KvTensorView& view) { return view.stride_token < view.stride_head; }
}  // namespace

std::string kv_tensor_map_problem(const KvTensorView& k, const KvTensorView& v, bool contiguous) {
  if (tokens_inside_heads(k) != tokens_inside_heads(v)) return "k and v with the same order of the head and token strides";
  const auto misaligned = [](int64_t elements, int element_bytes) {
    return elements <= 0 || elements * element_bytes % kTmaAlignment != 0;
  };
  const auto suits = [&](const KvTensorView& t) {
    return reinterpret_cast<uintptr_t>(t.base) % kTmaAlignment == 0 && !misaligned(t.stride_token, t.element_bytes) &&
           !misaligned(t.stride_head, t.element_bytes) && (contiguous || !misaligned(t.stride_page, t.element_bytes));
  };
  if (!suits(k) || !suits(v))
    return "k and v 16-byte aligned with head, token and page strides of positive multiples of 16 bytes";
  return {};
}

void encode_kv_tensor_map(void* map, const KvTensorView& view, int box_rows) {
  const bool swap = tokens_inside_heads(view);
  const int64_t bytes = view.element_bytes;
  const cuuint64_t heads = cuuint64_t(view.num_kv_heads), tokens = cuuint64_t(view.tokens_per_page);
  const cuuint64_t dims[4] = {cuuint64_t(view.head_dim), swap ? tokens : heads, swap ? heads : tokens,
                              cuuint64_t(view.pages)};
  const int64_t head_bytes = view.stride_head * bytes, token_bytes = view.stride_token * bytes;
  const int64_t page_bytes = (view.one_run ? view.tokens_per_page * view.stride_token : view.stride_page) * bytes;
  const cuuint64_t byte_strides[3] = {cuuint64_t(swap ? token_bytes : head_bytes), cuuint64_t(swap ? head_bytes : token_bytes),
                                      cuuint64_t(page_bytes)};
  const cuuint32_t box_channels = cuuint32_t(kTmaBoxRowBytes / bytes);
  const cuuint32_t box[4] = {box_channels, swap ? cuuint32_t(box_rows) : 1, swap ? 1 : cuuint32_t(box_rows), 1};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  const CUtensorMapDataType type = bytes == 1 ? CU_TENSOR_MAP_DATA_TYPE_UINT8
                                   : view.bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                               : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  cuda::check(cuda::driver().cuTensorMapEncodeTiled(static_cast<CUtensorMap*>(map), type, 4, const_cast<void*>(view.base),
                                                    dims, byte_strides, box, element_strides,
                                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
              "cuTensorMapEncodeTiled(K/V)");
}

}  // namespace swajit
