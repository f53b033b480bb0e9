#include <algorithm>
#include <climits>
#include <cstdlib>

#include <cstdio>
#include <vector>

#include "cuda_driver.hpp"
#include "decode_plan.hpp"
#include "kernel_cache.hpp"
#include "kv_tensor_map.hpp"
#include "prefill_problem.hpp"
#include "stream_scratch.hpp"
#include "tensor_checks.hpp"
#include "family.hpp"
#include "tuner.hpp"
#include "tuning_store.hpp"

namespace swajit {
namespace {

constexpr int64_t kMaxGridZ = 65535;       // CUDA's limit on gridDim.z (sequences)
constexpr int64_t kMaxGridX = INT32_MAX;   // CUDA's limit on gridDim.x ((query tile, q head) pairs)

// One K/V tensor of the call as the TMA engine sees it (the page fields are set by the encoder).
KvTensorView kv_view(const PrefillProblem& p, const void* base, int64_t stride_page, int64_t stride_token,
                     int64_t stride_head) {
  KvTensorView v;
  v.base = base, v.stride_page = stride_page, v.stride_token = stride_token, v.stride_head = stride_head;
  v.element_bytes = p.spec.kv_quant == KvQuant::kNone ? 2 : 1;  // 8-bit K/V: stored bytes (widened in shared memory)
  v.bf16 = p.spec.dtype == DType::kBF16;
  v.head_dim = p.spec.head_dim, v.num_kv_heads = p.num_kv_heads;
  return v;
}

// int32 [batch + 1] offsets.
int64_t describe_offsets(const DLTensor& t, const char* name, const DLDevice& home) {
  require_ndim(t, name, 1, "[batch + 1]");
  require_dtype(t, name, kDLInt, 32, "int32");
  require_on_device(t, name, home, true);
  if (t.shape[0] < 1) fail(std::string(name) + " must have batch + 1 >= 1 entries, got " + shape_text(t));
  const int64_t stride = strides_of(t)[0];
  if (stride < 0) fail(std::string(name) + " stride[0] must be non-negative");
  return stride;
}

// Host copies of int32 vectors, read through their strides.
std::vector<int> host_ints(const DLTensor& t, int64_t count, int64_t stride) {
  std::vector<int> values(count);
  const int* data = element_pointer<int>(t);
  for (int64_t i = 0; i < count; ++i) values[i] = data[i * stride];
  return values;
}

void require_offsets_valid(const std::vector<int>& offsets, const char* name, int total, const char* total_name) {
  if (offsets[0] < 0) fail(std::string(name) + "[0] = " + std::to_string(offsets[0]) + " must be >= 0");
  for (size_t b = 1; b < offsets.size(); ++b)
    if (offsets[b] < offsets[b - 1] || offsets[b] > total)
      fail(std::string(name) + "[" + std::to_string(b) + "] = " + std::to_string(offsets[b]) + " must lie in [" +
           std::to_string(offsets[b - 1]) + ", " + total_name + " = " + std::to_string(total) + "]");
}

// With host-readable metadata, everything the kernel would otherwise only flag is rejected before launch, and the
// grid gets the exact longest query run.
void validate_host_metadata(PrefillProblem& p, const DLTensor& cu_seqlens_q, const DLTensor* cu_seqlens_k,
                            const DLTensor* block_table, const DLTensor* seq_lens) {
  const PrefillParams& a = p.params;
  const std::vector<int> q_offsets = host_ints(cu_seqlens_q, p.batch + 1, a.cu_seqlens_q_stride);
  require_offsets_valid(q_offsets, "cu_seqlens_q", a.total_q, "total_q");
  std::vector<int> kv_lens(p.batch);
  if (cu_seqlens_k) {
    const std::vector<int> k_offsets = host_ints(*cu_seqlens_k, p.batch + 1, a.cu_seqlens_k_stride);
    require_offsets_valid(k_offsets, "cu_seqlens_k", a.total_kv, "total_kv");
    for (int b = 0; b < p.batch; ++b) kv_lens[b] = k_offsets[b + 1] - k_offsets[b];
  } else {
    kv_lens = host_ints(*seq_lens, p.batch, a.seq_lens_stride);
  }
  int max_q_len = 0;
  for (int b = 0; b < p.batch; ++b) {
    const int q_len = q_offsets[b + 1] - q_offsets[b];
    max_q_len = std::max(max_q_len, q_len);
    if (kv_lens[b] < q_len)
      fail("sequence " + std::to_string(b) + " has " + std::to_string(q_len) + " queries but a KV length of " +
           std::to_string(kv_lens[b]) + "; the KV length includes the queries, so it must be >= the query length");
    if (block_table) require_sequence_pages(*block_table, b, kv_lens[b], p.spec.page_size, a.num_pages);
  }
  if (p.max_q_len == 0 || p.max_q_len > max_q_len) p.max_q_len = max_q_len;
}

}  // namespace

PrefillProblem describe_prefill(const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor* cu_seqlens_k,
                                const DLTensor* block_table, const DLTensor* seq_lens, const DLTensor& cu_seqlens_q,
                                const DLTensor& out, const PrefillOptions& options) {
  const bool paged = block_table != nullptr;
  PrefillProblem p;
  // q / out
  require_ndim(q, "q", 3, "[total_q, num_q_heads, head_dim]");
  p.spec.dtype = attention_dtype(q);
  if (q.device.device_type == kDLCPU)
    throw Error(ErrorCode::kUnsupported, "prefill runs on CUDA; q is on 'cpu' (the CPU backend has paged_decode only)");
  if (q.device.device_type != kDLCUDA && q.device.device_type != kDLCUDAManaged)
    fail("q is on device type '" + device_name(q.device.device_type) + "'; supported: 'cuda', 'cuda_managed'");
  const DLDevice home = q.device;
  p.device_ordinal = home.device_id;
  const int64_t total_q = q.shape[0], num_q_heads = q.shape[1], head_dim = q.shape[2];
  if (total_q < 0) fail("q dimension 0 (total_q) must be >= 0, got " + std::to_string(total_q));
  require_positive_extent(q, "q", 1, "num_q_heads");
  if (out.ndim != 3 || out.shape[0] != total_q || out.shape[1] != num_q_heads || out.shape[2] != head_dim)
    fail("out must have the shape of q " + shape_text(q) + ", got " + shape_text(out));
  require_dtype(out, "out", dlpack_code(p.spec.dtype), 16, dtype_name(p.spec.dtype));
  require_on_device(out, "out", home, false);
  const auto q_strides = strides_of(q), out_strides = strides_of(out);
  require_vector_layout(q, "q", q_strides);
  require_vector_layout(out, "out", out_strides);

  // K / V
  const KvView kv = paged ? describe_paged_kv(k, v, options.kv_layout, options.kv_quant, p.spec.dtype, home, head_dim)
                          : describe_contiguous_kv(k, v, options.kv_quant, p.spec.dtype, home, head_dim);
  p.spec.group = gqa_group(num_q_heads, kv.num_kv_heads);

  // metadata
  const int64_t cu_q_stride = describe_offsets(cu_seqlens_q, "cu_seqlens_q", home);
  const int64_t batch = cu_seqlens_q.shape[0] - 1;
  if (batch > kMaxGridZ) fail("batch = " + std::to_string(batch) + " exceeds " + std::to_string(kMaxGridZ));
  PrefillParams& a = p.params;
  if (paged) {
    const PagedMetadataView meta = describe_paged_metadata(*block_table, *seq_lens, batch, home);
    a.block_table = element_pointer<int>(*block_table);
    a.seq_lens = element_pointer<int>(*seq_lens);
    a.block_table_stride_batch = meta.block_table_stride_batch;
    a.block_table_stride_page = meta.block_table_stride_page;
    a.seq_lens_stride = meta.seq_lens_stride;
    a.max_pages_per_seq = checked_int(block_table->shape[1], "block_table max_pages_per_seq");
    a.num_pages = checked_int(kv.num_pages, "num_pages");
    checked_int(int64_t(a.max_pages_per_seq) * kv.page_size, "max_pages_per_seq * page_size");
  } else {
    if (cu_seqlens_k->ndim == 1 && cu_seqlens_k->shape[0] != cu_seqlens_q.shape[0])
      fail("cu_seqlens_k has " + std::to_string(cu_seqlens_k->shape[0]) + " entries; it must match cu_seqlens_q's " +
           std::to_string(cu_seqlens_q.shape[0]) + " (batch + 1)");
    a.cu_seqlens_k = element_pointer<int>(*cu_seqlens_k);
    a.cu_seqlens_k_stride = describe_offsets(*cu_seqlens_k, "cu_seqlens_k", home);
    a.total_kv = checked_int(kv.num_pages, "total_kv");
  }

  // options
  const SinkView sinks = describe_sink_logits(options.sink_logits, num_q_heads, home);
  require_global_window(options.global_window);
  if (options.max_q_len < 0) fail("max_q_len = " + std::to_string(options.max_q_len) + " must be >= 0 (0: derive it)");

  AttentionCall call = call_from_options(options, p.spec.dtype, checked_int(head_dim, "head_dim"), p.spec.group,
                                         sinks.data != nullptr);
  call.page_size = paged ? static_cast<int>(kv.page_size) : 0;
  call.causal = options.causal;
  p.spec = prefill_kernel_spec(call);
  p.call = call;
  set_kv_scales(a, options.kv_quant, options.k_scale, options.v_scale, home, kv.num_kv_heads, head_dim, "PrefillOptions");
  p.batch = static_cast<int>(batch);
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(kv.num_kv_heads);

  a.q = element_pointer<char>(q);
  a.k = element_pointer<char>(k);
  a.v = element_pointer<char>(v);
  a.out = const_cast<char*>(element_pointer<char>(out));
  a.cu_seqlens_q = element_pointer<int>(cu_seqlens_q);
  a.cu_seqlens_q_stride = cu_q_stride;
  a.sink_logits = sinks.data;
  a.sink_logits_stride = sinks.stride;
  a.q_stride_token = q_strides[0];
  a.q_stride_head = q_strides[1];
  a.out_stride_token = out_strides[0];
  a.out_stride_head = out_strides[1];
  set_kv_strides(a, kv);
  a.batch = p.batch;
  a.num_q_heads = p.num_q_heads;
  a.num_kv_heads = p.num_kv_heads;
  a.total_q = checked_int(total_q, "total_q");
  a.local_window = call.local_window;
  a.global_window = options.global_window;
  a.scale_log2 = softmax_scale_log2(options.softmax_scale, head_dim);

  p.max_q_len = options.max_q_len;
  p.host_metadata = host_readable(cu_seqlens_q) && (paged ? host_readable(*block_table) && host_readable(*seq_lens)
                                                          : host_readable(*cu_seqlens_k));
  if (p.host_metadata) validate_host_metadata(p, cu_seqlens_q, cu_seqlens_k, block_table, seq_lens);
  if (p.max_q_len == 0 && !p.host_metadata) p.max_q_len = a.total_q;
  p.max_q_len = std::min(p.max_q_len, a.total_q);
  return p;
}

PrefillConfig heuristic_prefill_config(const KernelSpec& spec, const DeviceInfo& device, bool tma_layout_ok) {
  // head_dim 128 on sm_90a (tools/bench/RESULTS.md, H200): warp-specialized wgmma, a producer warpgroup and
  // consumer warpgroups of 64 rows. With K/V moved by the TMA engine, FA3's tile (128 rows, 128-token tiles, 2
  // stages) won 7 of the 8 rows of the tuned grid (session 3 run D, 1.04-1.19x over 192 rows / 64 tokens / 3
  // stages); with S(t+1) issued before the softmax of t (ws2) on a persistent grid it beat ws1 on every contiguous row
  // of session 5 run E (up to 1.11x) and tied on paged ones. Where TMA boxes cannot fill a 128-token tile, the
  // 64-token one with TMA; where the K/V cannot take TMA at
  // all (pages like 7 tokens: PrefillConfig::validate_tma; strides: tma_layout_problem) the 192-row row-gather config
  // measured before TMA. 8-bit K/V at head_dim 128 takes the same tiles, its stored bytes moved by TMA and widened in
  // shared memory by producer warps, with bf16 q both MMAs in fp16 (f16_mma): session 7 run B3, kv 8, seq 8192 /
  // 32768, int8 357.1 / 384.6 TFLOP/s and fp8 382.3 / 413.6 (0.65-0.71x of bf16's 552.1 / 580.2), against 303.5 /
  // 324.1 and 314.6 / 335.5 widened to bf16 and 266-282 for the row-gather tile before (0.48-0.52x, run B). The first that is a config of the spec and fits the device's
  // shared memory wins. head_dim 64 on sm_90a where TMA applies: FA3's head_dim-64 tile, 192 rows (3 consumer
  // warpgroups) x 128 tokens, ws1 on the persistent grid (session 6 run B: 379.5 / 405.4 TFLOP/s at seq 8192 / 32768
  // against 300.7 / 309.7 for the wgmma oc2 config below; ws2 spills at 192 rows' 152 registers a consumer, and 128
  // rows with ws2 reached 347.3 / 364.8). head_dim 256 on sm_90a where TMA applies: 128 rows (two consumer
  // warpgroups) x 64-token TMA tiles, 2 stages, S(t+1) issued before the softmax of t (session 7 run B2: 600.4 TFLOP/s
  // at seq 8192 against 269.1 for the 64-row wgmma config below; FA3's 128 x 80 tile 591.1 with ws1, 539.2 with ws2);
  // the persistent grid's second Q buffer does not fit beside it. Other head_dims on sm_90a take the non-specialized
  // wgmma path with 128-row blocks (64 at head_dim 256), 64-token tiles and two blocks per SM; elsewhere mma.sync with
  // 128-token tiles, 3 stages.
  constexpr int kPagedProducerRegisters = 40;
  PrefillConfig config;
  config.block_m = spec.head_dim >= 256 ? 64 : 128;
  const auto specialized = [](int block_m, int block_n, int stages, bool tma, int mode = 1, bool persistent = false) {
    PrefillConfig c{block_m, block_n, stages, 1, true, 1, mode};
    c.tma = tma;
    c.persistent = persistent;
    return c;
  };
  std::vector<PrefillConfig> candidates;
  if (spec.head_dim == 128) {
    candidates = {specialized(128, 128, 2, true, 2, true), specialized(192, 64, 3, true), specialized(192, 64, 3, false)};
    // Paged: the consumers' block_table scan spills at 224 registers (51 local-memory instructions, 16 at 232); the
    // producer at 40 registers (232 for the consumers) measured 1.01 / 1.02x at seq 8192 / 32768 (session 7 run B3,
    // pages in order; session 5: 1.02x shuffled). 16-bit K/V only: 8-bit tiles are widened by the producer warps,
    // which spill below their 56 registers (s7-prefill8).
    if (!spec.is_contiguous_kv() && spec.kv_quant == KvQuant::kNone)
      candidates[0].producer_registers = kPagedProducerRegisters;
    // Each row's max and sum over a tile as 4 chains (16-bit K/V; session 8 run B2): seq 16384, 32 kv heads 582.2
    // against 574.4 TFLOP/s; seq 32768, 8 kv heads 597.1 against 595.9; with dynamic items and the TMA store at seq
    // 4096 / 8192 (with_item_order) 1.01-1.04x over those two alone.
    candidates[0].softmax_chains = spec.kv_quant == KvQuant::kNone;
  } else if (spec.head_dim == 64)
    candidates = {specialized(192, 128, 2, true, 1, true)};
  else if (spec.head_dim == 256)
    candidates = {specialized(128, 64, 2, true, 2)};
  // 8-bit K/V (head_dim 128 and 256): the same TMA tiles, with bf16 q both MMAs in fp16 (fp16 q: they are already);
  // on the persistent head_dim 128 tile Q.K^T on the 8-bit tensor cores from the stored K tiles (stored_k_scores; the
  // other tiles take it by hand, untimed): session 8 run B, kv 8,
  // seq 8192 / 32768, fp8 450.8 / 467.2 TFLOP/s against 383.8 / 401.9 (1.17 / 1.16x), int8 390.2 / 414.3 against
  // 370.1 / 385.8 (1.05 / 1.07x), paged 16 shuffled 1.12x / 1.04x; the same error (rel err 1.4-1.7e-3).
  constexpr int kStoredKScoresHeadDim = 128;
  if (spec.kv_quant != KvQuant::kNone && spec.dtype == DType::kBF16)
    for (PrefillConfig& c : candidates) {
      c.f16_mma = c.tma;
      c.stored_k_scores = c.f16_mma && c.persistent && spec.head_dim == kStoredKScoresHeadDim;
    }
  if (device.arch() == "sm_90a") {
    const bool tma = tma_layout_ok;  // runs_spec: 8-bit K/V needs head_dim % 128 == 0
    for (const PrefillConfig& candidate : candidates) {
      if (candidate.tma && !tma) continue;
      if (!runs_spec(candidate, spec)) continue;  // e.g. pages TMA boxes cannot fill
      if (prefill_geometry(spec, candidate).shared_bytes <= device.max_shared_per_block_optin) return candidate;
    }
  }
  if (device.arch() == "sm_90a") {
    config.wgmma = true;
    config.block_n = 64;
    config.stages = 2;
  } else {
    config.block_n = 128;
    config.stages = 3;
  }
  const auto shared = [&] { return prefill_geometry(spec, config).shared_bytes; };
  while (shared() > device.max_shared_per_block_optin && config.stages > 2) --config.stages;
  while (shared() > device.max_shared_per_block_optin && config.block_n > 16) config.block_n /= 2;
  // A second resident block per SM hides one block's softmax behind the other's MMAs, when both fit.
  // Two blocks of 256 threads leave 128 registers a thread (the register file of an SM is what one block may use),
  // enough for the output and score accumulators up to head_dim 128 with only small spills.
  constexpr int kTwoBlocks = 2, kRegistersNeeded = 128;
  const bool registers_fit =
      kTwoBlocks * prefill_geometry(spec, config).threads * kRegistersNeeded <= device.max_registers_per_block;
  if (config.wgmma && spec.head_dim <= 128 && registers_fit && kTwoBlocks * shared() <= device.max_shared_per_sm)
    config.min_blocks = kTwoBlocks;
  return config;
}

double prefill_flops(const std::vector<int>& q_lens, const std::vector<int>& kv_lens, int num_q_heads, int head_dim,
                     int local_window, int global_window, bool causal) {
  double pairs = 0;
  for (size_t b = 0; b < q_lens.size(); ++b)
    for (int i = 0; i < q_lens[b]; ++i) {
      const int64_t p = int64_t(kv_lens[b]) - q_lens[b] + i;
      const int64_t end = causal ? p + 1 : kv_lens[b];
      const int64_t window_begin = local_window > 0 ? std::max<int64_t>(0, p - local_window + 1) : 0;
      pairs += double(std::max<int64_t>(0, end - window_begin)) + double(std::min<int64_t>(global_window, window_begin));
    }
  constexpr double kFlopsPerPairAndDim = 4;  // q.k and p.v: a multiply and an add each
  return pairs * kFlopsPerPairAndDim * head_dim * num_q_heads;
}

std::string tma_layout_problem(const PrefillProblem& p) {
  const PrefillParams& a = p.params;
  return kv_tensor_map_problem(kv_view(p, a.k, a.k_stride_page, a.k_stride_token, a.k_stride_head),
                               kv_view(p, a.v, a.v_stride_page, a.v_stride_token, a.v_stride_head),
                               p.spec.is_contiguous_kv());
}

PrefillConfig with_item_order(const PrefillProblem& p, PrefillConfig config) {
  // Snake order where the causal ramp is much of the work: the longest query run at most twice the keys a query
  // sees (the whole run without a local window). Session 7 run B2 (head_dim 128, 32 q heads, window 4096): 1.10-1.11x
  // at seq 4096, 1.03-1.04x at 8192; at 16384 and 32768, where most rounds hold equal items, 0.91-1.01x. head_dim 64
  // (run B3, kv 8): 1.04x at seq 8192, 0.99x at 32768. head_dim 256 runs no persistent grid.
  // head_dim 128 with 16-bit K/V on those rows: blocks claim their items instead (dynamic_items; snake order still
  // left 6.8% of the SMs' time idle at the grid's end, session 8 run B ncu), with the rows stored by TMA (tma_store):
  // session 8 run B2 (softmax chains on all three), seq 4096: 542.2 / 547.0 TFLOP/s at 32 / 8 kv heads against snake
  // order's 495.4 / 510.1 (1.09x / 1.07x); seq 8192: 582.0 / 580.7 against 542.5 / 556.9 (1.07x / 1.04x); paged 16
  // shuffled, seq 8192: 551.6 against 538.4. Beyond the ramp, where the items are equal, dynamic items lost (seq
  // 32768: 0.90x, run B) and so did the TMA store (its consumers spill 48 bytes: 0.95-1.00x, run B2). 8-bit K/V on
  // the stored-K tile (stored_k_scores) as well (session 15 call 3, kv 8 / 32, against snake order): fp8 seq 4096
  // 412.2 / 410.6 TFLOP/s against 400.2 / 397.6, seq 8192 458.8 / 457.4 against 449.7 / 447.4, paged 16 shuffled
  // 409.2 against 398.2; int8 365.0 / 361.3 against 353.9 / 351.8, 401.2 / 399.3 against 391.4 / 391.5, paged 360.9
  // against 350.1 (softmax chains level on 8-bit: 0.99-1.00x there and at seq 32768).
  const int64_t visible = p.params.local_window > 0 ? p.params.local_window : p.max_q_len;
  const bool ramp = p.spec.causal && int64_t(p.max_q_len) <= 2 * visible;
  const bool measured_tile = p.spec.kv_quant == KvQuant::kNone || config.stored_k_scores;
  const bool claimed = config.persistent && p.spec.head_dim == 128 && measured_tile && ramp;
  config.dynamic_items = config.tma_store = claimed;
  // The stored-K tile's Q fold by the compute warps (consumer_fold) on the same rows: session 15 call 8, kv 8, V one
  // stage deeper, against the producer's fold, TFLOP/s: fp8 seq 4096 455.8 against 425.8, seq 8192 491.2 against
  // 463.9; int8 412.4 against 392.9, 445.4 against 428.7. Beyond the ramp the consumers' share of the longer items
  // costs more than the producer's pause: seq 32768 fp8 470.7 against 495.4, int8 431.0 against 442.5.
  config.consumer_fold = claimed && config.stored_k_scores;
  config.snake_order = config.persistent && !claimed && (p.spec.head_dim == 128 || p.spec.head_dim == 64) && ramp;
  return config;
}

void validate_prefill_config_for_call(const PrefillConfig& config, const PrefillProblem& p) {
  config.validate(p.spec);
  if (!config.tma) return;
  if (const std::string problem = tma_layout_problem(p); !problem.empty())
    throw Error(ErrorCode::kInvalidArgument, "config " + config.key() + " (tma) needs " + problem + "; use tma = false");
}

PrefillConfig choose_prefill_config(const PrefillProblem& p, const PrefillOptions& options, const DeviceInfo& device,
                                  CUstream stream) {
  if (options.config) {
    validate_prefill_config_for_call(*options.config, p);
    return *options.config;
  }
  const TuningPolicy policy = resolve_tuning_policy(options.tuning);
  if (policy != TuningPolicy::kHeuristic) {
    const std::string bucket = prefill_bucket_key(p.batch, p.max_q_len, p.params.local_window);
    const bool may_tune = policy == TuningPolicy::kTuneOnMiss && !(stream && stream_is_capturing(stream));
    std::optional<PrefillConfig> tuned = tuned_config<PrefillConfig>(p, device, bucket, may_tune);
    if (tuned) {
      try {
        validate_prefill_config_for_call(*tuned, p);
        return *tuned;
      } catch (const Error& e) {
        std::fprintf(stderr, "swajit: tuned prefill config %s unusable for %s, using the heuristic: %s\n",
                     tuned->key().c_str(), p.spec.key().c_str(), e.what());
      }
    }
  }
  return with_item_order(p, heuristic_prefill_config(p.spec, device, tma_layout_problem(p).empty()));
}

namespace {

// The tensor map of one K/V tensor for the TMA producer (tma configs; runtime/src/cuda/kv_tensor_map.hpp): boxes of
// 64 channels x box_rows tokens of a page (contiguous K/V: one "page" of total_kv tokens) landing in the kernel's
// 128-byte-swizzled tiles. tma_layout_problem has checked the 16-byte alignment the TMA engine needs. `page_run`: the
// run map of a packed NHD cache (PrefillParams::tma_page_runs): one "page" of num_pages x page_size tokens, boxes of
// block_n rows.
void encode_prefill_kv_map(PrefillTensorMap& map, const PrefillProblem& p, const PrefillConfig& config, const void* base,
                           int64_t stride_page, int64_t stride_token, int64_t stride_head, bool page_run = false) {
  static_assert(sizeof(PrefillTensorMap) == sizeof(CUtensorMap) && alignof(PrefillTensorMap) >= alignof(CUtensorMap));
  const bool one_page = p.spec.is_contiguous_kv() || page_run;
  KvTensorView view = kv_view(p, base, stride_page, stride_token, stride_head);
  view.tokens_per_page = p.spec.is_contiguous_kv() ? std::max(p.params.total_kv, 1)
                         : page_run                ? int64_t(p.params.num_pages) * p.spec.page_size
                                                   : p.spec.page_size;
  view.pages = one_page ? 1 : p.params.num_pages;
  view.one_run = one_page;
  const int box_rows = one_page ? config.block_n : std::min(config.block_n, p.spec.page_size);  // prefill.cuh kBoxRows
  encode_kv_tensor_map(&map, view, box_rows);
}

// The output's tensor map for the tma_store epilogue (PrefillParams::out_map): boxes of 64 channels x 64 tokens (a
// consumer warpgroup's rows of a full tile) of one q head, stored from the Q buffer's 128-byte-swizzled layout. False
// (the rows go from the registers) unless the output is 16-byte aligned with the token stride above the head stride.
bool encode_prefill_out_map(PrefillTensorMap& map, const PrefillProblem& p) {
  const PrefillParams& a = p.params;
  KvTensorView view;
  view.base = a.out;
  view.stride_token = a.out_stride_token;
  view.stride_head = a.out_stride_head;
  view.bf16 = p.spec.dtype == DType::kBF16;
  view.head_dim = p.spec.head_dim;
  view.num_kv_heads = p.num_q_heads;
  view.tokens_per_page = std::max(a.total_q, 1);
  view.pages = 1;
  view.one_run = true;
  if (view.stride_token < view.stride_head || !kv_tensor_map_problem(view, view, true).empty()) return false;
  constexpr int kWarpgroupRows = 64;
  encode_kv_tensor_map(&map, view, kWarpgroupRows);
  return true;
}

// Whether a tma call may move a tile of consecutive pages as one box (PrefillParams::tma_page_runs): a paged NHD
// cache of pages smaller than a tile, each packed right after the previous one (so token t of page g is row
// g * page_size + t of one tensor), with row coordinates that fit the kernel's int.
bool tma_page_runs_apply(const PrefillProblem& p, const PrefillConfig& config) {
  const PrefillParams& a = p.params;
  const int64_t page = p.spec.page_size;
  const auto packed = [&](int64_t stride_page, int64_t stride_token) { return stride_page == page * stride_token; };
  return !p.spec.is_contiguous_kv() && page < config.block_n && !a.tma_tokens_inside_heads &&
         packed(a.k_stride_page, a.k_stride_token) && packed(a.v_stride_page, a.v_stride_token) &&
         int64_t(a.num_pages) * page <= INT_MAX;
}

}  // namespace

// Q heads a section of the persistent grid's items spans (PrefillParams::heads_per_section). Where the K/V windows
// of all kv heads overflow half of L2, the most q heads (a divisor of num_q_heads, whole groups) whose kv heads' windows
// fit it: the blocks of a round then share those heads' K/V in L2 instead of streaming all of them from DRAM. Session
// 7 run B3 (32 kv heads, window 4096, head_dim 128, seq 16384, alternated process by process): sections of 8 heads
// 1.03x (564.9 / 566.8 against 552.2 / 550.0 TFLOP/s); seq 32768 not measured. Grouped GQA only (interleaved heads of
// a section touch every kv head), and not with snake order (the causal ramp's rows, not measured).
// SWAJIT_PREFILL_HEAD_SECTION=N overrides it with a divisor N (N = num_q_heads: one section, the order before).
int heads_per_section(const PrefillProblem& p, const PrefillConfig& config, const DeviceInfo& device) {
  if (!config.persistent) return p.num_q_heads;
  if (const char* text = std::getenv("SWAJIT_PREFILL_HEAD_SECTION")) {
    const int heads = std::atoi(text);
    return heads > 0 && p.num_q_heads % heads == 0 ? heads : p.num_q_heads;
  }
  const PrefillParams& a = p.params;
  if (config.snake_order || p.spec.gqa != GqaMapping::kGrouped || a.local_window <= 0 || device.l2_bytes <= 0)
    return p.num_q_heads;
  // a kv head's K and V window, at most the whole cache (contiguous: total_kv tokens; paged: its pages)
  const int64_t cache_tokens = p.spec.is_contiguous_kv() ? a.total_kv : int64_t(a.total_kv) * p.spec.page_size;
  const int token_bytes = p.spec.head_dim * (p.spec.kv_quant == KvQuant::kNone ? 2 : 1);  // a K or a V row
  const int64_t window_bytes = 2 * std::min<int64_t>(a.local_window, cache_tokens) * token_bytes;
  const int64_t l2_share = device.l2_bytes / 2;  // the rest: Q, the output and the pages' other traffic
  const int group = p.spec.group;
  for (int heads = p.num_q_heads; heads > group; heads -= group)
    if (p.num_q_heads % heads == 0 && int64_t(heads / group) * window_bytes <= l2_share) return heads;
  return group;
}

namespace {

void launch_prefill(PrefillProblem& p, CUstream stream, const PrefillOptions& options) {
  if (p.batch == 0 || p.max_q_len == 0) return;
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(p.device_ordinal);
  const DeviceInfo& device = cuda_device(p.device_ordinal);
  require_cuda_kernels(device, "prefill");
  const PrefillConfig config = choose_prefill_config(p, options, device, stream);
  if (config.wgmma && device.arch() != "sm_90a")
    throw Error(ErrorCode::kUnsupported, "config " + config.key() + " uses wgmma, which needs sm_90a; " + device.name +
                                             " is " + device.arch());
  const LoadedPrefillKernel& kernel = prefill_kernel(p.spec, config, device, scope.context());
  p.params.status = stream_status(scope.context(), stream);
  p.params.item_counter = config.dynamic_items ? stream_arrival_counts(scope.context(), stream, 1) : nullptr;
  if (config.tma) {  // choose_prefill_config has checked that the TMA engine can read this call's K/V
    PrefillParams& a = p.params;
    a.tma_tokens_inside_heads = a.k_stride_token < a.k_stride_head;  // HND
    encode_prefill_kv_map(a.k_map, p, config, a.k, a.k_stride_page, a.k_stride_token, a.k_stride_head);
    encode_prefill_kv_map(a.v_map, p, config, a.v, a.v_stride_page, a.v_stride_token, a.v_stride_head);
    a.tma_page_runs = tma_page_runs_apply(p, config);
    if (a.tma_page_runs) {
      encode_prefill_kv_map(a.k_run_map, p, config, a.k, a.k_stride_page, a.k_stride_token, a.k_stride_head, true);
      encode_prefill_kv_map(a.v_run_map, p, config, a.v, a.v_stride_page, a.v_stride_token, a.v_stride_head, true);
    }
  }
  p.params.tma_store_out = config.tma_store && encode_prefill_out_map(p.params.out_map, p);
  void* args[] = {&p.params};
  const int64_t q_tiles = (p.max_q_len + config.block_m - 1) / config.block_m;
  p.params.q_tiles = static_cast<int>(q_tiles);
  p.params.heads_per_section = heads_per_section(p, config, device);
  const int64_t items_per_sequence = q_tiles * p.num_q_heads;  // the kernel's (query tile, q head) order, heads fastest
  int64_t grid_x = items_per_sequence, grid_z = p.batch;
  if (config.persistent) {  // as many blocks as are resident at once, each taking items in turn
    int blocks_per_sm = 0;
    cuda::check(d.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel.main, kernel.geometry.threads,
                                                              kernel.geometry.shared_bytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor(prefill)");
    grid_x = std::min(items_per_sequence * p.batch, int64_t(std::max(1, blocks_per_sm)) * device.sm_count);
    grid_z = 1;
  }
  if (grid_x > kMaxGridX || items_per_sequence * p.batch > INT_MAX)
    throw Error(ErrorCode::kInvalidArgument, "query tiles x num_q_heads = " + std::to_string(items_per_sequence) +
                                                 " exceeds the grid limit " + std::to_string(kMaxGridX) +
                                                 "; split the call or use a larger block_m");
  cuda::check(d.cuLaunchKernel(kernel.main, static_cast<unsigned>(grid_x), 1, static_cast<unsigned>(grid_z),
                               kernel.geometry.threads, 1, 1, kernel.geometry.shared_bytes, stream, args, nullptr),
              "cuLaunchKernel(prefill)");
  if (options.check_device_args) check_device_errors(p.device_ordinal, stream);
}

}  // namespace

void prefill(const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor& cu_seqlens_q,
             const DLTensor& cu_seqlens_k, const DLTensor& out, CUstream stream, const PrefillOptions& options) {
  PrefillProblem p = describe_prefill(q, k, v, &cu_seqlens_k, nullptr, nullptr, cu_seqlens_q, out, options);
  launch_prefill(p, stream, options);
}

void paged_prefill(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache, const DLTensor& block_table,
                   const DLTensor& seq_lens, const DLTensor& cu_seqlens_q, const DLTensor& out, CUstream stream,
                   const PrefillOptions& options) {
  PrefillProblem p = describe_prefill(q, k_cache, v_cache, nullptr, &block_table, &seq_lens, cu_seqlens_q, out, options);
  launch_prefill(p, stream, options);
}

}  // namespace swajit
