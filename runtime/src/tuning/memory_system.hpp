// A device's memory system as the heuristics need it: how fast a streaming read of the KV cache runs and how many
// bytes must be in flight to sustain it (Little's law: bandwidth x latency). Derived from the device's own attributes
// (DeviceInfo: memory clock, bus width, SM count, L2), with one row per architecture for what no attribute reports
// (the fraction of the peak a streaming read reaches, the latency under load). A heuristic that sizes pipelines,
// blocks per SM or the split of the KV from these follows a new SKU without a tuning run.
#pragma once
#include <cstdint>

#include "swajit/device.hpp"

namespace swajit {

struct MemorySystem {
  double peak_bytes_per_s = 0;        // DRAM peak: 2 transfers per memory clock x bus width (the table's, if unreported)
  double read_bytes_per_s = 0;        // a streaming read: the peak x the architecture's read efficiency
  double latency_s = 0;               // DRAM latency under a streaming load (the architecture's)
  double bytes_in_flight = 0;         // read_bytes_per_s x latency_s: outstanding reads that keep DRAM busy
  int64_t bytes_in_flight_per_sm = 0; // the same per SM (every SM streams its share)
  int64_t l2_bytes = 0;
  bool from_attributes = false;       // peak from the device's memory clock and bus width (else the table's)
  double bulk_rows_per_s_per_sm = 0;  // row copies (cp.async.bulk, one per K or V token row) an SM completes a second
};

MemorySystem memory_system(const DeviceInfo& device);

// Stages of a cp.async / bulk-copy pipeline whose blocks move `bytes_per_stage` per stage, `blocks_per_sm` blocks to
// an SM: the fewest that keep the SM's share of bytes_in_flight requested at every moment. A block refills the slot
// it consumed only after its barrier, so while it computes one tile the next has often landed already: only
// stages - 2 tiles are surely in flight, and they must hold the share (at least one: 3 stages or more).
int stages_for_bandwidth(const MemorySystem& memory, int64_t bytes_per_stage, int blocks_per_sm);

}  // namespace swajit
