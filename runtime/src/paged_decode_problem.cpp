#include "paged_decode_problem.hpp"

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace swajit {
namespace {

constexpr int kVectorBytes = 16;    // every tensor the kernel streams is read or written in 16-byte vectors
constexpr int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y (kv heads)

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

template <class T>
const T* element_pointer(const DLTensor& t) {
  return reinterpret_cast<const T*>(static_cast<const char*>(t.data) + t.byte_offset);
}

// A dequant scale: float32 [num_kv_heads, head_dim] (per channel) or a single value (per tensor, read through zero
// strides). Returns the pointer and the (head, channel) strides.
struct ScaleView {
  const float* data = nullptr;
  int64_t stride_head = 0, stride_channel = 0;
};
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

// With host-readable metadata, the values the kernel would otherwise only flag are rejected before launch.
void validate_host_metadata(const DecodeProblem& p, const DLTensor& block_table, const DLTensor& seq_lens) {
  const auto bt_strides = strides_of(block_table);
  const int64_t sl_stride = strides_of(seq_lens)[0];
  const int* seq = element_pointer<int>(seq_lens);
  const int* table = element_pointer<int>(block_table);
  const int page_size = p.spec.page_size;
  for (int b = 0; b < p.batch; ++b) {
    const int len = seq[b * sl_stride];
    if (len < 0 || (len > 0 && len < p.spec.q_seqlen))
      fail("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) + " must be 0 or >= q_seqlen = " + std::to_string(p.spec.q_seqlen));
    if (len > p.max_kv_len)
      fail("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) + " exceeds block_table capacity " +
           std::to_string(p.max_kv_len) + " (max_pages_per_seq * page_size)");
    for (int page = 0; page < (len + page_size - 1) / page_size; ++page) {
      const int entry = table[b * bt_strides[0] + page * bt_strides[1]];
      if (entry < 0 || entry >= p.params.num_pages)
        fail("block_table[" + std::to_string(b) + ", " + std::to_string(page) + "] = " + std::to_string(entry) +
             " is outside [0, " + std::to_string(p.params.num_pages - 1) + "]");
    }
  }
}

}  // namespace

DecodeProblem describe_paged_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                                    const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                                    const DecodeOptions& options) {
  DecodeProblem p;
  // q / out
  if (q.ndim != 3 && q.ndim != 4)
    fail("q must be 4-D [batch, q_seqlen, num_q_heads, head_dim] or 3-D [batch, num_q_heads, head_dim], got " +
         std::to_string(q.ndim) + "-D " + shape_text(q));
  const bool has_token_dim = q.ndim == 4;
  const int64_t q_seqlen = has_token_dim ? q.shape[1] : 1;
  const int64_t num_q_heads = q.shape[q.ndim - 2], head_dim = q.shape[q.ndim - 1];
  if (q.dtype.code == kDLBfloat) p.spec.dtype = DType::kBF16;
  else if (q.dtype.code == kDLFloat && q.dtype.bits == 16) p.spec.dtype = DType::kFP16;
  const char* dtype_text = p.spec.dtype == DType::kBF16 ? "bf16" : "fp16";
  const DLDataTypeCode dtype_code = p.spec.dtype == DType::kBF16 ? kDLBfloat : kDLFloat;
  require_dtype(q, "q", dtype_code, 16, "bf16 or fp16");
  if (q.device.device_type != kDLCPU && q.device.device_type != kDLCUDA && q.device.device_type != kDLCUDAManaged)
    fail("q is on device type '" + device_name(q.device.device_type) + "'; supported: 'cpu', 'cuda', 'cuda_managed'");
  const DLDevice home = q.device;
  p.on_cpu = home.device_type == kDLCPU;
  require_on_device(q, "q", home, false);
  p.device_ordinal = q.device.device_id;
  if (q.shape[0] < 0) fail("q dimension 0 (batch) must be >= 0, got " + std::to_string(q.shape[0]));
  if (has_token_dim && (q_seqlen < SpecLimits::kMinQSeqlen || q_seqlen > SpecLimits::kMaxQSeqlen))
    fail("q dimension 1 (q_seqlen) = " + std::to_string(q_seqlen) + " is outside [1, 8]");
  require_positive_extent(q, "q", q.ndim - 2, "num_q_heads");
  if (out.ndim != q.ndim) fail("out must have the shape of q " + shape_text(q) + ", got " + shape_text(out));
  for (int i = 0; i < q.ndim; ++i)
    if (out.shape[i] != q.shape[i]) fail("out must have the shape of q " + shape_text(q) + ", got " + shape_text(out));
  require_dtype(out, "out", dtype_code, 16, dtype_text);
  require_on_device(out, "out", home, false);
  const auto q_strides = strides_of(q), out_strides = strides_of(out);
  require_vector_layout(q, "q", q_strides);
  require_vector_layout(out, "out", out_strides);

  // caches
  const bool nhd = options.kv_layout == KvLayout::kNHD;
  const char* cache_layout = nhd ? "NHD [num_pages, page_size, num_kv_heads, head_dim]" : "HND [num_pages, num_kv_heads, page_size, head_dim]";
  require_ndim(k_cache, "k_cache", 4, cache_layout);
  require_ndim(v_cache, "v_cache", 4, cache_layout);
  for (int i = 0; i < 4; ++i)
    if (v_cache.shape[i] != k_cache.shape[i]) fail("v_cache must have the shape of k_cache " + shape_text(k_cache) + ", got " + shape_text(v_cache));
  switch (options.kv_quant) {
    case KvQuant::kNone:
      require_dtype(k_cache, "k_cache", dtype_code, 16, dtype_text);
      require_dtype(v_cache, "v_cache", dtype_code, 16, dtype_text);
      if (options.k_scale || options.v_scale)
        fail("k_scale / v_scale are only used with an 8-bit KV cache (set DecodeOptions::kv_quant)");
      break;
    case KvQuant::kInt8:
      require_dtype(k_cache, "k_cache", kDLInt, 8, "int8 (kv_quant = int8)");
      require_dtype(v_cache, "v_cache", kDLInt, 8, "int8 (kv_quant = int8)");
      break;
    case KvQuant::kFp8E4M3:
      require_dtype(k_cache, "k_cache", kDLUInt, 8, "uint8 holding fp8 e4m3 bytes (kv_quant = fp8_e4m3)");
      require_dtype(v_cache, "v_cache", kDLUInt, 8, "uint8 holding fp8 e4m3 bytes (kv_quant = fp8_e4m3)");
      break;
  }
  require_on_device(k_cache, "k_cache", home, false);
  require_on_device(v_cache, "v_cache", home, false);
  const int page_dim = nhd ? 1 : 2, head_dim_kv = nhd ? 2 : 1;
  const int64_t num_pages = k_cache.shape[0], page_size = k_cache.shape[page_dim], num_kv_heads = k_cache.shape[head_dim_kv];
  require_positive_extent(k_cache, "k_cache", 0, "num_pages");
  if (page_size < SpecLimits::kMinPageSize || page_size > SpecLimits::kMaxPageSize)
    fail("k_cache page_size (dimension " + std::to_string(page_dim) + ") = " + std::to_string(page_size) + " is outside [1, 256]");
  require_positive_extent(k_cache, "k_cache", head_dim_kv, "num_kv_heads");
  if (k_cache.shape[3] != head_dim)
    fail("k_cache head_dim (dimension 3) = " + std::to_string(k_cache.shape[3]) + " must equal q's head_dim " + std::to_string(head_dim));
  if (num_q_heads % num_kv_heads != 0)
    fail("num_q_heads = " + std::to_string(num_q_heads) + " must be a multiple of num_kv_heads = " + std::to_string(num_kv_heads));
  const int64_t group = num_q_heads / num_kv_heads;
  if (group < SpecLimits::kMinGroup || group > SpecLimits::kMaxGroup)
    fail("GQA group num_q_heads / num_kv_heads = " + std::to_string(group) + " is outside [1, 16]");
  if (num_kv_heads > kMaxGridY) fail("num_kv_heads = " + std::to_string(num_kv_heads) + " exceeds " + std::to_string(kMaxGridY));
  const auto k_strides = strides_of(k_cache), v_strides = strides_of(v_cache);
  require_vector_layout(k_cache, "k_cache", k_strides);
  require_vector_layout(v_cache, "v_cache", v_strides);

  // metadata
  const int64_t batch = q.shape[0];
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

  // options
  const float* sink_logits = nullptr;
  int64_t sink_logits_stride = 0;
  if (options.sink_logits) {
    const DLTensor& s = *options.sink_logits;
    require_ndim(s, "sink_logits", 1, "[num_q_heads]");
    require_dtype(s, "sink_logits", kDLFloat, 32, "float32");
    if (s.shape[0] != num_q_heads)
      fail("sink_logits has " + std::to_string(s.shape[0]) + " entries; it needs one per q head: " + std::to_string(num_q_heads));
    require_on_device(s, "sink_logits", home, false);
    sink_logits_stride = strides_of(s)[0];
    if (sink_logits_stride < 0) fail("sink_logits stride[0] must be non-negative");
    sink_logits = element_pointer<float>(s);
  }
  if (options.global_window < 0) fail("global_window = " + std::to_string(options.global_window) + " must be >= 0 (0: no sink tokens)");
  float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  if (options.softmax_scale) {
    if (!std::isfinite(*options.softmax_scale) || *options.softmax_scale == 0.f)
      fail("softmax_scale = " + std::to_string(*options.softmax_scale) + " must be finite and non-zero");
    scale = *options.softmax_scale;
  }

  p.spec.family = KernelFamily::kPagedDecode;
  p.spec.head_dim = checked_int(head_dim, "head_dim");
  p.spec.page_size = static_cast<int>(page_size);
  p.spec.kv_layout = options.kv_layout;
  p.spec.q_seqlen = static_cast<int>(q_seqlen);
  p.spec.group = static_cast<int>(group);
  p.spec.local_window = options.local_window > 0;
  p.spec.global_window = options.global_window > 0;
  p.spec.sink_logits = sink_logits != nullptr;
  p.spec.gqa = options.gqa;
  p.spec.kv_quant = options.kv_quant;
  p.spec.validate();
  if (options.kv_quant != KvQuant::kNone) {
    const ScaleView k_scale = describe_scale(options.k_scale, "k_scale", home, num_kv_heads, head_dim);
    const ScaleView v_scale = describe_scale(options.v_scale, "v_scale", home, num_kv_heads, head_dim);
    p.params.k_scale = k_scale.data;
    p.params.k_scale_stride_head = k_scale.stride_head;
    p.params.k_scale_stride_channel = k_scale.stride_channel;
    p.params.v_scale = v_scale.data;
    p.params.v_scale_stride_head = v_scale.stride_head;
    p.params.v_scale_stride_channel = v_scale.stride_channel;
  }
  p.batch = checked_int(batch, "batch");
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(num_kv_heads);
  const int max_pages = checked_int(block_table.shape[1], "block_table max_pages_per_seq");
  p.max_kv_len = checked_int(int64_t(max_pages) * page_size, "max_pages_per_seq * page_size");

  PagedDecodeParams& a = p.params;
  a.q = element_pointer<char>(q);
  a.k_cache = element_pointer<char>(k_cache);
  a.v_cache = element_pointer<char>(v_cache);
  a.out = const_cast<char*>(element_pointer<char>(out));
  a.block_table = element_pointer<int>(block_table);
  a.seq_lens = element_pointer<int>(seq_lens);
  a.q_stride_batch = q_strides[0];
  a.q_stride_token = has_token_dim ? q_strides[1] : 0;
  a.q_stride_head = q_strides[q.ndim - 2];
  a.out_stride_batch = out_strides[0];
  a.out_stride_token = has_token_dim ? out_strides[1] : 0;
  a.out_stride_head = out_strides[out.ndim - 2];
  a.k_stride_page = k_strides[0];
  a.k_stride_token = k_strides[page_dim];
  a.k_stride_head = k_strides[head_dim_kv];
  a.v_stride_page = v_strides[0];
  a.v_stride_token = v_strides[page_dim];
  a.v_stride_head = v_strides[head_dim_kv];
  a.block_table_stride_batch = bt_strides[0];
  a.block_table_stride_page = bt_strides[1];
  a.seq_lens_stride = sl_strides[0];
  a.sink_logits = sink_logits;
  a.sink_logits_stride = sink_logits_stride;
  a.batch = p.batch;
  a.num_kv_heads = p.num_kv_heads;
  a.num_pages = checked_int(num_pages, "num_pages");
  a.max_pages_per_seq = max_pages;
  a.local_window = options.local_window > 0 ? options.local_window : 0;
  a.global_window = options.global_window;
  constexpr float kLog2e = 1.4426950408889634f;
  a.scale_log2 = scale * kLog2e;
  a.num_splits = 1;

  const auto host_readable = [](const DLTensor& t) { return t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost; };
  p.host_metadata = host_readable(seq_lens) && host_readable(block_table);
  if (p.host_metadata) validate_host_metadata(p, block_table, seq_lens);
  return p;
}

int visible_kv_upper_bound(const DecodeProblem& problem) {
  const PagedDecodeParams& a = problem.params;
  int64_t bound = problem.max_kv_len;
  if (a.local_window > 0)
    bound = std::min<int64_t>(bound, int64_t(a.local_window) + problem.spec.q_seqlen - 1 + a.global_window);
  return static_cast<int>(bound);
}

}  // namespace swajit
