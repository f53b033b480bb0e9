#include "heuristic.hpp"

#include <algorithm>
#include <vector>

#include "decode_schedule.h"
#include "memory_system.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"

namespace swajit {

DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm) {
  constexpr int kTargetWarps = 4;          // enough warps to keep cp.async traffic and tensor cores busy (16-bit)
  constexpr int kBlockN16Bit = 64;         // tokens of a 16-bit tile
  constexpr int kTilesInFlight16Bit = 2;   // 16-bit tiles in flight while one is consumed (3 stages)
  constexpr int kBlocksPerSmWanted = 2;    // so one block's epilogue overlaps another's loads
  constexpr int kMaxTokensPerWarp = 32;    // per tile: more score fragments than this spill registers (many rows)
  const int per_block_budget = std::min(max_shared_per_block, max_shared_per_sm / kBlocksPerSmWanted);
  // Tiles of kBlockN16Bit * widening tokens over kTargetWarps warps. What hides memory latency is
  // bytes in flight, not a stage count: the pipeline keeps kTilesInFlight16Bit 16-bit tiles' bytes in flight, or the
  // deepest shallower one that still leaves room for kBlocksPerSmWanted blocks per SM.
  const auto pipeline = [&](int widening) {
    DecodeConfig config;
    config.block_n = kBlockN16Bit * widening;
    config.stages = 2;
    const DecodeGeometry geometry = decode_geometry(spec, config);
    config.warps_n = std::max(1, kTargetWarps / geometry.warps_m);
    const int bytes_in_flight = kTilesInFlight16Bit * spec.head_dim * kBlockN16Bit * int(sizeof(uint16_t));
    const int tile_data_bytes = config.block_n * spec.head_dim * (spec.kv_quant == KvQuant::kNone ? 2 : 1);  // no padding
    config.stages = 1 + bytes_in_flight / tile_data_bytes;
    while (config.stages > 2 && decode_geometry(spec, config).shared_bytes > per_block_budget) --config.stages;
    return config;
  };
  // 8-bit tiles hold twice the tokens (the bytes of a 16-bit tile): a tile's time is mostly its fixed per-warp path
  // (barrier, loads issued, softmax reductions and rescale, dependent mma chains), not its bytes: at block_n 64 an
  // 8-bit tile took as long as a 16-bit one with half the bytes (41-48% of the halved floor, device run B), and
  // halving a 16-bit block's warps (bn32 wn2) cut its tile time only to 0.8x. 32 tokens per warp pay that path once
  // for twice the tokens, with 4 independent score chains instead of 2. Where such a pipeline would drop below 3
  // stages or 2 blocks per SM (head_dim 256), or give a warp more than kMaxTokensPerWarp tokens (more than 16 rows:
  // fewer warp columns), 8-bit tiles keep the 16-bit width and get a deeper pipeline instead.
  DecodeConfig config = pipeline(1);
  if (spec.kv_quant != KvQuant::kNone) {
    const DecodeConfig wide = pipeline(2);
    if (wide.stages >= 1 + kTilesInFlight16Bit && decode_geometry(spec, wide).shared_bytes <= per_block_budget &&
        wide.block_n / wide.warps_n <= kMaxTokensPerWarp)
      config = wide;
  }
  // A block that still does not fit the device gets a narrower tile (and no more warp columns than k16 steps).
  while (config.block_n > 16 && decode_geometry(spec, config).shared_bytes > max_shared_per_block) {
    config.block_n /= 2;
    config.warps_n = std::max(1, std::min(config.warps_n, config.block_n / 16));
  }
  config.num_splits = DecodeConfig::kSplitsFromCapacity;  // the work schedule fills the grid's resident blocks
  return config;
}

namespace {

// A block's time per tile when every warp loads (cp.async) and the block meets at one barrier per tile: a fixed path
// plus a share per warp (the slowest warp sets the barrier), for tiles of 16 tokens per warp column at head_dim 128,
// scaling with head_dim (K and V bytes, MMAs and loads per token). Fitted on the H200 (Hopper), RESULTS.md: bn64 wn4
// st3 at 2 blocks per SM streamed 87% of the floor (run C/D of session 3: 2.25 us a tile), bn128 wn8 at one block
// 63% (the config sweep: 3.15 us), and halving a block's warps (bn32 wn2) cut its tile time to 0.8x (1.8 us).
// Other architectures reuse Hopper's path until measured.
constexpr double kTilePathNs = 1350, kTilePathPerWarpNs = 225;
constexpr int kReferenceHeadDim = 128;
// The producer's compute warps issue no loads: their path is at most this share of the all-warps one (head_dim 256,
// bn32 wn2 st3, 2 blocks per SM: 78% of the floor moved by the producer, 55% with every warp loading; run B).
constexpr double kComputeOnlyShare = 0.7;
// Registers per thread of the decode kernel beside its fp32 output accumulators (head_dim / 2 per thread of a
// 16-row warp tile): ptxas reported 160-196 at head_dim 128 (session 4 run B).
constexpr int kRegistersBesideOutput = 96;
// Predicted rates within this share of each other are a tie: the model's error (it fits the measured configs within
// 4%), and a tie keeps the fewer, larger blocks (fewer partial results when the schedule splits a pair).
constexpr double kTieMargin = 0.05;

double tile_path_seconds(const KernelSpec& spec, const DecodeConfig& config) {
  const int warps = decode_geometry(spec, config).warps_m * config.warps_n;
  return (kTilePathNs + kTilePathPerWarpNs * warps) * 1e-9 * spec.head_dim / kReferenceHeadDim;
}

// Blocks of `config` an SM holds at once: its shared memory (with the driver's reserve per block), threads and
// registers (the per-block limit is the SM's file on sm_70..sm_90); 0 when one block does not fit.
int resident_blocks(const KernelSpec& spec, const DecodeConfig& config, const DeviceInfo& device) {
  const DecodeGeometry g = decode_geometry(spec, config);
  int blocks = decode_blocks_per_sm_bound(spec, config, device);
  const int registers = g.threads * (kRegistersBesideOutput + spec.head_dim / 2);
  if (device.max_registers_per_block > 0) blocks = std::min(blocks, device.max_registers_per_block / registers);
  return blocks;
}

// One way to run the call and the KV tokens per second an SM would stream with it.
struct DecodeCandidate {
  DecodeConfig config;
  int blocks_per_sm = 0;
  double tokens_per_s_per_sm = 0;
  int64_t waves = 0;  // of the direct grid, for pairs too short to schedule (0: scheduled or not known)
};

// The SM's share of the device's read bandwidth, or less where the blocks' tile path (every warp loading) or the
// bulk-copy engine's row rate (the producer) cannot keep up with it.
DecodeCandidate predict(const KernelSpec& spec, const DecodeConfig& config, const DeviceInfo& device,
                        const MemorySystem& memory, int64_t direct_grid_blocks) {
  DecodeCandidate c{config, resident_blocks(spec, config, device), 0, 0};
  const int64_t slots = int64_t(std::max(1, c.blocks_per_sm)) * device.sm_count;
  c.waves = (direct_grid_blocks + slots - 1) / slots;
  const double token_bytes = 2.0 * spec.head_dim * sizeof(uint16_t);  // a K row and a V row, 16-bit
  const double share = memory.read_bytes_per_s / std::max(1, device.sm_count) / token_bytes;
  double path = tile_path_seconds(spec, config);
  double limit = share;
  if (config.producer == DecodeConfig::kProducerBulk) {
    constexpr double kRowsPerToken = 2;  // one bulk copy for its K row, one for its V row
    limit = std::min(limit, memory.bulk_rows_per_s_per_sm / kRowsPerToken);
    path *= kComputeOnlyShare;
  }
  c.tokens_per_s_per_sm = std::min(limit, c.blocks_per_sm * config.block_n / path);
  return c;
}

// Whether the capacity schedule serves candidate `c` (more, smaller blocks than the default) well: its pairs fill
// at least half its resident blocks, so that it cuts no pair in more than two; or the default's blocks already cut
// every pair in two or more (its merge is paid either way) and each of c's items keeps a pipeline's worth of tiles.
// Measured on the H200: head_dim 256 at 128 pairs, where the default's 132 blocks cut nothing, 32-token tiles in 2
// blocks per SM were 1.5-2.2x slower (run B of session 4); the gemma-3-27b preset (head_dim 128, window 1024) at
// batch 8, where both cut, 1.38x faster (bn32_wn2_st3_sp4, run A); batch 1, 2 tiles an item, no faster. Also where
// the default keeps a single tile in flight per block (2 stages: head_dim 256) and the pairs fill at least half its
// blocks, so that c's deeper pipelines over pieces of the pairs hold more bytes in flight per SM: Gemma 3 (head_dim
// 256, window 1024) at batch 8 on the H200, TMA pages bn32 wn2 st3 46.2 us against the default's 57.3 (session 7
// run B; the 1.5-2.2x loss above was every warp loading or bulk rows).
bool schedule_allows(const DecodeCandidate& c, int64_t pairs, int64_t visible_tokens, const DecodeCandidate& wide,
                     const DeviceInfo& device) {
  const int64_t slots = int64_t(c.blocks_per_sm) * device.sm_count;
  const int64_t wide_slots = int64_t(wide.blocks_per_sm) * device.sm_count;
  if (2 * pairs >= slots) return true;
  const int64_t item_tiles = pairs * max_visible_tiles(visible_tokens, c.config.block_n) / std::max<int64_t>(1, slots);
  const bool wide_single_tile = wide.config.stages == 2 && c.config.stages > 2 && 2 * pairs >= wide_slots;
  return visible_tokens > 0 && (2 * pairs <= wide_slots || wide_single_tile) && item_tiles >= c.config.stages;
}

// The narrow tile: half the tokens over half the warp columns (the same tokens per warp), with the pipeline depth
// that keeps the memory system's bytes in flight at the blocks per SM it then gets.
DecodeConfig narrow_tile(const KernelSpec& spec, const DecodeConfig& wide, int producer, const DeviceInfo& device,
                         const MemorySystem& memory) {
  DecodeConfig narrow = wide;
  narrow.block_n = wide.block_n / 2;
  narrow.warps_n = std::max(1, wide.warps_n / 2);
  narrow.producer = producer;
  const int stage_bytes = 2 * narrow.block_n * spec.head_dim * int(sizeof(uint16_t));  // K and V
  narrow.stages = 3;
  int blocks = resident_blocks(spec, narrow, device);
  while (blocks > 0 && narrow.stages < stages_for_bandwidth(memory, stage_bytes, blocks)) {
    DecodeConfig deeper = narrow;
    ++deeper.stages;
    blocks = resident_blocks(spec, deeper, device);  // a deeper pipeline may leave room for fewer blocks
    if (blocks == 0) break;                          // the deepest one block holds
    narrow = deeper;
  }
  return narrow;
}

// The producer warp's loads as the rule runs them: predicted as bulk row copies (the copy engine's row rate bounds
// them), moved as TMA boxes of whole pages where the spec's pages suit them, measured faster than the row copies
// wherever those win (head_dim 256 on the H200, session 5 run B2: 144.3 / 528.4 us at batch 32 / 128 against
// 159.3 / 613.4 for bulk rows and 173.7 / 660.1 for the default).
// 8-bit caches on a device: the default tile with the knobs that won on the H200 (session 6 run B2,
// tools/bench/RESULTS.md): on sm_90+ TMA page boxes moved by a producer warp, the registers capped for two blocks an
// SM (min_blocks: uncapped, the 160-thread blocks ran one an SM), where the pages suit TMA boxes and two blocks fit
// (fp8 b128 343.8 -> 288.3 us, int8 372.5 -> 296.2); else the cp.async loaders reading a tile's block_table entries
// before checking any (pages_first: fp8 303.8, int8 326.1). integer_scores stays off: level at q1, 8% slower at q4
// beside the TMA pages. Since session 7 the every-warp loaders also read each tile's entries a tile step ahead
// (pages_ahead), and fp8 keeps them: run B2, b32 / b128 q1 79.8 / 288.0 us, q4 87.5 / 312.2 against the TMA pages'
// 84.0 / 291.2 and 90.1 / 312.3. Where the pairs fill it (below), every warp loading the halved tile beats both.
// Every-warp 8-bit tiles take half the tokens over half the warp columns (the same 32 tokens a warp) where the pairs
// fill that tile's blocks without the schedule cutting any (2 x pairs > its resident blocks): twice the blocks an SM,
// the same bytes in flight. Session 8 runs B / B2, b128 q1 / q4: fp8 269.8 / 286.7 us against 284.7 / 305.0 for
// session 7's default (b64 140.7 against 148.8, b256 525.8 against 555.5: 5-6%), int8 295.1 / 314.0 against its TMA
// pages' 301.3 / 318.0. At b32 (256 pairs, 528 slots) the halved tile cut every pair and lost (fp8 83.6 / 92.3 against
// 79.9 / 85.9), and int8 keeps the TMA pages there (every warp loading 86.8 against 86.3). Measured at head_dim 128
// (head_dim 256's 8-bit tile keeps the 16-bit width, 16 tokens a warp: not measured halved).
DecodeConfig with_kv8_knobs(const KernelSpec& spec, DecodeConfig config, const DeviceInfo& device, int64_t sequence_heads) {
  config.pages_first = true;
  config.pages_ahead = true;
  const bool measured = spec.head_dim <= 128;
  if (measured && config.warps_n >= 2 && sequence_heads > 0) {  // (one warp column has no half)
    DecodeConfig narrow = config;
    narrow.block_n = config.block_n / 2;
    narrow.warps_n = config.warps_n / 2;
    if (runs_spec(narrow, spec)) {
      const int64_t narrow_slots = int64_t(resident_blocks(spec, narrow, device)) * device.sm_count;
      if (narrow_slots > 0 && 2 * sequence_heads > narrow_slots) return narrow;
    }
  }
  if (device.cc_major < 9 || spec.kv_quant == KvQuant::kFp8E4M3) return config;
  DecodeConfig tma = config;
  tma.producer = DecodeConfig::kProducerTma;
  tma.pages_ahead = false;  // an every-warp loader's knob
  tma.min_blocks = 2;
  return runs_spec(tma, spec) && resident_blocks(spec, tma, device) >= tma.min_blocks ? tma : config;
}

// Every-warp loaders read the next tile's block_table entries a tile step ahead (pages_ahead), so that their round
// trip passes during a tile's math instead of before its copies. H200, session 7 runs B and B2, grid shape (the
// heuristic's tiles), us: pages of one token q1 b32 / b128 / b256 271.1 / 813.4 / 1603.0 -> 136.8 / 507.8 / 998.4
// (FlashInfer 145.9 / 520.7 / 1018.3); page 16 q1 151.4 / 532.4 / 1057.4 -> 135.1 / 507.3 / 988.1, q4 158.4 / 545.7 /
// 1082.5 -> 140.6 / 516.4 / 1008.5.
DecodeConfig with_pages_ahead(DecodeConfig config) {
  if (config.producer == DecodeConfig::kLoadersAllWarps) config.pages_ahead = true;
  return config;
}

// A cut pair merged by the scheduled grid's own last block to finish a piece of it (fused_merge) instead of by a merge
// grid, where every pair's rows are few (kFusedMergeRows: that block merges them alone) and the pairs fill at least half
// the resident blocks (few pairs are cut, into few pieces): the call then ends with the main grid, one kernel instead
// of two. H200, session 12 (same call, two rounds alternated, bf16 d128 group 4, every warp loading), q1: uniform b32
// 133.2 -> 130.0 us (device lengths), b128 / b256 0.5%, log-uniform b32 98.0 -> 96.6, b128 / b256 0.5%, bimodal
// b128 / b256 0.6-0.9%, bimodal b32 level; where it lost: q4 (16 rows) at b128 / b256 1-9%, and batch 8 (64 pairs,
// 528 blocks) 2-42%. Measured with 16-bit caches, head_dim 128 and every warp loading only.
constexpr int kFusedMergeRows = 4;
DecodeConfig with_fused_merge(const KernelSpec& spec, DecodeConfig config, const DeviceInfo& device, int64_t sequence_heads) {
  const bool measured = spec.kv_quant == KvQuant::kNone && spec.head_dim <= kReferenceHeadDim &&
                        config.producer == DecodeConfig::kLoadersAllWarps;
  const int64_t slots = int64_t(resident_blocks(spec, config, device)) * device.sm_count;
  if (measured && spec.q_seqlen * spec.group <= kFusedMergeRows && slots > 0 && 2 * sequence_heads >= slots)
    config.fused_merge = true;
  return config;
}

DecodeConfig with_page_copies(const KernelSpec& spec, DecodeConfig config) {
  if (config.producer != DecodeConfig::kProducerBulk) return config;
  DecodeConfig tma = config;
  tma.producer = DecodeConfig::kProducerTma;
  return runs_spec(tma, spec) ? tma : config;
}

}  // namespace

int decode_blocks_per_sm_bound(const KernelSpec& spec, const DecodeConfig& config, const DeviceInfo& device) {
  const DecodeGeometry g = decode_geometry(spec, config);
  if (g.shared_bytes > device.max_shared_per_block_optin || g.threads <= 0) return 0;
  int blocks = device.max_shared_per_sm / (g.shared_bytes + device.reserved_shared_per_block);
  if (device.max_threads_per_sm > 0) blocks = std::min(blocks, device.max_threads_per_sm / g.threads);
  return blocks;
}

DecodeConfig heuristic_decode_config(const KernelSpec& spec, const DeviceInfo& device, int64_t sequence_heads,
                                     int64_t visible_tokens, bool tma_layout_ok) {
  // One rule for 16-bit caches: among the default tile and a tile of half the tokens and warps (every warp loading,
  // or on sm_90+ moved by the bulk-copy producer warp), the one whose blocks stream the SM's share of the device's
  // read bandwidth fastest (predict), where the work schedule serves its blocks well (schedule_allows), or that runs
  // pairs too short to cut in fewer waves. It reproduces the measured winners: on the H200 (4.4 TB/s) bn32 wn2 st3
  // at head_dim 128 once the pairs fill two blocks per SM (b128: 529 us against 558 for the default, whose 2 blocks
  // per SM reach 87% of the floor) or the default cuts them anyway (gemma-3-27b b8), the producer's bn32 wn2 st3 at
  // head_dim 256 once they fill one (b32 211.6 -> 159.3 us; every warp loading 4-6% slower, b8 1.5x slower); on the
  // H100 (3.1 TB/s) the default at head_dim 128, which already streams the floor there (96%). tests/test_tuning.cpp.
  const DecodeConfig wide = heuristic_decode_config(spec, device.max_shared_per_block_optin, device.max_shared_per_sm);
  // The call's caches TMA cannot read take the heuristic's other loaders (without_tma_pages).
  const auto for_layout = [&](const DecodeConfig& c) {
    return tma_layout_ok || c.producer != DecodeConfig::kProducerTma ? c : without_tma_pages(spec, c);
  };
  if (spec.kv_quant != KvQuant::kNone) return for_layout(with_kv8_knobs(spec, wide, device, sequence_heads));
  if (sequence_heads <= 0) return with_pages_ahead(wide);
  const MemorySystem memory = memory_system(device);
  // Pairs too short for the work schedule to cut (the default's tiles decide, as for the capacity rule's direct
  // grid: paged_decode.cpp) run on the direct grid whatever the tile: a block per pair, in waves.
  const bool direct = visible_tokens > 0 && !schedule_worth_cutting(max_visible_tiles(visible_tokens, wide.block_n));
  const DecodeConfig narrow = narrow_tile(spec, wide, DecodeConfig::kLoadersAllWarps, device, memory);
  std::vector<DecodeConfig> others = {narrow};
  if (direct) {
    // A short pair's block is mostly fixed path: with one warp column it meets no other warp at a barrier and
    // merges no softmax states in its epilogue (gpt-oss b128 on the H200: tuned bn32_wn1_st3_sp1 13.2 us, one wave).
    DecodeConfig single_column = narrow;
    single_column.warps_n = 1;
    others.insert(others.begin(), single_column);
  }
  if (device.cc_major >= 9) others.push_back(narrow_tile(spec, wide, DecodeConfig::kProducerBulk, device, memory));
  const int64_t direct_grid_blocks = direct ? sequence_heads : 0;
  DecodeCandidate best = predict(spec, wide, device, memory, direct_grid_blocks);
  const DecodeCandidate wide_candidate = best;
  for (DecodeConfig config : others) {
    if (direct) config.num_splits = 1;
    if (!runs_spec(config, spec)) continue;  // e.g. deeper than DecodeConfig's stage limit
    const DecodeCandidate c = predict(spec, config, device, memory, direct_grid_blocks);
    if (c.blocks_per_sm == 0) continue;
    // Pairs too short to cut: a block's time is mostly its fixed path (prologue, a few tiles, epilogue), so fewer
    // waves of the direct grid win (gpt-oss, window 128, batch 128 on the H200: bn32 tiles holding all 1024 pairs at
    // once 13.2 us, the default's two waves 18.2).
    if (c.waves > 0 && c.waves < best.waves) {
      best = c;
      continue;
    }
    if (c.waves == best.waves && schedule_allows(c, sequence_heads, visible_tokens, wide_candidate, device) &&
        c.tokens_per_s_per_sm > best.tokens_per_s_per_sm * (1 + kTieMargin))
      best = c;
  }
  const DecodeConfig chosen = with_pages_ahead(with_page_copies(spec, best.config));
  return for_layout(direct ? chosen : with_fused_merge(spec, chosen, device, sequence_heads));
}

DecodeConfig without_tma_pages(const KernelSpec& spec, DecodeConfig config) {
  if (spec.kv_quant == KvQuant::kNone) {
    config.producer = DecodeConfig::kProducerBulk;
    config.pages_ahead = false;  // an every-warp loader's knob
  } else {
    config.producer = DecodeConfig::kLoadersAllWarps;
    config.min_blocks = 1;
    config.pages_ahead = true;
  }
  return config;
}

int merge_spreading_bytes(const DeviceInfo& device, int64_t merge_blocks) {
  const int64_t per_sm = (merge_blocks + device.sm_count - 1) / device.sm_count;
  if (per_sm > kMaxMergeBlocksPerSm) return 0;
  const int64_t share = device.max_shared_per_sm / (per_sm + 1) + 1 - device.reserved_shared_per_block;
  return int(std::clamp<int64_t>(share, 0, device.max_shared_per_block_optin));
}

}  // namespace swajit
