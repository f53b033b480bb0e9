#include "heuristic.hpp"

#include <algorithm>

#include "swajit/generator.hpp"

namespace swajit {

DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm) {
  constexpr int kTargetWarps = 4;          // enough warps to keep cp.async traffic and tensor cores busy
  constexpr int kTilesInFlight16Bit = 2;   // 16-bit tiles in flight while one is consumed (3 stages)
  constexpr int kBlocksPerSmWanted = 2;    // so one block's epilogue overlaps another's loads
  DecodeConfig config;
  config.block_n = 64;
  config.stages = 2;
  const DecodeGeometry geometry = decode_geometry(spec, config);
  config.warps_n = std::max(1, kTargetWarps / geometry.warps_m);
  // What hides memory latency is bytes in flight, not a stage count: 8-bit tiles (half the bytes) get twice the
  // tiles in flight of 16-bit ones. Then the deepest of those pipelines that still leaves room for
  // kBlocksPerSmWanted blocks per SM.
  const int bytes_in_flight = kTilesInFlight16Bit * spec.head_dim * config.block_n * int(sizeof(uint16_t));
  config.stages = 1 + bytes_in_flight / geometry.tile_bytes;  // 3 for 16-bit tiles, 5 for 8-bit ones
  const int per_block_budget = std::min(max_shared_per_block, max_shared_per_sm / kBlocksPerSmWanted);
  while (config.stages > 2 && decode_geometry(spec, config).shared_bytes > per_block_budget) --config.stages;
  // A block that still does not fit the device gets a narrower tile.
  while (config.block_n > 16 * config.warps_n && decode_geometry(spec, config).shared_bytes > max_shared_per_block)
    config.block_n /= 2;
  return config;
}

int heuristic_num_splits(const DecodeProblem& problem, const DecodeConfig& config, const DeviceInfo& device,
                         int blocks_per_sm) {
  constexpr int kMinTilesPerSplit = 2;  // below this the merge pass costs more than the parallelism buys
  const int64_t blocks = int64_t(problem.batch) * problem.num_kv_heads;
  if (blocks == 0) return 1;
  const int64_t capacity = int64_t(device.sm_count) * std::max(1, blocks_per_sm);
  // As many splits as still fit in one wave: a partial second wave would cost a whole block's time.
  // At least kMinBalancedSplits whenever a sequence could be cut: the lengths inside a batch vary (and only the
  // device knows them), and the work schedule then cuts the long sequences into chunks of the mean length, so that a
  // ragged batch that fills the grid does not wait for its longest sequence (templates/paged_decode.cuh).
  constexpr int64_t kMinBalancedSplits = 2;
  const int64_t wanted = std::max<int64_t>(kMinBalancedSplits, capacity / blocks);
  const int64_t tiles = (visible_kv_upper_bound(problem) + config.block_n - 1) / config.block_n;
  // The fewest tiles per split that one wave allows, then the fewest splits that keep every split at that many: a
  // window one tile over a multiple (4099 tokens at q_seqlen 4 = 65 tiles) spread over 32 splits leaves one split
  // with 3 tiles that the whole call waits for (measured: +1.8 us at batch 1 with 8-bit KV); 33 splits end together.
  const int64_t tiles_per_split = std::max<int64_t>(kMinTilesPerSplit, (tiles + wanted - 1) / wanted);
  return static_cast<int>(std::clamp<int64_t>((tiles + tiles_per_split - 1) / tiles_per_split, 1,
                                              std::min<int64_t>(wanted, DecodeConfig::kMaxSplits)));
}

int merge_spreading_bytes(const DeviceInfo& device, int64_t merge_blocks) {
  const int64_t per_sm = (merge_blocks + device.sm_count - 1) / device.sm_count;
  if (per_sm > kMaxMergeBlocksPerSm) return 0;
  const int64_t share = device.max_shared_per_sm / (per_sm + 1) + 1 - device.reserved_shared_per_block;
  return int(std::clamp<int64_t>(share, 0, device.max_shared_per_block_optin));
}

}  // namespace swajit
