// The runtime's view of the tuning database: where it is, the shape-bucket rule, tuned configs by
// (device SKU, spec key, bucket) -- the user's database first, then the shipped data beneath it (shipped_tuning.hpp)
// -- and compiled binaries by hash. One process-wide connection, opened on first use;
// if the file cannot be opened the runtime says so once on stderr and runs on heuristics.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "swajit/device.hpp"
#include "swajit/spec.hpp"
#include "swajit/tuning_db.hpp"

namespace swajit {

// The shape-bucket rule, one place: batch and the KV length a call can see (window + queries + sinks, bounded by
// the block table) are each rounded up to a power of two. Its text is what `swajit db show` prints.
struct ShapeBucket {
  int batch = 1;
  int visible_kv = 1;
  std::string key() const;  // e.g. "b32_kv8192"
};
ShapeBucket shape_bucket(int batch, int visible_kv_len);
// Prefill: b<batch>_q<longest query run>_w<local window, 0 if none>, each rounded up to a power of two.
std::string prefill_bucket_key(int batch, int max_q_len, int local_window);
const char* bucket_rule_text();

nlohmann::json decode_config_to_json(const DecodeConfig& config);
DecodeConfig decode_config_from_json(const nlohmann::json& json);  // throws kInvalidArgument naming the missing field
nlohmann::json cpu_decode_config_to_json(const CpuDecodeConfig& config);
CpuDecodeConfig cpu_decode_config_from_json(const nlohmann::json& json);
nlohmann::json prefill_config_to_json(const PrefillConfig& config);
PrefillConfig prefill_config_from_json(const nlohmann::json& json);

db::DeviceRecord device_record(const DeviceInfo& device, int nvrtc_version);

// The process-wide database. Every member is thread-safe.
class TuningStore {
 public:
  static TuningStore& instance();
  void set_path(const std::string& path);  // before first use; later calls reopen
  std::string path() const;
  bool available();                       // false when the file could not be opened (reason printed once)

  std::optional<DecodeConfig> decode_winner(const std::string& sku, const std::string& spec_key, const std::string& bucket);
  std::optional<CpuDecodeConfig> cpu_decode_winner(const std::string& sku, const std::string& spec_key, const std::string& bucket);
  std::optional<PrefillConfig> prefill_winner(const std::string& sku, const std::string& spec_key, const std::string& bucket);
  // The winning config's JSON, whatever the family (memoized, misses included).
  std::optional<nlohmann::json> winner_config(const std::string& sku, const std::string& spec_key, const std::string& bucket);
  // Runs `f` with the open database under the store's lock (for the tuner and the CLI); false if unavailable.
  template <class F>
  bool with_db(F&& f);

  // A compiled binary by its hash (source, options, target: never the compiler's version, so that finding it needs
  // no compiler), with the compiler and driver versions it was built under, for the caller to judge.
  struct StoredBinary {
    std::vector<char> bytes;
    int compiler_version = 0;
    int driver_version = 0;
  };
  std::optional<StoredBinary> binary(const std::string& hash);
  void put_binary(const std::string& hash, const std::string& arch, int compiler_version, int driver_version,
                  const std::vector<char>& cubin);
  void forget_cached_winners();  // after the tuner stored new ones

 private:
  TuningStore() = default;
  db::TuningDb* open_locked();
  struct State;
  State& state();
};

}  // namespace swajit

#include "tuning_store_impl.hpp"
