#include "heuristic.hpp"

#include <algorithm>

#include "swajit/generator.hpp"

namespace swajit {

DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm) {
  constexpr int kTargetWarps = 4;          // enough warps to keep cp.async traffic and tensor cores busy
  constexpr int kTilesInFlight16Bit = 2;   // 16-bit tiles in flight while one is consumed (3 stages)
  constexpr int kBlocksPerSmWanted = 2;    // so one block's epilogue overlaps another's loads
  DecodeConfig config;
  config.num_splits = DecodeConfig::kSplitsFromCapacity;  // the work schedule fills the grid's resident blocks
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

int merge_spreading_bytes(const DeviceInfo& device, int64_t merge_blocks) {
  const int64_t per_sm = (merge_blocks + device.sm_count - 1) / device.sm_count;
  if (per_sm > kMaxMergeBlocksPerSm) return 0;
  const int64_t share = device.max_shared_per_sm / (per_sm + 1) + 1 - device.reserved_shared_per_block;
  return int(std::clamp<int64_t>(share, 0, device.max_shared_per_block_optin));
}

}  // namespace swajit
