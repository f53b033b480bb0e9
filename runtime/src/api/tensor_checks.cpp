#include "tensor_checks.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

namespace swajit {

void require_cuda_kernels(const DeviceInfo& device, const std::string& family) {
  constexpr int kMinComputeMajor = 8;  // cp.async, ldmatrix and bf16 mma need sm_80
  if (device.cc_major < kMinComputeMajor)
    throw Error(ErrorCode::kUnsupported, device.name + " is sm_" + std::to_string(device.cc_major) +
                                             std::to_string(device.cc_minor) + "; " + family + " needs sm_80 or newer");
}

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

std::string shape_text(const DLTensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// Strides in elements; DLPack's null strides mean compact row-major.
std::vector<int64_t> strides_of(const DLTensor& t) {
  std::vector<int64_t> strides(t.ndim);
  int64_t running = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    strides[i] = t.strides ? t.strides[i] : running;
    running *= t.shape[i];
  }
  return strides;
}

std::string device_name(DLDeviceType type) {
  switch (type) {
    case kDLCPU: return "cpu";
    case kDLCUDA: return "cuda";
    case kDLCUDAHost: return "cuda_host";
    case kDLCUDAManaged: return "cuda_managed";
    default: return "DLDeviceType " + std::to_string(static_cast<int>(type));
  }
}

void require_ndim(const DLTensor& t, const char* name, int ndim, const char* layout) {
  if (t.ndim != ndim)
    fail(std::string(name) + " must be " + std::to_string(ndim) + "-D " + layout + ", got " + std::to_string(t.ndim) +
         "-D " + shape_text(t));
}

void require_dtype(const DLTensor& t, const char* name, DLDataTypeCode code, int bits, const char* expected) {
  if (t.dtype.code != code || t.dtype.bits != bits || t.dtype.lanes != 1)
    fail(std::string(name) + " must have dtype " + expected + " (DLPack code " + std::to_string(int(code)) +
         ", bits " + std::to_string(bits) + "), got code " + std::to_string(int(t.dtype.code)) + " bits " +
         std::to_string(int(t.dtype.bits)) + " lanes " + std::to_string(int(t.dtype.lanes)));
}

// The tensor lives where the call runs (`home`, q's device) and is readable by kernels there: on the CPU every
// tensor is on 'cpu'; on CUDA on the same GPU (managed memory too), and metadata may also be host-mapped.
void require_on_device(const DLTensor& t, const char* name, const DLDevice& home, bool allow_host_mapped) {
  if (home.device_type == kDLCPU) {
    if (t.device.device_type != kDLCPU)
      fail(std::string(name) + " is on device type '" + device_name(t.device.device_type) +
           "' but q is on 'cpu': every tensor of a CPU call must be on 'cpu'");
  } else {
    const bool on_gpu = t.device.device_type == kDLCUDA || t.device.device_type == kDLCUDAManaged;
    const bool mapped = allow_host_mapped && t.device.device_type == kDLCUDAHost;
    if (!on_gpu && !mapped)
      fail(std::string(name) + " is on device type '" + device_name(t.device.device_type) +
           "'; this call runs on CUDA and needs it on 'cuda'" + (allow_host_mapped ? ", 'cuda_managed' or 'cuda_host'" : " or 'cuda_managed'"));
    if (t.device.device_type != kDLCUDAHost && t.device.device_id != home.device_id)
      fail(std::string(name) + " is on cuda:" + std::to_string(t.device.device_id) + " but q is on cuda:" + std::to_string(home.device_id));
  }
  if (!t.data && t.ndim > 0) {
    int64_t n = 1;
    for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
    if (n > 0) fail(std::string(name) + " has a null data pointer");
  }
}

// Row strides of a tensor read or written with 16-byte vectors: last dim contiguous, every other stride and the
// base address multiples of 16 bytes, no negative strides.
void require_vector_layout(const DLTensor& t, const char* name, const std::vector<int64_t>& strides) {
  const int64_t vector_elements = kVectorBytes / (t.dtype.bits / 8);
  if (strides.back() != 1) fail(std::string(name) + " must be contiguous in its last dimension (stride 1), got stride " + std::to_string(strides.back()));
  for (int i = 0; i < t.ndim - 1; ++i) {
    if (strides[i] < 0) fail(std::string(name) + " stride[" + std::to_string(i) + "] = " + std::to_string(strides[i]) + " is negative; only non-negative strides are supported");
    if (t.shape[i] > 1 && strides[i] % vector_elements != 0)
      fail(std::string(name) + " stride[" + std::to_string(i) + "] = " + std::to_string(strides[i]) +
           " elements must be a multiple of " + std::to_string(vector_elements) + " (16-byte vector access)");
  }
  const uintptr_t address = reinterpret_cast<uintptr_t>(t.data) + t.byte_offset;
  if (address % kVectorBytes != 0) fail(std::string(name) + " data + byte_offset must be 16-byte aligned");
}

void require_positive_extent(const DLTensor& t, const char* name, int dim, const char* what) {
  if (t.shape[dim] <= 0) fail(std::string(name) + " dimension " + std::to_string(dim) + " (" + what + ") must be >= 1, got " + std::to_string(t.shape[dim]));
}

// A dequant scale: float32 [num_kv_heads, head_dim] (per channel) or a single value (per tensor, read through zero
// strides). Returns the pointer and the (head, channel) strides.
ScaleView describe_scale(const DLTensor* scale, const char* name, const DLDevice& home, int64_t num_kv_heads, int64_t head_dim) {
  const std::string expected = "float32 [num_kv_heads, head_dim] = [" + std::to_string(num_kv_heads) + ", " +
                               std::to_string(head_dim) + "] or a single value";
  if (!scale) fail(std::string(name) + " is required with an 8-bit KV cache: " + expected);
  require_dtype(*scale, name, kDLFloat, 32, "float32");
  require_on_device(*scale, name, home, false);
  int64_t count = 1;
  for (int i = 0; i < scale->ndim; ++i) count *= scale->shape[i];
  ScaleView view;
  view.data = element_pointer<float>(*scale);
  if (count == 1) return view;
  if (scale->ndim != 2 || scale->shape[0] != num_kv_heads || scale->shape[1] != head_dim)
    fail(std::string(name) + " must be " + expected + ", got " + shape_text(*scale));
  const auto strides = strides_of(*scale);
  if (strides[0] < 0 || strides[1] < 0) fail(std::string(name) + " strides must be non-negative");
  view.stride_head = strides[0];
  view.stride_channel = strides[1];
  return view;
}

int checked_int(int64_t value, const std::string& what) {
  if (value > INT_MAX) fail(what + " = " + std::to_string(value) + " exceeds " + std::to_string(INT_MAX));
  return static_cast<int>(value);
}


bool host_readable(const DLTensor& t) { return t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost; }

DType attention_dtype(const DLTensor& q) {
  if (q.dtype.code == kDLBfloat && q.dtype.bits == 16 && q.dtype.lanes == 1) return DType::kBF16;
  if (q.dtype.code == kDLFloat && q.dtype.bits == 16 && q.dtype.lanes == 1) return DType::kFP16;
  require_dtype(q, "q", kDLBfloat, 16, "bf16 or fp16");  // throws with the details
  return DType::kBF16;
}
DLDataTypeCode dlpack_code(DType dtype) { return dtype == DType::kBF16 ? kDLBfloat : kDLFloat; }
const char* dtype_name(DType dtype) { return dtype == DType::kBF16 ? "bf16" : "fp16"; }

DLDataType kv_storage_dtype(KvQuant quant, DType dtype) {
  switch (quant) {
    case KvQuant::kInt8: return {kDLInt, 8, 1};
    case KvQuant::kFp8E4M3: return {kDLUInt, 8, 1};
    case KvQuant::kNone: break;
  }
  return {static_cast<uint8_t>(dlpack_code(dtype)), 16, 1};
}

namespace {

void require_kv_dtypes(const DLTensor& k, const DLTensor& v, KvQuant quant, DType dtype, const char* k_name,
                       const char* v_name) {
  switch (quant) {
    case KvQuant::kNone:
      for (const auto& [t, name] : {std::pair{&k, k_name}, std::pair{&v, v_name}})
        if (t->dtype.bits == 8)
          fail(std::string(name) + " holds 8-bit values but kv_quant = none: K/V must be " + dtype_name(dtype) +
               " like q, or set kv_quant = int8 (int8 tensors) or fp8 (uint8 tensors of e4m3 bytes) with k_scale and "
               "v_scale");
      require_dtype(k, k_name, dlpack_code(dtype), 16, dtype_name(dtype));
      require_dtype(v, v_name, dlpack_code(dtype), 16, dtype_name(dtype));
      break;
    case KvQuant::kInt8:
      require_dtype(k, k_name, kDLInt, 8, "int8 (kv_quant = int8)");
      require_dtype(v, v_name, kDLInt, 8, "int8 (kv_quant = int8)");
      break;
    case KvQuant::kFp8E4M3:
      require_dtype(k, k_name, kDLUInt, 8, "uint8 holding fp8 e4m3 bytes (kv_quant = fp8_e4m3)");
      require_dtype(v, v_name, kDLUInt, 8, "uint8 holding fp8 e4m3 bytes (kv_quant = fp8_e4m3)");
      break;
  }
}

// K and V of one shape and layout (`ndim`-D, `layout` for messages), of the KV storage dtype, where the call runs.
void require_kv_pair(const DLTensor& k, const DLTensor& v, const char* k_name, const char* v_name, int ndim,
                     const char* layout, KvQuant quant, DType dtype, const DLDevice& home) {
  require_ndim(k, k_name, ndim, layout);
  require_ndim(v, v_name, ndim, layout);
  for (int i = 0; i < ndim; ++i)
    if (v.shape[i] != k.shape[i])
      fail(std::string(v_name) + " must have the shape of " + k_name + " " + shape_text(k) + ", got " + shape_text(v));
  require_kv_dtypes(k, v, quant, dtype, k_name, v_name);
  require_on_device(k, k_name, home, false);
  require_on_device(v, v_name, home, false);
}

}  // namespace

KvView describe_paged_kv(const DLTensor& k_cache, const DLTensor& v_cache, KvLayout layout, KvQuant quant, DType dtype,
                         const DLDevice& home, int64_t head_dim) {
  const bool nhd = layout == KvLayout::kNHD;
  const char* cache_layout = nhd ? "NHD [num_pages, page_size, num_kv_heads, head_dim]" : "HND [num_pages, num_kv_heads, page_size, head_dim]";
  require_kv_pair(k_cache, v_cache, "k_cache", "v_cache", 4, cache_layout, quant, dtype, home);
  const int page_dim = nhd ? 1 : 2, head_dim_kv = nhd ? 2 : 1;
  KvView view;
  view.num_pages = k_cache.shape[0];
  view.page_size = k_cache.shape[page_dim];
  view.num_kv_heads = k_cache.shape[head_dim_kv];
  require_positive_extent(k_cache, "k_cache", 0, "num_pages");
  if (view.page_size < SpecLimits::kMinPageSize || view.page_size > SpecLimits::kMaxPageSize)
    fail("k_cache page_size (dimension " + std::to_string(page_dim) + ") = " + std::to_string(view.page_size) + " is outside [1, 256]");
  require_positive_extent(k_cache, "k_cache", head_dim_kv, "num_kv_heads");
  if (k_cache.shape[3] != head_dim)
    fail("k_cache head_dim (dimension 3) = " + std::to_string(k_cache.shape[3]) + " must equal q's head_dim " + std::to_string(head_dim));
  const auto k_strides = strides_of(k_cache), v_strides = strides_of(v_cache);
  require_vector_layout(k_cache, "k_cache", k_strides);
  require_vector_layout(v_cache, "v_cache", v_strides);
  view.k_stride_page = k_strides[0];
  view.k_stride_token = k_strides[page_dim];
  view.k_stride_head = k_strides[head_dim_kv];
  view.v_stride_page = v_strides[0];
  view.v_stride_token = v_strides[page_dim];
  view.v_stride_head = v_strides[head_dim_kv];
  return view;
}

KvView describe_contiguous_kv(const DLTensor& k, const DLTensor& v, KvQuant quant, DType dtype, const DLDevice& home,
                              int64_t head_dim) {
  const char* layout = "[total_kv, num_kv_heads, head_dim]";
  require_kv_pair(k, v, "k", "v", 3, layout, quant, dtype, home);
  require_positive_extent(k, "k", 1, "num_kv_heads");
  if (k.shape[2] != head_dim)
    fail("k head_dim (dimension 2) = " + std::to_string(k.shape[2]) + " must equal q's head_dim " + std::to_string(head_dim));
  const auto k_strides = strides_of(k), v_strides = strides_of(v);
  require_vector_layout(k, "k", k_strides);
  require_vector_layout(v, "v", v_strides);
  KvView view;
  view.num_pages = k.shape[0];
  view.page_size = 1;
  view.num_kv_heads = k.shape[1];
  view.k_stride_page = view.k_stride_token = k_strides[0];
  view.k_stride_head = k_strides[1];
  view.v_stride_page = view.v_stride_token = v_strides[0];
  view.v_stride_head = v_strides[1];
  return view;
}

PagedMetadataView describe_paged_metadata(const DLTensor& block_table, const DLTensor& seq_lens, int64_t batch,
                                          const DLDevice& home) {
  require_ndim(block_table, "block_table", 2, "[batch, max_pages_per_seq]");
  require_dtype(block_table, "block_table", kDLInt, 32, "int32");
  if (block_table.shape[0] != batch)
    fail("block_table dimension 0 = " + std::to_string(block_table.shape[0]) + " must equal batch = " + std::to_string(batch));
  require_ndim(seq_lens, "seq_lens", 1, "[batch]");
  require_dtype(seq_lens, "seq_lens", kDLInt, 32, "int32");
  if (seq_lens.shape[0] != batch)
    fail("seq_lens dimension 0 = " + std::to_string(seq_lens.shape[0]) + " must equal batch = " + std::to_string(batch));
  require_on_device(block_table, "block_table", home, true);
  require_on_device(seq_lens, "seq_lens", home, true);
  const auto bt_strides = strides_of(block_table);
  const auto sl_strides = strides_of(seq_lens);
  for (int i = 0; i < 2; ++i)
    if (bt_strides[i] < 0) fail("block_table stride[" + std::to_string(i) + "] must be non-negative");
  if (sl_strides[0] < 0) fail("seq_lens stride[0] must be non-negative");

  PagedMetadataView view;
  view.block_table_stride_batch = bt_strides[0];
  view.block_table_stride_page = bt_strides[1];
  view.seq_lens_stride = sl_strides[0];
  return view;
}

void require_sequence_pages(const DLTensor& block_table, int b, int kv_len, int page_size, int num_pages) {
  const auto strides = strides_of(block_table);
  const int64_t capacity = block_table.shape[1] * page_size;
  if (kv_len > capacity)
    fail("seq_lens[" + std::to_string(b) + "] = " + std::to_string(kv_len) + " exceeds block_table capacity " +
         std::to_string(capacity) + " (max_pages_per_seq * page_size)");
  const int* table = element_pointer<int>(block_table);
  for (int page = 0; page < (kv_len + page_size - 1) / page_size; ++page) {
    const int entry = table[b * strides[0] + page * strides[1]];
    if (entry < 0 || entry >= num_pages)
      fail("block_table[" + std::to_string(b) + ", " + std::to_string(page) + "] = " + std::to_string(entry) +
           " is outside [0, " + std::to_string(num_pages - 1) + "]");
  }
}

int gqa_group(int64_t num_q_heads, int64_t num_kv_heads, int max_group) {
  if (num_q_heads % num_kv_heads != 0)
    fail("num_q_heads = " + std::to_string(num_q_heads) + " must be a multiple of num_kv_heads = " + std::to_string(num_kv_heads));
  const int64_t group = num_q_heads / num_kv_heads;
  if (group < SpecLimits::kMinGroup || group > max_group)
    fail("GQA group num_q_heads / num_kv_heads = " + std::to_string(group) + " is outside [1, " + std::to_string(max_group) + "]");
  return static_cast<int>(group);
}

SinkView describe_sink_logits(const DLTensor* sink_logits, int64_t num_q_heads, const DLDevice& home) {
  SinkView view;
  if (!sink_logits) return view;
  const DLTensor& s = *sink_logits;
  require_ndim(s, "sink_logits", 1, "[num_q_heads]");
  require_dtype(s, "sink_logits", kDLFloat, 32, "float32");
  if (s.shape[0] != num_q_heads)
    fail("sink_logits has " + std::to_string(s.shape[0]) + " entries; it needs one per q head: " + std::to_string(num_q_heads));
  require_on_device(s, "sink_logits", home, false);
  view.stride = strides_of(s)[0];
  if (view.stride < 0) fail("sink_logits stride[0] must be non-negative");
  view.data = element_pointer<float>(s);
  return view;
}

float softmax_scale_log2(const std::optional<float>& softmax_scale, int64_t head_dim) {
  float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  if (softmax_scale) {
    if (!std::isfinite(*softmax_scale) || *softmax_scale <= 0.f)
      fail("softmax_scale = " + std::to_string(*softmax_scale) + " must be finite and > 0");
    scale = *softmax_scale;
  }
  constexpr float kLog2e = 1.4426950408889634f;
  return scale * kLog2e;
}

void require_global_window(int global_window) {
  if (global_window < 0) fail("global_window = " + std::to_string(global_window) + " must be >= 0 (0: no sink tokens)");
}

AttentionCall call_from_options(const AttentionOptions& options, DType dtype, int head_dim, int group, bool sink_logits) {
  AttentionCall call;
  call.dtype = dtype;
  call.head_dim = head_dim;
  call.kv_layout = options.kv_layout;
  call.group = group;
  call.local_window = std::max(0, options.local_window);  // <= 0: no window
  call.global_window = options.global_window;
  call.sink_logits = sink_logits;
  call.gqa = options.gqa;
  call.kv_quant = options.kv_quant;
  return call;
}

}  // namespace swajit
