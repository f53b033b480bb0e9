#include "checked_input.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>

#include "swajit/device.hpp"
#include "swajit/error.hpp"
#include "swajit/json_input.hpp"

namespace swajit::cli {
namespace {

[[noreturn]] void bad_shape(const std::string& where, const std::string& problem) {
  throw Error(ErrorCode::kInvalidArgument, where + ": " + problem);
}

// An error's message without the "<code name>: " prefix, for wrapping it with where it happened.
std::string message_of(const Error& e) {
  const std::string prefix = std::string(error_code_name(e.code())) + ": ", what = e.what();
  return what.starts_with(prefix) ? what.substr(prefix.size()) : what;
}

// Bytes of memory the workloads may use on `device`: its total memory (the CPU: physical RAM).
double memory_bytes(DLDevice device) {
  if (device.device_type == kDLCUDA) return double(cuda_device(device.device_id).total_memory);
  return double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
}

}  // namespace

void check_decode_shape(const DecodeShape& s, const std::string& where, DLDevice device) {
  if (s.num_kv_heads < 1 || s.num_q_heads < 1 || s.num_q_heads % s.num_kv_heads != 0)
    bad_shape(where, "num_q_heads (" + std::to_string(s.num_q_heads) + ") must be a positive multiple of num_kv_heads (" +
                         std::to_string(s.num_kv_heads) + ")");
  try {
    s.spec();
  } catch (const Error& e) {
    bad_shape(where, message_of(e));
  }
  if (s.batch < 1 || s.batch > kMaxSize) bad_shape(where, "batch must be 1.." + std::to_string(kMaxSize));
  if (s.kv_len < s.q_seqlen || s.kv_len > kMaxSize)
    bad_shape(where, "kv_len (" + std::to_string(s.kv_len) + ") must be from q_seqlen (" + std::to_string(s.q_seqlen) +
                         ") to " + std::to_string(kMaxSize));
  if (s.local_window < 0 || s.global_window < 0) bad_shape(where, "local_window and global_window must be >= 0");
  // One copy of the pages the windows touch (all the workloads allocate) and of q / out; the workloads rotate extra
  // copies only as memory allows.
  const double kv_bytes_per_element = s.kv_quant == KvQuant::kNone ? 2.0 : 1.0;
  double tokens = 0;  // of the whole batch, a page of slack each
  for (int b = 0; b < s.batch; ++b) tokens += double(s.touched_pages(b).count() + 1) * s.page_size;
  const double bytes = 2.0 * tokens * s.num_kv_heads * s.head_dim * kv_bytes_per_element +
                       2.0 * s.batch * s.q_seqlen * double(s.num_q_heads) * s.head_dim * 2.0;
  const double available = memory_bytes(device);
  if (bytes > available) {
    char text[128];
    std::snprintf(text, sizeof text, "needs %.1f GiB of KV cache and queries; the device has %.1f GiB",
                  bytes / double(1 << 30), available / double(1 << 30));
    bad_shape(where, text);
  }
}

std::vector<DecodeShape> decode_shapes_from_json(const nlohmann::json& document, const std::string& where) {
  if (!document.is_object() || !document.contains("shapes") || !document["shapes"].is_array())
    throw Error(ErrorCode::kInvalidArgument, where + " needs {\"shapes\": [ ... ]}");
  std::vector<DecodeShape> shapes;
  const nlohmann::json& entries = document["shapes"];
  for (size_t i = 0; i < entries.size(); ++i) {
    const nlohmann::json& j = entries[i];
    const std::string at = where + ": shapes[" + std::to_string(i) + "]";
    DecodeShape s;
    const auto size = [&](const char* name, std::optional<int> fallback = std::nullopt) {
      return int(json_integer(j, at, name, 1, kMaxSize, fallback));
    };
    s.batch = size("batch");
    s.kv_len = size("kv_len");
    s.num_q_heads = size("num_q_heads");
    s.num_kv_heads = size("num_kv_heads");
    s.head_dim = size("head_dim");
    s.q_seqlen = size("q_seqlen", s.q_seqlen);
    s.page_size = size("page_size", s.page_size);
    s.local_window = int(json_integer(j, at, "local_window", 0, kMaxWindow, s.local_window));
    s.global_window = int(json_integer(j, at, "global_window", 0, kMaxWindow, s.global_window));
    const std::string dtype = json_string(j, at, "dtype", std::string(to_string(s.dtype)));
    const std::string kv_quant = json_string(j, at, "kv_quant", std::string(to_string(s.kv_quant)));
    try {
      s.dtype = parse_dtype(dtype);
      s.kv_quant = parse_kv_quant(kv_quant);
    } catch (const Error& e) {
      bad_shape(at, message_of(e));
    }
    s.sink_logits = json_bool(j, at, "sink_logits", s.sink_logits);
    shapes.push_back(s);
  }
  return shapes;
}

std::pair<int, int> parse_shard(const std::string& text) {
  const auto bad = [&] {
    return Error(ErrorCode::kInvalidArgument, "--shard '" + text + "' must be i/n with 0 <= i < n <= " +
                                                  std::to_string(kMaxSize));
  };
  const size_t slash = text.find('/');
  if (slash == std::string::npos) throw bad();
  const auto number = [&](size_t begin, size_t end) {
    std::int64_t value = -1;
    const auto [ptr, ec] = std::from_chars(text.data() + begin, text.data() + end, value);
    if (ec != std::errc() || ptr != text.data() + end || begin == end) throw bad();
    return value;
  };
  const std::int64_t index = number(0, slash), count = number(slash + 1, text.size());
  if (count < 1 || count > kMaxSize || index < 0 || index >= count) throw bad();
  return {int(index), int(count)};
}

}  // namespace swajit::cli
