#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "cuda_driver.hpp"
#include "decode_plan.hpp"
#include "dependent_launch.hpp"
#include "decode_schedule.h"
#include "decode_timeline.hpp"
#include "heuristic.hpp"
#include "family.hpp"
#include "tuner.hpp"
#include "tuning_store.hpp"
#include "kernel_cache.hpp"
#include "kv_tensor_map.hpp"
#include "paged_decode_problem.hpp"
#include "stream_scratch.hpp"
#include "tensor_checks.hpp"
#include "prefill_params.h"
#include "sparse_decode_params.h"
#include "swajit/swajit.hpp"

namespace swajit {
namespace {

constexpr size_t kWorkspaceAlignment = 256;

size_t align_up(size_t n) { return (n + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment; }

// Split-KV scratch layout: partial outputs (16-bit) and log-sum-exps (fp32) of every work entry, then the merge
// records of the schedule's blocks (templates/decode_schedule.h; PagedDecodeParams::merge_records) and the call's cut flag.
struct WorkspaceLayout {
  size_t out_bytes = 0, lse_bytes = 0, schedule_bytes = 0;
  size_t total() const { return out_bytes + lse_bytes + schedule_bytes; }
};
WorkspaceLayout workspace_layout(const DecodeProblem& p, const WorkList& work) {
  WorkspaceLayout w;
  if (work.workspace_items == 0) return w;
  const size_t slots = size_t(work.workspace_items) * p.num_kv_heads * p.spec.q_seqlen * p.spec.group;
  constexpr size_t kPartialElementBytes = 2;  // partial outputs are stored in the 16-bit dtype of q
  w.out_bytes = align_up(slots * p.spec.head_dim * kPartialElementBytes);
  w.lse_bytes = align_up(slots * sizeof(float));
  constexpr size_t kCutFlagInts = 1;  // after the records (cut_flag in templates/paged_decode.cuh)
  w.schedule_bytes = align_up((size_t(work.workspace_items / kEntriesPerBlock) * kMergeRecordInts + kCutFlagInts) * sizeof(int));
  return w;
}

WorkList chosen_work_list(const DecodeProblem& p, const DecodeOptions& options) {
  cuda::ScopedDeviceContext scope(p.device_ordinal);
  return plan_decode(p, options, cuda_device(p.device_ordinal), scope.context(), nullptr).work;
}

// Whether every sequence of the call has the same length: batch 1, or host-known lengths all equal. Such a batch
// needs no schedule (its blocks line up with its sequences: templates/decode_schedule.h's near-uniform case), so it
// takes the direct grid; device-resident lengths change every step unseen, so they keep the scheduled grid. The
// direct grid reads the lengths at run time, so a graph replayed with other lengths stays correct (only its
// balance was planned for these).
bool lengths_uniform(const DecodeProblem& p) {
  const std::vector<int>& lens = p.host_seq_lens;
  return p.batch == 1 || (!lens.empty() && std::all_of(lens.begin(), lens.end(), [&](int len) { return len == lens[0]; }));
}

// The work list for `config` (its grid decided: with_call_grid). The capacity rule balances the blocks this kernel
// keeps resident on every SM (its occupancy, from the device), one wave, clipped to the most pieces the batch's
// longest visible range (the block table's) can be cut into; a forced or tuned num_splits N > 1 takes N blocks a
// sequence. The direct grid cuts each sequence into slots / batch even pieces; the scheduled grid
// (templates/decode_schedule.h) has a block per sequence too if there are more (schedule_grid_blocks).
WorkList work_list(const DecodeProblem& p, const DecodeConfig& config, const LoadedDecodeKernel& kernel, const DeviceInfo& device) {
  int64_t slots = 0, workspace_slots = 0;
  if (config.num_splits == DecodeConfig::kSplitsFromCapacity) {
    const int max_tiles = max_visible_tiles(visible_kv_upper_bound(p), config.block_n);
    if (!schedule_worth_cutting(max_tiles)) return {};  // before the occupancy query: a direct grid needs none
    int blocks_per_sm = 0;
    cuda::check(cuda::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, kernel.main, kernel.geometry.threads,
                                                                           kernel.geometry.shared_bytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    const auto slots_for = [&](int blocks) {
      const int64_t resident = std::max<int64_t>(1, int64_t(device.sm_count) * std::max(1, blocks) / p.num_kv_heads);
      return std::min<int64_t>(resident, int64_t(p.batch) * schedule_max_pieces(max_tiles));
    };
    slots = slots_for(blocks_per_sm);
    // The other grid's kernel (other registers) may hold more blocks an SM: the workspace fits it too.
    workspace_slots = slots_for(std::max(blocks_per_sm, decode_blocks_per_sm_bound(p.spec, config, device)));
  } else if (config.num_splits > 1) {
    slots = workspace_slots = int64_t(config.num_splits) * p.batch;
  }
  if (slots == 0) return {};  // num_splits 1: the direct grid
  const int64_t workspace_items = kEntriesPerBlock * schedule_grid_blocks(workspace_slots, p.batch);
  if (workspace_items * p.num_kv_heads > std::numeric_limits<int>::max())  // the kernels index the work entries with int
    throw Error(ErrorCode::kInvalidArgument, "batch x num_kv_heads x num_splits x 2 = " + std::to_string(workspace_items * p.num_kv_heads) +
                                                 " exceeds the work list's limit of 2^31 - 1 entries; use fewer splits");
  WorkList work;
  work.workspace_items = int(workspace_items);
  if (!config.direct_grid) {
    work.slots = int(slots);
    return work;
  }
  work.sequence_pieces = int(std::max<int64_t>(1, slots / p.batch));
  if (work.sequence_pieces > 1) work.slots = p.batch * work.sequence_pieces;  // else a block per sequence: no split
  return work;
}

// SWAJIT_SCHEDULE_SNAP_SHARES (a device-run experiment: boundaries snap to a sequence's end within 1 / this of a share,
// templates/decode_schedule.h), or 0: the kernel's kSnapShares.
int schedule_snap_shares() {
  static const int value = [] {
    const char* text = std::getenv("SWAJIT_SCHEDULE_SNAP_SHARES");
    const int shares = text ? std::min(std::atoi(text), 1 << 20) : 0;
    return shares >= 2 ? shares : 0;  // below 2 a snap could cross a share (schedule_cut's premise)
  }();
  return value;
}

// The call's K (`v_cache` false) or V cache as the TMA engine sees it.
KvTensorView kv_view(const DecodeProblem& p, bool v_cache) {
  const PagedDecodeParams& a = p.params;
  KvTensorView v;
  v.base = v_cache ? a.v_cache : a.k_cache;
  v.stride_page = v_cache ? a.v_stride_page : a.k_stride_page;
  v.stride_token = v_cache ? a.v_stride_token : a.k_stride_token;
  v.stride_head = v_cache ? a.v_stride_head : a.k_stride_head;
  v.element_bytes = p.spec.kv_quant == KvQuant::kNone ? 2 : 1, v.bf16 = p.spec.dtype == DType::kBF16;
  v.head_dim = p.spec.head_dim, v.num_kv_heads = p.num_kv_heads;
  v.tokens_per_page = p.spec.page_size, v.pages = a.num_pages;
  return v;
}

// What keeps the TMA engine from reading the call's caches (producer 4), or empty.
std::string decode_tma_layout_problem(const DecodeProblem& p) { return kv_tensor_map_problem(kv_view(p, false), kv_view(p, true), false); }

// Producer 4 (TMA pages): K and V as tensor maps whose boxes are the kernel's (kTmaBoxRows tokens of a page). The
// plan has checked that the call's caches suit the TMA engine (choose_decode_config).
void encode_tma_maps(PagedDecodeParams& a, const DecodeProblem& p, const DecodeConfig& config) {
  const int box_rows = std::min(config.block_n, p.spec.page_size);  // paged_decode.cuh kTmaBoxRows
  encode_kv_tensor_map(&a.k_map, kv_view(p, false), box_rows);
  encode_kv_tensor_map(&a.v_map, kv_view(p, true), box_rows);
}

// Throws kInvalidArgument unless `config` can run this call: valid for its spec, and for producer 4 (TMA pages)
// caches the TMA engine can read (decode_tma_layout_problem); every other loader reads any layout.
void validate_for_call(const DecodeConfig& config, const DecodeProblem& p) {
  config.validate(p.spec);
  if (config.producer != DecodeConfig::kProducerTma) return;
  if (const std::string problem = decode_tma_layout_problem(p); !problem.empty())
    throw Error(ErrorCode::kInvalidArgument, "config " + config.key() + " (producer 4, TMA pages) needs " + problem +
                                                 "; use another producer");
}

// What the timeline report says of a launch (SWAJIT_DECODE_TIMELINE builds).
DecodeTimelineLaunch timeline_launch(const DecodePlan& plan, int main_blocks, int merge_blocks) {
  const LoadedDecodeKernel& k = *plan.kernel;
  DecodeTimelineLaunch l;
  l.config = plan.config.key() + (plan.config.direct_grid ? " (direct grid)" : " (scheduled grid)");
  l.main_blocks = main_blocks, l.merge_blocks = merge_blocks;
  l.threads = k.geometry.threads, l.shared_bytes = k.geometry.shared_bytes, l.registers = k.registers;
  cuda::check(cuda::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&l.blocks_per_sm, k.main, k.geometry.threads,
                                                                         size_t(k.geometry.shared_bytes)),
              "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  l.slots = plan.work.slots, l.sequence_pieces = plan.work.sequence_pieces;
  return l;
}

std::string describe_status(int bits, int batch_index) {
  std::string what;
  if (bits & kStatusSeqLenBelowQSeqlen) what += " a seq_lens value is negative or below q_seqlen (and not 0);";
  if (bits & kStatusSeqLenOverCapacity) what += " a seq_lens value exceeds max_pages_per_seq * page_size;";
  if (bits & kStatusPageOutOfRange) what += " a block_table entry in the window is outside [0, num_pages);";
  if (bits & kPrefillQueryRowsInvalid) what += " cu_seqlens_q is not non-decreasing within [0, total_q] (nothing written);";
  if (bits & kPrefillKvRowsInvalid) what += " cu_seqlens_k is not non-decreasing within [0, total_kv];";
  if (bits & kPrefillKvShorterThanQ) what += " a sequence's KV length is below its query length;";
  if (bits & kPrefillKvOverCapacity) what += " a seq_lens value exceeds max_pages_per_seq * page_size;";
  if (bits & kPrefillPageOutOfRange) what += " a block_table entry is outside [0, num_pages);";
  if (bits & kSparseIndexOutOfRange) what += " a sparse_decode index is outside [-1, seq_lens[b]) (that query row is zeros);";
  return "swajit found invalid device-side arguments (first at batch index " + std::to_string(batch_index) +
         "):" + what + " those sequences were written as zeros";
}

}  // namespace

DecodeConfig tuned_for_lengths(const DecodeProblem& p, DecodeConfig config) {
  if (config.num_splits == 1 && !lengths_uniform(p) &&
      schedule_worth_cutting(max_visible_tiles(visible_kv_upper_bound(p), config.block_n)))
    config.num_splits = DecodeConfig::kSplitsFromCapacity;
  return config;
}

bool runs_direct_grid(const DecodeConfig& config, int64_t visible_tokens, bool lengths_equal) {
  const bool too_short = config.num_splits == DecodeConfig::kSplitsFromCapacity &&
                         !schedule_worth_cutting(max_visible_tiles(visible_tokens, config.block_n));
  return config.num_splits == 1 || too_short || lengths_equal;
}

DecodeConfig with_call_grid(const DecodeProblem& p, DecodeConfig config) {
  config.direct_grid = runs_direct_grid(config, visible_kv_upper_bound(p), lengths_uniform(p));
  return config;
}

int work_items(const WorkList& work, int batch) {
  return work.split() ? int(kEntriesPerBlock * schedule_grid_blocks(work.slots, batch)) : 0;
}

TuningPolicy resolve_tuning_policy(TuningPolicy policy) {
  if (policy != TuningPolicy::kDefault) return policy;
  const char* tune = std::getenv("SWAJIT_TUNE");
  return tune && std::string(tune) == "1" ? TuningPolicy::kTuneOnMiss : TuningPolicy::kDatabase;
}

namespace {

// A tuned config is used only if its kernel builds on this device; otherwise the call falls back.
const LoadedDecodeKernel* try_kernel(const DecodeProblem& p, const DecodeConfig& config, const DeviceInfo& device,
                                     CUcontext context) {
  try {
    validate_for_call(config, p);
    return &decode_kernel(p.spec, with_call_grid(p, config), device, context);
  } catch (const Error& e) {
    std::fprintf(stderr, "swajit: tuned config %s unusable for %s, using the heuristic: %s\n", config.key().c_str(),
                 p.spec.key().c_str(), e.what());
    return nullptr;
  }
}

}  // namespace


// The bucket of a call, ragged batches included: its batch and the visible length its block table admits
// (max_pages_per_seq * page_size, clipped by the window), never the lengths themselves. Those live on the device and
// change every step; the bucket (so a tuned config, and tune-on-miss) stays put while they do, and the config's
// num_splits (work items per (sequence, kv head) on average, or the grid's capacity) is spread over the real lengths
// by the kernel's work schedule at run time. The tuner times a uniform batch at that bound.
ShapeBucket decode_bucket_of(const DecodeProblem& p) { return shape_bucket(p.batch, visible_kv_upper_bound(p)); }

namespace {

DecodePlan choose_decode_config(const DecodeProblem& p, const DecodeOptions& options, const DeviceInfo& device,
                                CUcontext context, CUstream stream) {
  require_cuda_kernels(device, "paged_decode");
  DecodePlan plan;
  if (options.config) {
    validate_for_call(*options.config, p);
    plan.config = with_call_grid(p, *options.config);
    plan.kernel = &decode_kernel(p.spec, plan.config, device, context);
    plan.origin = DecodePlan::Origin::kForced;
    return plan;
  }
  const TuningPolicy policy = resolve_tuning_policy(options.tuning);
  if (policy != TuningPolicy::kHeuristic) {
    const std::string bucket = decode_bucket_of(p).key();
    // A miss is tuned now when asked, never inside a graph capture (the tuner allocates and synchronizes).
    const bool may_tune = policy == TuningPolicy::kTuneOnMiss && !(stream && stream_is_capturing(stream));
    const std::optional<DecodeConfig> tuned = tuned_config<DecodeConfig>(p, device, bucket, may_tune);
    if (tuned)
      if (const LoadedDecodeKernel* kernel = try_kernel(p, tuned_for_lengths(p, *tuned), device, context)) {
        plan.config = with_call_grid(p, tuned_for_lengths(p, *tuned));
        plan.kernel = kernel;
        plan.origin = DecodePlan::Origin::kTuned;
        return plan;
      }
  }
  // splits: the capacity rule's, or the direct grid for pairs too short to cut
  plan.config = with_call_grid(p, heuristic_decode_config(p.spec, device, int64_t(p.batch) * p.num_kv_heads,
                                                          visible_kv_upper_bound(p), decode_tma_layout_problem(p).empty()));
  plan.kernel = &decode_kernel(p.spec, plan.config, device, context);
  plan.origin = DecodePlan::Origin::kHeuristic;
  return plan;
}

}  // namespace

DecodePlan plan_decode(const DecodeProblem& p, const DecodeOptions& options, const DeviceInfo& device, CUcontext context,
                       CUstream stream) {
  DecodePlan plan = choose_decode_config(p, options, device, context, stream);
  plan.work = work_list(p, plan.config, *plan.kernel, device);
  return plan;
}

// The CPU backend, when this build has it.
void run_on_cpu(DecodeProblem& p, const DecodeOptions& options) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
  run_cpu_decode(p, plan_cpu_decode(p, options));
#else
  (void)p;
  (void)options;
  throw Error(ErrorCode::kUnsupported, "the tensors are on the CPU, but this build of swajit has no CPU backend "
                                       "(configure with -DSWAJIT_CPU_BACKEND=ON)");
#endif
}

void set_tuning_db_path(const std::string& path) { TuningStore::instance().set_path(path); }

KernelSpec paged_decode_spec(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                             const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                             const DecodeOptions& options) {
  return describe_paged_decode(q, k_cache, v_cache, block_table, seq_lens, out, options).spec;
}

size_t paged_decode_workspace_bytes(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                                    const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                                    const DecodeOptions& options) {
  const DecodeProblem p = describe_paged_decode(q, k_cache, v_cache, block_table, seq_lens, out, options);
  if (p.batch == 0 || p.on_cpu) return 0;  // the CPU backend keeps its partial results itself
  return workspace_layout(p, chosen_work_list(p, options)).total();
}

void paged_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache, const DLTensor& block_table,
                  const DLTensor& seq_lens, const DLTensor& out, CUstream stream, const DecodeOptions& options) {
  DecodeProblem p = describe_paged_decode(q, k_cache, v_cache, block_table, seq_lens, out, options);
  if (p.batch == 0) return;
  if (p.on_cpu) return run_on_cpu(p, options);
  cuda::ScopedDeviceContext scope(p.device_ordinal);
  const DeviceInfo& device = cuda_device(p.device_ordinal);
  const DecodePlan plan = plan_decode(p, options, device, scope.context(), stream);
  const WorkspaceLayout layout = workspace_layout(p, plan.work);
  const bool split = plan.work.split();  // partial results and a merge (else the workspace goes unused)

  const bool caller_workspace = options.workspace != nullptr;
  if (split && caller_workspace && options.workspace_bytes < layout.total())
    throw Error(ErrorCode::kInvalidArgument, "workspace_bytes = " + std::to_string(options.workspace_bytes) +
                                                 " is too small; this call needs " + std::to_string(layout.total()));
  // The library's workspace is this call's own, allocated and freed in stream order after the launches below.
  StreamWorkspace library_workspace(scope.context(), stream, caller_workspace || !split ? 0 : layout.total());
  char* workspace = caller_workspace ? static_cast<char*>(options.workspace) : library_workspace.data();

  PagedDecodeParams& a = p.params;
  a.num_splits = split ? plan.config.num_splits : 1;  // split: 0 (capacity) or > 1
  a.work_items = work_items(plan.work, p.batch);
  a.schedule_slots = plan.work.slots;
  a.sequence_pieces = plan.work.sequence_pieces;
  a.schedule_snap_shares = schedule_snap_shares();
  a.status = stream_status(scope.context(), stream);
  a.partial_out = split ? workspace : nullptr;
  a.partial_lse = split ? reinterpret_cast<float*>(workspace + layout.out_bytes) : nullptr;
  a.merge_records = split ? reinterpret_cast<int*>(workspace + layout.out_bytes + layout.lse_bytes) : nullptr;
  const bool fused_merge = split && plan.config.fused_merge;  // the main grid merges: no merge grid
  a.arrival_counts = fused_merge ? stream_arrival_counts(scope.context(), stream, size_t(p.batch) * p.num_kv_heads) : nullptr;

  if (plan.config.producer == DecodeConfig::kProducerTma) encode_tma_maps(a, p, plan.config);
  const DecodeGeometry& g = plan.kernel->geometry;
  void* args[] = {&a};
  // Blocks x kv heads in one dimension (block s of kv head h is s x kv_heads + h, so a sequence's kv heads run side by
  // side): the scheduled grid's blocks (the same grid whatever the lengths), or the direct grid's (sequence, piece).
  const unsigned kv_heads = unsigned(p.num_kv_heads);
  const int64_t grid_blocks = schedule_grid_blocks(plan.work.slots, p.batch);
  if (grid_blocks * kv_heads > std::numeric_limits<int>::max())
    throw Error(ErrorCode::kInvalidArgument, "batch x num_kv_heads = " + std::to_string(int64_t(p.batch) * kv_heads) +
                                                 " exceeds the grid's limit of 2^31 - 1 blocks");
  // A block for each sequence a call can cut (one per boundary between the schedule's blocks at most); each finds
  // its cut sequence among the merge records.
  const int64_t merge_sequences = std::min<int64_t>(p.batch, plan.work.slots);
  const unsigned merge_row_blocks = unsigned(g.rows);  // a merge block a row
  if (decode_timeline_enabled())
    a.timeline = decode_timeline_records(timeline_launch(plan, int(grid_blocks * kv_heads),
                                                         split && !fused_merge ? int(merge_sequences * kv_heads * merge_row_blocks) : 0));
  cuda::launch_dependent(device, stream, plan.kernel->main, {unsigned(grid_blocks * kv_heads), 1, 1}, g.threads,
                         g.shared_bytes, args, "cuLaunchKernelEx(paged_decode)");
  if (split && !fused_merge) {
    cuda::launch_dependent(device, stream, plan.kernel->merge, {unsigned(merge_sequences), kv_heads, merge_row_blocks},
                           g.merge_threads, merge_spreading_bytes(device, merge_sequences * p.num_kv_heads * merge_row_blocks),
                           args, "cuLaunchKernelEx(paged_decode merge)");
  }
  if (options.check_device_args) check_device_errors(p.device_ordinal, stream);
}

void check_device_errors(int device_ordinal, CUstream stream) {
  cuda::ScopedDeviceContext scope(device_ordinal);
  const StatusRecord record = take_stream_status(scope.context(), stream);
  if (record.bits != 0) throw Error(ErrorCode::kDeviceArgument, describe_status(record.bits, record.first_index));
}

}  // namespace swajit
