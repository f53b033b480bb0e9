// The ranges of the numbers the CLI reads, from flags and from workload files alike: one place for both, each
// checked in 64 bits before it is narrowed to the int the workloads use.
#pragma once
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include <dlpack/dlpack.h>

#include "decode_workload.hpp"

namespace swajit::cli {

// Sizes (batch, KV length, head counts): 1 .. 2^24, far above any model's. The memory a whole shape needs is
// checked against the device's own memory by check_decode_shape.
inline constexpr std::int64_t kMaxSize = std::int64_t(1) << 24;
// Timed repetitions: at least 1 (a median needs a sample); 10^6 keeps even a 1 ms kernel under 20 minutes.
inline constexpr std::int64_t kMaxReps = 1'000'000;
// Windows: 0 (none) .. the largest int the library's options hold.
inline constexpr std::int64_t kMaxWindow = std::numeric_limits<int>::max();

// CLI11 validators for the flags above (each element of a list flag is checked).
inline CLI::Range size_range() { return CLI::Range(std::int64_t(1), kMaxSize, "1.." + std::to_string(kMaxSize)); }
inline CLI::Range reps_range() { return CLI::Range(std::int64_t(1), kMaxReps, "1.." + std::to_string(kMaxReps)); }
inline CLI::Range window_range() { return CLI::Range(std::int64_t(0), kMaxWindow, "0.." + std::to_string(kMaxWindow)); }

// Any 64-bit unsigned integer, digits only: CLI11 alone reads "-1" as 2^64 - 1 and 2^64 as some other number.
inline CLI::Validator unsigned_64() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (text.empty() || ec != std::errc() || ptr != end)
          return "'" + text + "' must be an integer from 0 to " + std::to_string(~std::uint64_t(0));
        return "";
      },
      "0.." + std::to_string(~std::uint64_t(0)));
}

// Checks what no single field shows: a valid kernel spec (head_dim, page size, q_seqlen, group), kv_len >= q_seqlen,
// num_q_heads a multiple of num_kv_heads, and KV cache + queries fitting the memory of `device` (read from the
// device, or the host's physical memory for the CPU). Throws kInvalidArgument naming `where` and the field.
void check_decode_shape(const DecodeShape& shape, const std::string& where, DLDevice device);

// The shapes of a workload document {"shapes": [{batch, kv_len, num_q_heads, num_kv_heads, head_dim, q_seqlen?,
// page_size?, dtype?, kv_quant?, local_window?, global_window?, sink_logits?}]}; every field typed and range checked.
std::vector<DecodeShape> decode_shapes_from_json(const nlohmann::json& document, const std::string& where);

// "i/n" with 0 <= i < n, the whole text (nothing may follow n).
std::pair<int, int> parse_shard(const std::string& text);

}  // namespace swajit::cli
