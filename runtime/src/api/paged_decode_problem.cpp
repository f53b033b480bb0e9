#include "paged_decode_problem.hpp"

#include "tensor_checks.hpp"

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace swajit {
namespace {

constexpr int64_t kMaxGridY = 65535;  // CUDA's limit on gridDim.y (kv heads)

// With host-readable metadata, the values the kernel would otherwise only flag are rejected before launch.
void validate_host_metadata(const DecodeProblem& p, const DLTensor& block_table, const DLTensor& seq_lens) {
  const int64_t sl_stride = strides_of(seq_lens)[0];
  const int* seq = element_pointer<int>(seq_lens);
  for (int b = 0; b < p.batch; ++b) {
    const int len = seq[b * sl_stride];
    if (len < 0 || (len > 0 && len < p.spec.q_seqlen))
      fail("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) + " must be 0 or >= q_seqlen = " + std::to_string(p.spec.q_seqlen));
    require_sequence_pages(block_table, b, len, p.spec.page_size, p.params.num_pages);
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
  p.spec.dtype = attention_dtype(q);
  const char* dtype_text = dtype_name(p.spec.dtype);
  const DLDataTypeCode dtype_code = dlpack_code(p.spec.dtype);
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
  const KvView kv = describe_paged_kv(k_cache, v_cache, options.kv_layout, options.kv_quant, p.spec.dtype, home, head_dim);
  const int64_t page_size = kv.page_size, num_kv_heads = kv.num_kv_heads;
  const int group = gqa_group(num_q_heads, num_kv_heads);
  if (num_kv_heads > kMaxGridY) fail("num_kv_heads = " + std::to_string(num_kv_heads) + " exceeds " + std::to_string(kMaxGridY));

  // metadata
  const int64_t batch = q.shape[0];
  const PagedMetadataView meta = describe_paged_metadata(block_table, seq_lens, batch, home);

  // options
  const SinkView sinks = describe_sink_logits(options.sink_logits, num_q_heads, home);
  require_global_window(options.global_window);
  const float scale_log2 = softmax_scale_log2(options.softmax_scale, head_dim);

  AttentionCall call = call_from_options(options, p.spec.dtype, checked_int(head_dim, "head_dim"), group, sinks.data != nullptr);
  call.page_size = static_cast<int>(page_size);
  call.q_seqlen = static_cast<int>(q_seqlen);
  p.spec = paged_decode_kernel_spec(call);
  p.call = call;
  set_kv_scales(p.params, options.kv_quant, options.k_scale, options.v_scale, home, num_kv_heads, head_dim, "DecodeOptions");
  p.batch = checked_int(batch, "batch");
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(num_kv_heads);
  const int max_pages = checked_int(block_table.shape[1], "block_table max_pages_per_seq");
  p.max_kv_len = checked_int(int64_t(max_pages) * page_size, "max_pages_per_seq * page_size");

  PagedDecodeParams& a = p.params;
  set_paged_call_fields(a, q, q_strides, out, out_strides, kv, block_table, seq_lens, meta, sinks);
  a.k_cache = element_pointer<char>(k_cache);
  a.v_cache = element_pointer<char>(v_cache);
  a.batch = p.batch;
  a.num_kv_heads = p.num_kv_heads;
  a.local_window = call.local_window;
  a.global_window = options.global_window;
  a.scale_log2 = scale_log2;
  a.num_splits = 1;

  p.host_metadata = host_readable(seq_lens) && host_readable(block_table);
  if (p.host_metadata) {
    validate_host_metadata(p, block_table, seq_lens);
    const int64_t stride = strides_of(seq_lens)[0];
    for (int b = 0; b < batch; ++b) p.host_seq_lens.push_back(element_pointer<int>(seq_lens)[b * stride]);
  } else if (options.host_seq_lens) {
    p.host_seq_lens.assign(options.host_seq_lens, options.host_seq_lens + batch);
  }
  return p;
}

int visible_kv_bound(int64_t addressable_tokens, int local_window, int q_seqlen, int global_window) {
  int64_t bound = addressable_tokens;
  if (local_window > 0) bound = std::min<int64_t>(bound, int64_t(local_window) + q_seqlen - 1 + global_window);
  return static_cast<int>(bound);
}

int visible_kv_upper_bound(const DecodeProblem& problem) {
  const PagedDecodeParams& a = problem.params;
  return visible_kv_bound(problem.max_kv_len, a.local_window, problem.spec.q_seqlen, a.global_window);
}

}  // namespace swajit
