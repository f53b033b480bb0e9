#include "tuning_store.hpp"

#include <bit>
#include <cstdio>

#include "shipped_tuning.hpp"
#include "swajit/error.hpp"

namespace swajit {

std::string ShapeBucket::key() const { return "b" + std::to_string(batch) + "_kv" + std::to_string(visible_kv); }

ShapeBucket shape_bucket(int batch, int visible_kv_len) {
  ShapeBucket b;
  b.batch = int(std::bit_ceil(unsigned(std::max(1, batch))));
  b.visible_kv = int(std::bit_ceil(unsigned(std::max(1, visible_kv_len))));
  return b;
}

std::string prefill_bucket_key(int batch, int max_q_len, int local_window) {
  const auto round_up = [](int n) { return std::to_string(std::bit_ceil(unsigned(std::max(1, n)))); };
  return "b" + round_up(batch) + "_q" + round_up(max_q_len) + "_w" + (local_window > 0 ? round_up(local_window) : "0");
}

const char* bucket_rule_text() {
  return "decode: bucket = b<batch rounded up to a power of two>_kv<visible KV length rounded up to a power of two>, "
         "where the visible KV length is min(max_pages_per_seq * page_size, local_window + q_seqlen - 1 + "
         "global_window) (the whole table when there is no local window), so a ragged batch's bucket is that of its "
         "table and does not move as the device-side lengths change; prefill: bucket = b<batch>_q<longest query "
         "run>_w<local window, 0 if none>, each rounded up to a power of two";
}

namespace {
// Reads the integer fields of `fields` from `j`, naming the first one missing.
template <size_t N>
void read_fields(const nlohmann::json& j, const std::pair<const char*, int*> (&fields)[N]) {
  for (const auto& [name, field] : fields) {
    if (!j.is_object() || !j.contains(name) || !j[name].is_number_integer())
      throw Error(ErrorCode::kInvalidArgument, std::string("config JSON needs an integer '") + name + "': " + j.dump());
    *field = j[name].template get<int>();
  }
}
}  // namespace

nlohmann::json cpu_decode_config_to_json(const CpuDecodeConfig& c) {
  return {{"backend", "cpu"}, {"block_n", c.block_n}, {"num_splits", c.num_splits}, {"threads", c.threads}};
}
CpuDecodeConfig cpu_decode_config_from_json(const nlohmann::json& j) {
  CpuDecodeConfig c;
  const std::pair<const char*, int*> fields[] = {{"block_n", &c.block_n}, {"num_splits", &c.num_splits}, {"threads", &c.threads}};
  read_fields(j, fields);
  return c;
}

nlohmann::json decode_config_to_json(const DecodeConfig& c) {
  nlohmann::json j{{"block_n", c.block_n}, {"warps_n", c.warps_n}, {"stages", c.stages}, {"num_splits", c.num_splits}};
  if (c.producer != 0) j["producer"] = c.producer;  // records of the default loaders stay as they were
  if (c.fused_merge) j["fused_merge"] = 1;            // and of the merge grid
  if (c.pages_first) j["pages_first"] = 1;            // and of the loaders' checks between reads
  if (c.pages_ahead) j["pages_ahead"] = 1;
  if (c.early_tiles) j["early_tiles"] = 1;
  if (c.min_blocks > 1) j["min_blocks"] = c.min_blocks;  // and of uncapped registers
  if (c.integer_scores) j["integer_scores"] = 1;      // and of the widened int8 scores
  return j;
}

DecodeConfig decode_config_from_json(const nlohmann::json& j) {
  DecodeConfig c;
  const std::pair<const char*, int*> fields[] = {
      {"block_n", &c.block_n}, {"warps_n", &c.warps_n}, {"stages", &c.stages}, {"num_splits", &c.num_splits}};
  read_fields(j, fields);
  if (j.contains("producer")) {  // absent in records written before the knob existed: 0
    const std::pair<const char*, int*> producer[] = {{"producer", &c.producer}};
    read_fields(j, producer);
  }
  if (j.contains("fused_merge")) {
    int fused = 0;
    const std::pair<const char*, int*> fused_merge[] = {{"fused_merge", &fused}};
    read_fields(j, fused_merge);
    c.fused_merge = fused != 0;
  }
  if (j.contains("min_blocks")) {
    const std::pair<const char*, int*> min_blocks[] = {{"min_blocks", &c.min_blocks}};
    read_fields(j, min_blocks);
  }
  for (auto [name, flag] : {std::pair<const char*, bool*>{"pages_first", &c.pages_first}, {"pages_ahead", &c.pages_ahead}, {"early_tiles", &c.early_tiles}, {"integer_scores", &c.integer_scores}}) {
    if (!j.contains(name)) continue;  // records written before the knob: off
    int value = 0;
    const std::pair<const char*, int*> field[] = {{name, &value}};
    read_fields(j, field);
    *flag = value != 0;
  }
  return c;
}

nlohmann::json prefill_config_to_json(const PrefillConfig& c) {
  nlohmann::json j = {{"family", "prefill"}, {"block_m", c.block_m}, {"block_n", c.block_n}, {"stages", c.stages},
                      {"m_tiles", c.m_tiles}, {"wgmma", c.wgmma ? 1 : 0}, {"min_blocks", c.min_blocks},
                      {"warp_specialize", c.warp_specialize}, {"tma", c.tma ? 1 : 0}};
  if (c.persistent) j["persistent"] = 1;  // written only when set: the records of configs without it stay as they were
  if (c.snake_order) j["snake_order"] = 1;  // likewise
  if (c.overlap_items) j["overlap_items"] = 1;
  if (c.dynamic_items) j["dynamic_items"] = 1;
  if (c.tma_store) j["tma_store"] = 1;
  if (c.softmax_chains) j["softmax_chains"] = 1;
  if (c.producer_registers > 0) j["producer_registers"] = c.producer_registers;  // likewise
  if (c.f16_mma) j["f16_mma"] = 1;  // likewise
  if (c.stored_k_scores) j["stored_k_scores"] = 1;  // likewise
  if (c.stored_v) j["stored_v"] = 1;  // likewise
  if (c.consumer_fold) j["consumer_fold"] = 1;  // likewise
  if (c.widen_rows) j["widen_rows"] = 1;  // likewise
  if (c.widen_ahead) j["widen_ahead"] = 1;  // likewise
  return j;
}
PrefillConfig prefill_config_from_json(const nlohmann::json& j) {
  PrefillConfig c;
  int wgmma = 0;
  const std::pair<const char*, int*> fields[] = {{"block_m", &c.block_m}, {"block_n", &c.block_n},
                                                 {"stages", &c.stages},   {"m_tiles", &c.m_tiles},
                                                 {"wgmma", &wgmma},       {"min_blocks", &c.min_blocks}};
  read_fields(j, fields);
  c.wgmma = wgmma != 0;
  for (const auto& [name, field] : {std::pair<const char*, int*>{"warp_specialize", &c.warp_specialize},
                                    {"producer_registers", &c.producer_registers}}) {
    if (!j.contains(name)) continue;  // absent in records written before the knob existed: 0
    const std::pair<const char*, int*> optional[] = {{name, field}};
    read_fields(j, optional);
  }
  // absent in records written before the knob existed: false
  for (const auto& [name, flag] : {std::pair<const char*, bool*>{"tma", &c.tma}, {"persistent", &c.persistent},
                                    {"snake_order", &c.snake_order}, {"overlap_items", &c.overlap_items},
                                    {"dynamic_items", &c.dynamic_items}, {"tma_store", &c.tma_store},
                                    {"softmax_chains", &c.softmax_chains}, {"f16_mma", &c.f16_mma},
                                    {"stored_k_scores", &c.stored_k_scores}, {"stored_v", &c.stored_v}, {"consumer_fold", &c.consumer_fold},
                                    {"widen_rows", &c.widen_rows},
                                    {"widen_ahead", &c.widen_ahead}}) {
    if (!j.contains(name)) continue;
    int value = 0;
    const std::pair<const char*, int*> optional[] = {{name, &value}};
    read_fields(j, optional);
    *flag = value != 0;
  }
  return c;
}

db::DeviceRecord device_record(const DeviceInfo& device, int nvrtc_version) {
  db::DeviceRecord r;
  r.sku = device.sku();
  r.name = device.name;
  r.backend = "cuda";
  r.cc_major = device.cc_major;
  r.cc_minor = device.cc_minor;
  r.sm_count = device.sm_count;
  r.memory_bytes = int64_t(device.total_memory);
  r.driver_version = device.driver_version;
  r.compiler_version = nvrtc_version;
  r.extra = {{"l2_bytes", device.l2_bytes}, {"max_shared_per_block_optin", device.max_shared_per_block_optin}};
  return r;
}

TuningStore& TuningStore::instance() {
  static TuningStore store;
  return store;
}

TuningStore::State& TuningStore::state() {
  static State s;
  return s;
}

void TuningStore::set_path(const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.path = path;
  s.db.reset();
  s.tried = false;
  s.winners.clear();
}

std::string TuningStore::path() const {
  State& s = const_cast<TuningStore*>(this)->state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.path.empty() ? db::TuningDb::default_path() : s.path;
}

db::TuningDb* TuningStore::open_locked() {
  State& s = state();
  if (s.db) return s.db.get();
  if (s.tried) return nullptr;
  s.tried = true;
  const std::string where = s.path.empty() ? db::TuningDb::default_path() : s.path;
  try {
    s.db = std::make_unique<db::TuningDb>(where, db::TuningDb::OpenCheck::kHeader);  // the warm start's open
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swajit: tuning database unavailable, using heuristic configs: %s\n", e.what());
  }
  return s.db.get();
}

bool TuningStore::available() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return open_locked() != nullptr;
}

std::optional<nlohmann::json> TuningStore::winner_config(const std::string& sku, const std::string& spec_key,
                                                       const std::string& bucket) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const std::string key = sku + "|" + spec_key + "|" + bucket;
  auto it = s.winners.find(key);
  if (it != s.winners.end()) return it->second;
  std::optional<nlohmann::json> config;
  if (db::TuningDb* db = open_locked()) {
    try {
      if (auto row = db->get_winner(sku, spec_key, bucket)) config = row->config;
    } catch (const Error& e) {  // a damaged file found on reading: the call runs on shipped data or the heuristic
      std::fprintf(stderr, "swajit: tuning database lookup failed (%s); `swajit db verify` checks the file\n", e.what());
    }
  }
  if (!config) config = shipped::config(sku, spec_key, bucket);  // the user's rows win; shipped data lies beneath
  s.winners[key] = config;
  return config;
}

// A hand-edited or foreign row is reported and ignored: the call falls back to the heuristic.
template <class Config, class Parse>
std::optional<Config> parse_winner(const std::optional<nlohmann::json>& json, const std::string& spec_key,
                                   const std::string& bucket, Parse parse) {
  if (!json) return std::nullopt;
  try {
    return parse(*json);
  } catch (const Error& e) {
    std::fprintf(stderr, "swajit: ignoring tuned config for %s %s: %s\n", spec_key.c_str(), bucket.c_str(), e.what());
    return std::nullopt;
  }
}

std::optional<DecodeConfig> TuningStore::decode_winner(const std::string& sku, const std::string& spec_key,
                                                const std::string& bucket) {
  return parse_winner<DecodeConfig>(winner_config(sku, spec_key, bucket), spec_key, bucket, decode_config_from_json);
}
std::optional<CpuDecodeConfig> TuningStore::cpu_decode_winner(const std::string& sku, const std::string& spec_key,
                                                       const std::string& bucket) {
  return parse_winner<CpuDecodeConfig>(winner_config(sku, spec_key, bucket), spec_key, bucket, cpu_decode_config_from_json);
}
std::optional<PrefillConfig> TuningStore::prefill_winner(const std::string& sku, const std::string& spec_key,
                                                         const std::string& bucket) {
  return parse_winner<PrefillConfig>(winner_config(sku, spec_key, bucket), spec_key, bucket, prefill_config_from_json);
}

void TuningStore::forget_cached_winners() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.winners.clear();
}

std::optional<TuningStore::StoredBinary> TuningStore::binary(const std::string& hash) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  db::TuningDb* db = open_locked();
  if (!db) return std::nullopt;
  std::optional<db::BinaryRecord> row;
  try {
    row = db->get_binary(hash);
  } catch (const Error& e) {  // an unreadable row is compiled again, never a failed call
    std::fprintf(stderr, "swajit: reading a stored kernel failed (%s); compiling it again\n", e.what());
  }
  if (!row) return std::nullopt;
  return StoredBinary{std::vector<char>(row->blob.begin(), row->blob.end()), int(row->compiler_version),
                      int(row->driver_version)};
}

void TuningStore::put_binary(const std::string& hash, const std::string& arch, int compiler_version,
                             int driver_version, const std::vector<char>& cubin) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  db::TuningDb* db = open_locked();
  if (!db) return;
  db::BinaryRecord r;
  r.hash = hash;
  r.arch = arch;
  r.compiler_version = compiler_version;
  r.driver_version = driver_version;
  r.blob.assign(cubin.begin(), cubin.end());
  try {
    db->put_binary(r);
  } catch (const Error& e) {  // a full disk or a read-only file must not fail the call that compiled
    std::fprintf(stderr, "swajit: could not store a compiled kernel: %s\n", e.what());
  }
}

}  // namespace swajit
