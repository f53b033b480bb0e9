// The config used when nothing tuned is known: chosen from the spec, the shape and the device's own limits.
#pragma once
#include "paged_decode_problem.hpp"
#include "swajit/device.hpp"
#include "swajit/spec.hpp"

namespace swajit {

// The compiled part (tile, warps, stages) for blocks that may use up to `max_shared_per_block` bytes of shared
// memory on multiprocessors with `max_shared_per_sm`; num_splits is left at 1 (see heuristic_num_splits).
DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm);
inline DecodeConfig heuristic_decode_config(const KernelSpec& spec, const DeviceInfo& device) {
  return heuristic_decode_config(spec, device.max_shared_per_block_optin, device.max_shared_per_sm);
}

// Splits so that batch x kv_heads x splits blocks fill the device (blocks_per_sm from the occupancy API), while
// each split keeps at least a few tiles of the window.
int heuristic_num_splits(const DecodeProblem& problem, const DecodeConfig& config, const DeviceInfo& device,
                         int blocks_per_sm);

}  // namespace swajit
