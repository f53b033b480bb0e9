// The sparse top-k decode entry point: argument validation, then the CUDA kernel (templates/sparse_decode.cuh) or the
// CPU backend (templates/sparse_decode_cpu.cpp).
#include <algorithm>
#include <climits>
#include <limits>
#include <optional>
#include <cstdio>
#include <string>
#include <vector>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "cuda_driver.hpp"
#include "decode_plan.hpp"
#include "dependent_launch.hpp"
#include "family.hpp"
#include "kernel_cache.hpp"
#include "sparse_decode_problem.hpp"
#include "stream_scratch.hpp"
#include "tensor_checks.hpp"

namespace swajit {
namespace {

// indices int32 or score_bias float32 [batch, q_seqlen, topk]; returns its strides.
std::vector<int64_t> describe_selection_tensor(const DLTensor& t, const char* name, DLDataTypeCode code, const char* dtype,
                                               int64_t batch, int64_t q_seqlen, int64_t topk, const DLDevice& home) {
  require_ndim(t, name, 3, "[batch, q_seqlen, topk]");
  require_dtype(t, name, code, 32, dtype);
  if (t.shape[0] != batch || t.shape[1] != q_seqlen || (topk >= 0 && t.shape[2] != topk))
    fail(std::string(name) + " must be [batch = " + std::to_string(batch) + ", q_seqlen = " + std::to_string(q_seqlen) +
         ", topk" + (topk >= 0 ? " = " + std::to_string(topk) : std::string()) + "], got " + shape_text(t));
  require_on_device(t, name, home, true);
  const auto strides = strides_of(t);
  for (int i = 0; i < 3; ++i)
    if (strides[i] < 0) fail(std::string(name) + " stride[" + std::to_string(i) + "] must be non-negative");
  return strides;
}

}  // namespace

SparseDecodeProblem describe_sparse_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor* v_cache,
                                           const DLTensor& block_table, const DLTensor& seq_lens,
                                           const DLTensor& indices, const DLTensor& out, const SparseDecodeOptions& options) {
  SparseDecodeProblem p;
  if (q.ndim != 3 && q.ndim != 4)
    fail("q must be 4-D [batch, q_seqlen, num_q_heads, head_dim] or 3-D [batch, num_q_heads, head_dim], got " +
         std::to_string(q.ndim) + "-D " + shape_text(q));
  const bool has_token_dim = q.ndim == 4;
  const int64_t batch = q.shape[0], q_seqlen = has_token_dim ? q.shape[1] : 1;
  const int64_t num_q_heads = q.shape[q.ndim - 2], head_dim = q.shape[q.ndim - 1];
  const DType dtype = attention_dtype(q);
  if (q.device.device_type != kDLCPU && q.device.device_type != kDLCUDA && q.device.device_type != kDLCUDAManaged)
    fail("q is on device type '" + device_name(q.device.device_type) + "'; supported: 'cpu', 'cuda', 'cuda_managed'");
  const DLDevice home = q.device;
  p.on_cpu = home.device_type == kDLCPU;
  p.device_ordinal = home.device_id;
  require_on_device(q, "q", home, false);
  if (batch < 0) fail("q dimension 0 (batch) must be >= 0, got " + std::to_string(batch));
  if (q_seqlen < SpecLimits::kMinQSeqlen || q_seqlen > SpecLimits::kMaxQSeqlen)
    fail("q dimension 1 (q_seqlen) = " + std::to_string(q_seqlen) + " is outside [1, 8]");
  require_positive_extent(q, "q", q.ndim - 2, "num_q_heads");
  const bool shared_kv = v_cache == nullptr;
  const int64_t head_dim_v = out.ndim == q.ndim ? out.shape[out.ndim - 1] : -1;
  if (out.ndim != q.ndim) fail("out must have " + std::to_string(q.ndim) + " dimensions like q, got " + shape_text(out));
  for (int i = 0; i + 1 < q.ndim; ++i)
    if (out.shape[i] != q.shape[i])
      fail("out must be q's shape " + shape_text(q) + " with head_dim_v as its last dimension, got " + shape_text(out));
  if (!shared_kv && head_dim_v != head_dim)
    fail("out's last dimension (head_dim_v) = " + std::to_string(head_dim_v) + " must equal head_dim = " +
         std::to_string(head_dim) + " with a separate v_cache (pass v_cache = null for a shared K/V cache)");
  require_dtype(out, "out", dlpack_code(dtype), 16, dtype_name(dtype));
  require_on_device(out, "out", home, false);
  const auto q_strides = strides_of(q), out_strides = strides_of(out);
  require_vector_layout(q, "q", q_strides);
  require_vector_layout(out, "out", out_strides);

  const KvView kv = describe_paged_kv(k_cache, shared_kv ? k_cache : *v_cache, options.kv_layout, options.kv_quant,
                                      dtype, home, head_dim);
  const int group = gqa_group(num_q_heads, kv.num_kv_heads, SpecLimits::kMaxSparseGroup);
  const PagedMetadataView meta = describe_paged_metadata(block_table, seq_lens, batch, home);
  const auto index_strides = describe_selection_tensor(indices, "indices", kDLInt, "int32", batch, q_seqlen, -1, home);
  const int64_t topk = indices.shape[2];
  if (topk < 1 || topk > SpecLimits::kMaxTopk)
    fail("indices dimension 2 (topk) = " + std::to_string(topk) + " is outside [1, " + std::to_string(SpecLimits::kMaxTopk) + "]");
  std::vector<int64_t> bias_strides(3, 0);
  if (options.score_bias)
    bias_strides = describe_selection_tensor(*options.score_bias, "score_bias", kDLFloat, "float32", batch, q_seqlen, topk, home);
  const SinkView sinks = describe_sink_logits(options.sink_logits, num_q_heads, home);
  if (options.global_window != 0)
    throw Error(ErrorCode::kUnsupported, "global_window = " + std::to_string(options.global_window) +
                                             ": sparse_decode has no global window (select the sink tokens in the indices); use 0");
  const float scale_log2 = softmax_scale_log2(options.softmax_scale, head_dim);

  AttentionCall call = call_from_options(options, dtype, checked_int(head_dim, "head_dim"), group, sinks.data != nullptr);
  call.page_size = static_cast<int>(kv.page_size);
  call.q_seqlen = static_cast<int>(q_seqlen);
  call.topk = static_cast<int>(topk);
  call.head_dim_v = checked_int(head_dim_v, "head_dim_v");
  call.shared_kv = shared_kv;
  call.score_bias = options.score_bias != nullptr;
  p.spec = sparse_decode_kernel_spec(call);
  p.call = call;
  p.batch = checked_int(batch, "batch");
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = checked_int(kv.num_kv_heads, "num_kv_heads");

  SparseDecodeParams& a = p.params;
  set_kv_scales(a, options.kv_quant, options.k_scale, options.v_scale, home, kv.num_kv_heads, head_dim, "SparseDecodeOptions");
  set_paged_call_fields(a, q, q_strides, out, out_strides, kv, block_table, seq_lens, meta, sinks);
  a.k_cache = element_pointer<char>(k_cache);
  a.v_cache = shared_kv ? a.k_cache : element_pointer<char>(*v_cache);
  a.indices = element_pointer<int>(indices);
  a.score_bias = options.score_bias ? element_pointer<float>(*options.score_bias) : nullptr;
  a.indices_stride_batch = index_strides[0];
  a.indices_stride_token = index_strides[1];
  a.indices_stride_slot = index_strides[2];
  a.bias_stride_batch = bias_strides[0];
  a.bias_stride_token = bias_strides[1];
  a.bias_stride_slot = bias_strides[2];
  a.batch = p.batch;
  a.num_kv_heads = p.num_kv_heads;
  checked_int(int64_t(a.max_pages_per_seq) * kv.page_size, "max_pages_per_seq * page_size");
  a.topk = call.topk;
  a.local_window = call.local_window;
  a.scale_log2 = scale_log2;
  a.num_splits = 1;
  p.host_metadata = host_readable(seq_lens) && host_readable(block_table) && host_readable(indices);
  // Host-readable lengths and pages are rejected before the call, as decode does; indices stay the kernel's to report
  // (per query row, which is what a GPU caller sees too).
  if (host_readable(seq_lens) && host_readable(block_table))
    for (int b = 0; b < p.batch; ++b) {
      const int len = element_pointer<int>(seq_lens)[b * meta.seq_lens_stride];
      if (len < 0 || (len > 0 && len < q_seqlen))
        fail("seq_lens[" + std::to_string(b) + "] = " + std::to_string(len) + " must be 0 or >= q_seqlen = " + std::to_string(q_seqlen));
      require_sequence_pages(block_table, b, len, call.page_size, a.num_pages);
    }
  return p;
}

namespace {

#ifdef SWAJIT_HAVE_CPU_BACKEND
// What the CPU kernel's guards found, as decode's device-side argument errors read.
std::string describe_sparse_status(int bits, int batch_index) {
  std::string what;
  if (bits & kSparseSeqLenBelowQSeqlen) what += " a seq_lens value is negative or below q_seqlen (and not 0);";
  if (bits & kSparseSeqLenOverCapacity) what += " a seq_lens value exceeds max_pages_per_seq * page_size;";
  if (bits & kSparsePageOutOfRange) what += " a block_table entry a query reads is outside [0, num_pages);";
  if (bits & kSparseIndexOutOfRange) what += " an indices value is outside [-1, seq_lens[b]);";
  return "swajit found invalid device-side arguments (first at batch index " + std::to_string(batch_index) + "):" +
         what + " those query rows were written as zeros";
}

CpuDecodeConfig plan_cpu_sparse(const SparseDecodeProblem& p, const SparseDecodeOptions& options) {
  if (options.cpu_config) {
    options.cpu_config->validate(p.spec);
    return *options.cpu_config;
  }
  constexpr int kItemsPerThread = 4;   // enough items to balance rows of different lengths across threads
  constexpr int kMinSlotsPerSplit = 256;  // below this the merge costs more than the balance buys
  CpuDecodeConfig c;
  c.threads = hardware_threads();
  const int pairs = std::max(1, p.batch * p.num_kv_heads);
  const int candidates = p.params.topk + (p.call.local_window > 0 ? p.call.local_window : 0);
  c.num_splits = std::clamp((kItemsPerThread * c.threads + pairs - 1) / pairs, 1, std::max(1, candidates / kMinSlotsPerSplit));
  return c;
}

void run_cpu_sparse(SparseDecodeProblem& p, const CpuDecodeConfig& config) {
  const LoadedCpuKernel& kernel = cpu_decode_kernel(p.spec, config);
  const int threads = config.threads > 0 ? config.threads : hardware_threads();
  SparseDecodeParams& a = p.params;
  a.num_splits = config.num_splits;
  int status[2] = {0, INT_MAX};
  a.status = status;
  const size_t slots = size_t(p.batch) * p.num_kv_heads * config.num_splits * p.spec.q_seqlen * p.spec.group;
  std::vector<float> partial_out(config.num_splits > 1 ? slots * p.spec.head_dim_v : 0);
  std::vector<float> partial_lse(config.num_splits > 1 ? slots : 0);
  a.partial_out = partial_out.data();
  a.partial_lse = partial_lse.data();
  run_cpu_items(kernel, &a, p.batch * p.num_kv_heads, config.num_splits, config.num_splits > 1, threads);
  if (status[0] != 0) throw Error(ErrorCode::kDeviceArgument, describe_sparse_status(status[0], status[1]));
}
#endif

}  // namespace

SparseDecodeConfig sparse_decode_heuristic(const KernelSpec& spec, int max_shared_bytes, bool tensor_cores) {
  SparseDecodeConfig c;
  c.mma = tensor_cores && spec.kv_quant == KvQuant::kNone;  // 8-bit caches run on CUDA cores
  constexpr int kOneTileGroup = 16, kOneWarpColumns = 128;   // what token_split takes (SparseDecodeConfig)
  c.token_split = c.mma && spec.group <= kOneTileGroup && spec.head_dim_v <= kOneWarpColumns;
  constexpr int kMinBlockN = 32;
  while (c.block_n > kMinBlockN && sparse_decode_geometry(spec, c).shared_bytes > max_shared_bytes) c.block_n /= 2;
  return c;
}

SparseDecodeConfig sparse_decode_heuristic(const KernelSpec& spec, const DeviceInfo& device, bool tensor_cores) {
  const SparseDecodeConfig general = sparse_decode_heuristic(spec, device.max_shared_per_block_optin, tensor_cores);
  // The MLA kernel where its 64-row blocks are more than half q heads (DeepSeek: 64..128 heads over one latent head).
  constexpr int kMlaMinGroup = 33;
  SparseDecodeConfig mla = general;
  mla.block_n = 64;
  mla.stages = 2;
  mla.mla = true;
  const bool mla_shape = spec.shared_kv && spec.head_dim == 576 && spec.head_dim_v == 512 && spec.group >= kMlaMinGroup;
  if (!general.mma || general.token_split || !mla_shape || device.arch() != "sm_90a" ||
      sparse_decode_geometry(spec, mla).shared_bytes > device.max_shared_per_block_optin)
    return general;
  return mla;
}

std::string sparse_bucket_key(const SparseDecodeProblem& p) {
  const auto pow2 = [](int64_t x) {
    int64_t r = 1;
    while (r < x) r *= 2;
    return r;
  };
  const int candidates = p.params.topk + std::max(0, p.call.local_window);
  return "bh" + std::to_string(pow2(int64_t(p.batch) * p.num_kv_heads)) + "_n" + std::to_string(pow2(candidates));
}

// The config for a CUDA call: forced, else the tuning database's winner for (device, spec, bucket) (tuned now on a
// miss when the policy asks), else a heuristic from the device's limits.
SparseDecodePlan plan_sparse_decode(const SparseDecodeProblem& p, const SparseDecodeOptions& options, const DeviceInfo& device,
                                    CUstream stream) {
  if (options.config) {
    options.config->validate(p.spec);
    return {*options.config, SparseDecodePlan::Origin::kForced};
  }
  const TuningPolicy policy = resolve_tuning_policy(options.tuning);
  if (policy != TuningPolicy::kHeuristic) {
    const bool may_tune = policy == TuningPolicy::kTuneOnMiss && !(stream && stream_is_capturing(stream));
    if (std::optional<SparseDecodeConfig> tuned = tuned_config<SparseDecodeConfig>(p, device, sparse_bucket_key(p), may_tune)) {
      try {
        tuned->validate(p.spec);
        return {*tuned, SparseDecodePlan::Origin::kTuned};
      } catch (const Error& e) {
        std::fprintf(stderr, "swajit: tuned sparse_decode config %s unusable for %s: %s\n", tuned->key().c_str(),
                     p.spec.key().c_str(), e.what());
      }
    }
  }
  return {sparse_decode_default_config(p, device), SparseDecodePlan::Origin::kHeuristic};
}

namespace {

// Blocks of `shared_bytes` and `threads` that fit on one SM at once (at least 1), from the device's limits.
int64_t resident_blocks_per_sm(const DeviceInfo& device, int shared_bytes, int threads) {
  const int64_t by_shared = device.max_shared_per_sm / std::max(1, shared_bytes + device.reserved_shared_per_block);
  const int64_t by_threads = device.max_threads_per_sm > 0 ? device.max_threads_per_sm / std::max(1, threads) : by_shared;
  return std::max<int64_t>(1, std::min(by_shared, by_threads));
}

// The token-split pipeline for a grid of one block per item (no splits), H200 session 7 run B2, shape a, us (the
// two-stage default in brackets):
// - a third stage where the items are long (16 tiles or more: the deeper pipeline's fill is paid rarely) or the grid
//   fits one wave of the deeper blocks (two per SM instead of three at head_dim 128): topk 2048 batch 128 279.9 (284.4)
//   at kv 32768, 284.6 (322.9) at kv 131072 (run B3: 316.1 against session 6's 323.2); batch 32 topk 512 26.5 (27.7);
// - else (short items queueing for the slots: batch 128 topk 512, where three stages of 64 rows give 97.4 (93.7))
//   32-row tiles in three stages, four blocks of two warps per SM: 92.0 (93.7), kv 131072 93.6 (94.3), and the tuner's
//   winner there in three runs (run B2: 84.3 against 87.2; run B3, this default: 83.4 against session 6's 95.1).
SparseDecodeConfig reshape_pipeline(const SparseDecodeProblem& p, const SparseDecodeConfig& c, const DeviceInfo& device) {
  constexpr int kLongItemTiles = 16;
  const std::vector<SparseDecodeConfig> pipelines = c.num_splits == 1 ? sparse_decode_pipelines(p.spec, c, device)
                                                                      : std::vector<SparseDecodeConfig>{};
  if (pipelines.empty()) return c;
  const SparseDecodeConfig& deep = pipelines[0];
  const SparseDecodeGeometry g = sparse_decode_geometry(p.spec, deep);
  const int64_t blocks = int64_t(p.batch) * p.num_kv_heads * g.row_blocks * p.spec.q_seqlen;
  const int64_t resident = int64_t(device.sm_count) * resident_blocks_per_sm(device, g.shared_bytes, g.threads);
  const int candidates = p.params.topk + (p.call.local_window > 0 ? p.call.local_window : 0);
  const int tiles = (candidates + c.block_n - 1) / c.block_n;
  if (tiles >= kLongItemTiles || blocks <= resident) return deep;
  return pipelines.size() > 1 ? pipelines[1] : c;
}

}  // namespace

std::vector<SparseDecodeConfig> sparse_decode_pipelines(const KernelSpec& spec, const SparseDecodeConfig& c,
                                                        const DeviceInfo& device) {
  constexpr int kDeepStages = 3, kNarrowBlockN = 32;
  std::vector<SparseDecodeConfig> pipelines;
  if (!c.token_split || c.stages >= kDeepStages) return pipelines;
  for (int block_n : {c.block_n, kNarrowBlockN}) {
    SparseDecodeConfig variant = c;
    variant.block_n = block_n;
    variant.stages = kDeepStages;
    if (sparse_decode_geometry(spec, variant).shared_bytes > device.max_shared_per_block_optin) break;
    pipelines.push_back(variant);
    if (block_n == kNarrowBlockN) break;  // (the heuristic's tile was already the narrow one)
  }
  return pipelines;
}

SparseDecodeConfig sparse_decode_default_config(const SparseDecodeProblem& p, const DeviceInfo& device) {
  SparseDecodeConfig c = sparse_decode_heuristic(p.spec, device);
  c.num_splits = sparse_decode_splits(p, c, device);
  // MLA where each block keeps most of its selection (batch 32 and up): the warp-specialized kernel, 64-token tiles
  // (H200 session 7 runs B and B2, topk 2048, beside session 6's default in the same run: batch 128 199.6-199.9 us
  // against 205.0-206.0, with a 128-token window and sinks 210.3-211.3 against 218.1-218.3, batch 32 67.5 / 70.1
  // against 67.9 / 71.5); the two-warpgroup kernel stays where many short splits fill the GPU (batch 1: 16.6 against
  // the warp-specialized 17.7).
  constexpr int kMlaWarpSpecializedMaxSplits = 2;
  if (c.mla && c.num_splits <= kMlaWarpSpecializedMaxSplits) {
    c.warp_specialize = true;
    c.num_splits = sparse_decode_splits(p, c, device);
  }
  return reshape_pipeline(p, c, device);
}

// Splits: as many as keep the grid within one wave of resident blocks (the resident blocks per SM from the device's
// shared memory and threads and the kernel's geometry), each split keeping at least a pipeline's depth of tiles unless
// the grid still fits one block per SM. More
// blocks than fit at once only queue behind the first wave, and a split of fewer tiles than stages cannot overlap its
// gathers: H200 run B2 of session 6 (the tuner, topk 2048): batch 32 one split 79.4 us against the old wave model's 3
// at 92.4; batch 1 16 splits of two tiles 10.6 against 32 of one at 13.7.
int sparse_decode_splits(const SparseDecodeProblem& p, const SparseDecodeConfig& config, const DeviceInfo& device) {
  constexpr int kMaxSplits = 32;  // the merge reads every split's partial of a row: keep that list short
  const SparseDecodeGeometry g = sparse_decode_geometry(p.spec, config);
  const int64_t blocks = std::max<int64_t>(1, int64_t(p.batch) * p.num_kv_heads * g.row_blocks * p.spec.q_seqlen);
  const int64_t resident = int64_t(device.sm_count) * resident_blocks_per_sm(device, g.shared_bytes, g.threads);
  const int candidates = p.params.topk + (p.call.local_window > 0 ? p.call.local_window : 0);
  const int tiles = (candidates + config.block_n - 1) / config.block_n;
  // Short selections: one block per SM may take a single tile (batch 1 topk 512: 8 splits 8.5 us, 4 of two tiles 9.2).
  const int64_t per_split = std::max<int64_t>(int64_t(device.sm_count) / blocks, tiles / std::max(1, config.stages));
  const int64_t most = std::min<int64_t>({kMaxSplits, std::max(1, tiles), std::max<int64_t>(1, per_split)});
  return int(std::clamp<int64_t>(resident / blocks, 1, most));
}

namespace {

// Blocks of the loaded kernel resident on the whole device at once (its registers and shared memory per SM).
int64_t resident_blocks(const LoadedSparseDecodeKernel& kernel, const DeviceInfo& device) {
  int blocks_per_sm = 0;
  cuda::check(cuda::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel.main, kernel.geometry.threads,
                                                                         kernel.geometry.shared_bytes),
              "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  return int64_t(device.sm_count) * std::max(1, blocks_per_sm);
}

void run_cuda_sparse(SparseDecodeProblem& p, const SparseDecodeOptions& options, CUstream stream) {
  cuda::ScopedDeviceContext scope(p.device_ordinal);
  const DeviceInfo& device = cuda_device(p.device_ordinal);
  require_cuda_kernels(device, "sparse_decode");
  const SparseDecodeConfig config = plan_sparse_decode(p, options, device, stream).config;
  const LoadedSparseDecodeKernel& kernel = cuda_kernel(p.spec, config, device, scope.context());
  if (config.mla && device.arch() != "sm_90a")  // (built, but it would trap: its wgmma exists on sm_90a only)
    throw Error(ErrorCode::kUnsupported, "config " + config.key() + " (the MLA kernel) uses wgmma, which needs sm_90a; " +
                                             device.name + " is " + device.arch());
  const SparseDecodeGeometry& g = kernel.geometry;
  // Split scratch, this call's own in stream order: fp32 partial outputs, then log2-sum-exps.
  const size_t slots = config.num_splits > 1 ? size_t(p.batch) * p.num_kv_heads * config.num_splits * g.rows : 0;
  const size_t out_bytes = slots * p.spec.head_dim_v * sizeof(float);
  StreamWorkspace workspace(scope.context(), stream, out_bytes + slots * sizeof(float));
  SparseDecodeParams& a = p.params;
  a.num_splits = config.num_splits;
  a.status = stream_status(scope.context(), stream);
  a.partial_out = slots ? workspace.data() : nullptr;
  a.partial_lse = slots ? reinterpret_cast<float*>(workspace.data() + out_bytes) : nullptr;
  void* args[] = {&a};
  constexpr int64_t kMaxGridYZ = 65535;  // CUDA's limit on gridDim.y and gridDim.z
  if (int64_t(p.num_kv_heads) > kMaxGridYZ || int64_t(p.spec.q_seqlen) * config.num_splits > kMaxGridYZ)
    fail("num_kv_heads or q_seqlen x num_splits exceeds CUDA's grid limit of 65535");
  const unsigned batch = unsigned(p.batch);
  // x: a sequence's q head blocks next to each other (templates/sparse_decode.cuh, block_work); persistent: one block
  // per resident slot, taking the items of that grid in turn
  const int64_t items = int64_t(p.batch) * g.row_blocks * p.num_kv_heads * p.spec.q_seqlen * config.num_splits;
  if (config.persistent && items > std::numeric_limits<int>::max())  // the kernel numbers the items with int
    fail("batch x num_kv_heads x q_seqlen x num_splits = " + std::to_string(items) + " exceeds 2^31 - 1 for a persistent config");
  const cuda::GridShape grid =
      config.persistent ? cuda::GridShape{unsigned(std::min(items, resident_blocks(kernel, device))), 1, 1}
                        : cuda::GridShape{unsigned(int64_t(p.batch) * g.row_blocks), unsigned(p.num_kv_heads),
                                          unsigned(p.spec.q_seqlen * config.num_splits)};
  cuda::launch_dependent(device, stream, kernel.main, grid, g.threads, g.shared_bytes, args, "cuLaunchKernelEx(sparse_decode)");
  if (config.num_splits > 1)
    cuda::launch_dependent(device, stream, kernel.merge, {batch, unsigned(p.num_kv_heads), unsigned(g.rows)},
                           g.merge_threads, 0, args, "cuLaunchKernelEx(sparse_decode merge)");
  if (options.check_device_args) check_device_errors(p.device_ordinal, stream);
}

}  // namespace

void sparse_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor* v_cache, const DLTensor& block_table,
                   const DLTensor& seq_lens, const DLTensor& indices, const DLTensor& out, CUstream stream,
                   const SparseDecodeOptions& options) {
  SparseDecodeProblem p = describe_sparse_decode(q, k_cache, v_cache, block_table, seq_lens, indices, out, options);
  if (p.batch == 0) return;
  if (!p.on_cpu) return run_cuda_sparse(p, options, stream);
#ifdef SWAJIT_HAVE_CPU_BACKEND
  run_cpu_sparse(p, plan_cpu_sparse(p, options));
#else
  throw Error(ErrorCode::kUnsupported, "the tensors are on the CPU, but this build of swajit has no CPU backend "
                                       "(configure with -DSWAJIT_CPU_BACKEND=ON)");
#endif
}

}  // namespace swajit
