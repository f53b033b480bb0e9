// Where a paged-decode call's time goes, block by block: a device-run experiment (SWAJIT_DECODE_TIMELINE=1; off
// otherwise, and the kernels compile the stamps out). Each call's grids get their own records in a ring of device
// memory (so a CUDA graph's captured calls keep theirs across replays); thread 0 of every block writes %globaltimer at
// fixed points (templates/paged_decode_params.h DecodeTimelineWord) and its SM; print_decode_timeline reads a call's
// records back and prints each point's median / max over blocks, the SMs the blocks sat on, items and tiles per block.
#pragma once
#include <cuda.h>

#include <cstddef>
#include <cstdio>
#include <string>

namespace swajit {

bool decode_timeline_enabled();  // SWAJIT_DECODE_TIMELINE=1 (generator: decode_timeline_requested)

// What a call launches, for the report.
struct DecodeTimelineLaunch {
  std::string config;               // the config key, with the grid (direct or scheduled)
  int main_blocks = 0, merge_blocks = 0;
  int threads = 0, shared_bytes = 0, registers = 0;
  int blocks_per_sm = 0;            // resident blocks an SM by the occupancy calculator (registers, shared memory)
  int slots = 0, sequence_pieces = 1;  // the work list's (paged_decode.cpp)
};

// Device memory for one call's records (main-grid blocks' then merge blocks'), the next of the ring; thread safe.
unsigned long long* decode_timeline_records(const DecodeTimelineLaunch& launch);

// Calls recorded so far in this process.
size_t decode_timeline_calls();

// Prints the timeline of recorded call `call` (0: the process's first), and when the call before it ran; the device
// work must be done and the call among the last 1024 recorded.
void print_decode_timeline(size_t call, FILE* out);

}  // namespace swajit
