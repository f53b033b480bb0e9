// Checks of DLPack tensors shared by every kernel family's argument validation: each failure throws
// swajit::Error(kInvalidArgument) with a message naming the argument and what is allowed.
#pragma once
#include <dlpack/dlpack.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "swajit/device.hpp"
#include "swajit/error.hpp"
#include "swajit/spec.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

constexpr int kVectorBytes = 16;  // every tensor the kernels stream is read or written in 16-byte vectors

// Throws kUnsupported unless `device` has what every family's CUDA kernels use (cp.async, ldmatrix and bf16 mma:
// sm_80 or newer); `family` names the caller in the message.
void require_cuda_kernels(const DeviceInfo& device, const std::string& family);

// A DLTensor over `data`: `shape`, and `strides` (null: compact row-major), stay the caller's and must outlive it, as
// DLPack points into them. The one builder of the check harness, the tuner's workloads and the tests.
inline DLTensor dl_tensor(void* data, DLDataType dtype, DLDevice device, std::vector<int64_t>& shape,
                          std::vector<int64_t>* strides = nullptr) {
  DLTensor t{};
  t.data = data;
  t.device = device;
  t.ndim = int(shape.size());
  t.dtype = dtype;
  t.shape = shape.data();
  t.strides = strides ? strides->data() : nullptr;
  return t;
}

[[noreturn]] void fail(const std::string& message);
std::string shape_text(const DLTensor& t);                 // "[2, 8, 128]"
std::vector<int64_t> strides_of(const DLTensor& t);        // in elements; DLPack's null strides mean row-major
std::string device_name(DLDeviceType type);
void require_ndim(const DLTensor& t, const char* name, int ndim, const char* layout);
void require_dtype(const DLTensor& t, const char* name, DLDataTypeCode code, int bits, const char* expected);
// The tensor lives where the call runs (`home`, q's device) and is readable by kernels there.
void require_on_device(const DLTensor& t, const char* name, const DLDevice& home, bool allow_host_mapped);
// Last dim contiguous, other strides non-negative multiples of 16 bytes, base 16-byte aligned.
void require_vector_layout(const DLTensor& t, const char* name, const std::vector<int64_t>& strides);
void require_positive_extent(const DLTensor& t, const char* name, int dim, const char* what);
int checked_int(int64_t value, const std::string& what);
// Memory the host can read directly (kDLCPU, or pinned kDLCUDAHost): metadata there is validated before launch.
bool host_readable(const DLTensor& t);

template <class T>
const T* element_pointer(const DLTensor& t) {
  return reinterpret_cast<const T*>(static_cast<const char*>(t.data) + t.byte_offset);
}

// q's dtype as a spec dtype (bf16 or fp16), or an error naming q.
DType attention_dtype(const DLTensor& q);
// The DLPack code and name of a spec dtype, for messages and checks of the other tensors.
DLDataTypeCode dlpack_code(DType dtype);
const char* dtype_name(DType dtype);

// A dequant scale: float32 [num_kv_heads, head_dim] (per channel) or a single value (per tensor, read through zero
// strides).
struct ScaleView {
  const float* data = nullptr;
  int64_t stride_head = 0, stride_channel = 0;
};
ScaleView describe_scale(const DLTensor* scale, const char* name, const DLDevice& home, int64_t num_kv_heads, int64_t head_dim);
// The K/V scales of a call into its kernel's argument struct (PagedDecodeParams, PrefillParams): both required and
// checked with an 8-bit K/V (`quant`), refused with a 16-bit one (`options` names the struct whose kv_quant to set).
template <class Params>
void set_kv_scales(Params& a, KvQuant quant, const DLTensor* k_scale, const DLTensor* v_scale, const DLDevice& home,
                   int64_t num_kv_heads, int64_t head_dim, const char* options) {
  if (quant == KvQuant::kNone) {
    if (k_scale || v_scale)
      fail(std::string("k_scale / v_scale are only used with an 8-bit KV cache (set ") + options + "::kv_quant)");
    return;
  }
  const auto set = [](const float*& data, auto& stride_head, auto& stride_channel, const ScaleView& view) {
    data = view.data;
    stride_head = view.stride_head;
    stride_channel = view.stride_channel;
  };
  set(a.k_scale, a.k_scale_stride_head, a.k_scale_stride_channel,
      describe_scale(k_scale, "k_scale", home, num_kv_heads, head_dim));
  set(a.v_scale, a.v_scale_stride_head, a.v_scale_stride_channel,
      describe_scale(v_scale, "v_scale", home, num_kv_heads, head_dim));
}
// The DLPack dtype K/V hold: int8, uint8 (fp8 e4m3 bytes), or the 16-bit dtype of q.
DLDataType kv_storage_dtype(KvQuant quant, DType dtype);

// K and V of one call, paged (4-D, NHD or HND) or contiguous (3-D [tokens, num_kv_heads, head_dim]), with their
// dtype checked against the KV storage (`quant`; 16-bit caches must match q).
struct KvView {
  int64_t num_pages = 0, page_size = 0, num_kv_heads = 0;  // contiguous: num_pages = tokens, page_size = 1
  int64_t k_stride_page = 0, k_stride_token = 0, k_stride_head = 0;
  int64_t v_stride_page = 0, v_stride_token = 0, v_stride_head = 0;
};
KvView describe_paged_kv(const DLTensor& k_cache, const DLTensor& v_cache, KvLayout layout, KvQuant quant, DType dtype,
                         const DLDevice& home, int64_t head_dim);
// The K/V strides of `view` into a kernel's argument struct (PagedDecodeParams, PrefillParams).
template <class Params>
void set_kv_strides(Params& a, const KvView& kv) {
  a.k_stride_page = kv.k_stride_page;
  a.k_stride_token = kv.k_stride_token;
  a.k_stride_head = kv.k_stride_head;
  a.v_stride_page = kv.v_stride_page;
  a.v_stride_token = kv.v_stride_token;
  a.v_stride_head = kv.v_stride_head;
}
KvView describe_contiguous_kv(const DLTensor& k, const DLTensor& v, KvQuant quant, DType dtype, const DLDevice& home,
                              int64_t head_dim);

// block_table int32 [batch, max_pages_per_seq] and seq_lens int32 [batch] (host-mapped memory allowed).
struct PagedMetadataView {
  int64_t block_table_stride_batch = 0, block_table_stride_page = 0, seq_lens_stride = 0;
};
PagedMetadataView describe_paged_metadata(const DLTensor& block_table, const DLTensor& seq_lens, int64_t batch,
                                          const DLDevice& home);

// Host-readable paged metadata: sequence b's KV length `kv_len` fits the table (max_pages_per_seq * page_size) and
// every page entry it uses is in [0, num_pages).
void require_sequence_pages(const DLTensor& block_table, int b, int kv_len, int page_size, int num_pages);

// num_q_heads / num_kv_heads, checked to be a whole group in [1, max_group].
int gqa_group(int64_t num_q_heads, int64_t num_kv_heads, int max_group = SpecLimits::kMaxGroup);

// Optional float32 [num_q_heads] learned sink logits.
struct SinkView {
  const float* data = nullptr;
  int64_t stride = 0;
};
SinkView describe_sink_logits(const DLTensor* sink_logits, int64_t num_q_heads, const DLDevice& home);

// softmax scale * log2(e) (default scale 1/sqrt(head_dim)), checked finite and non-zero.
float softmax_scale_log2(const std::optional<float>& softmax_scale, int64_t head_dim);
void require_global_window(int global_window);  // >= 0 (local_window: any value, <= 0 is unlimited)

// The part of a call's kernel description that comes from the options every family shares; the caller adds what
// its tensors say (page size, q_seqlen, causal) and passes it to its family's spec builder.
AttentionCall call_from_options(const AttentionOptions& options, DType dtype, int head_dim, int group, bool sink_logits);

// What the paged families' argument structs (PagedDecodeParams, SparseDecodeParams) take alike from their validated
// tensors: q / out pointers and strides (a 3-D q is one token per sequence), the cache strides, the paged metadata
// and the sinks. The caller sets the cache pointers (sparse may share one cache) and its own fields.
template <class Params>
void set_paged_call_fields(Params& a, const DLTensor& q, const std::vector<int64_t>& q_strides, const DLTensor& out,
                           const std::vector<int64_t>& out_strides, const KvView& kv, const DLTensor& block_table,
                           const DLTensor& seq_lens, const PagedMetadataView& meta, const SinkView& sinks) {
  const bool has_token_dim = q.ndim == 4;
  a.q = element_pointer<char>(q);
  a.out = const_cast<char*>(element_pointer<char>(out));
  a.block_table = element_pointer<int>(block_table);
  a.seq_lens = element_pointer<int>(seq_lens);
  a.q_stride_batch = q_strides[0];
  a.q_stride_token = has_token_dim ? q_strides[1] : 0;
  a.q_stride_head = q_strides[q.ndim - 2];
  a.out_stride_batch = out_strides[0];
  a.out_stride_token = has_token_dim ? out_strides[1] : 0;
  a.out_stride_head = out_strides[out.ndim - 2];
  set_kv_strides(a, kv);
  a.block_table_stride_batch = meta.block_table_stride_batch;
  a.block_table_stride_page = meta.block_table_stride_page;
  a.seq_lens_stride = meta.seq_lens_stride;
  a.sink_logits = sinks.data;
  a.sink_logits_stride = sinks.stride;
  a.num_pages = checked_int(kv.num_pages, "num_pages");
  a.max_pages_per_seq = checked_int(block_table.shape[1], "block_table max_pages_per_seq");
}

}  // namespace swajit
