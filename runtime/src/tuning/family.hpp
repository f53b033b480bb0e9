// The kernel families as units: what the tuner, the tuning database and the CLI need from a family, one
// specialization of Family<Config> per family (its config type names it), and the one place a CUDA family is
// registered for code that only knows a spec's KernelFamily at run time (with_cuda_family). A family's source and
// launch geometry are the generate_kernel / kernel_geometry overloads of swajit/generator.hpp, which the kernel cache
// (cuda_kernel<Config>) uses. README: "Adding a kernel family".
#pragma once
#include <cuda.h>

#include <limits>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cuda_driver.hpp"
#include "decode_workload.hpp"
#include "heuristic.hpp"
#include "kernel_cache.hpp"
#include "prefill_problem.hpp"
#include "prefill_workload.hpp"
#include "sparse_decode_problem.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"
#include "tuner.hpp"
#include "tuning_store.hpp"

namespace swajit {

template <class Config>
struct Family;

// Paged decode on CUDA.
template <>
struct Family<DecodeConfig> {
  static constexpr KernelFamily kind = KernelFamily::kPagedDecode;
  using Shape = DecodeShape;  // what the tuner times
  static KernelSpec spec(const AttentionCall& call) { return paged_decode_kernel_spec(call); }
  // config: key (DecodeConfig::key / from_key) and JSON, as the database stores it
  static nlohmann::json to_json(const DecodeConfig& c) { return decode_config_to_json(c); }
  static DecodeConfig from_json(const nlohmann::json& j) { return decode_config_from_json(j); }
  static std::optional<DecodeConfig> winner(const std::string& sku, const std::string& spec_key, const std::string& bucket) {
    return TuningStore::instance().decode_winner(sku, spec_key, bucket);
  }
  // heuristic: for a device, or (gen without a GPU) with no shared-memory limit
  static DecodeConfig heuristic(const KernelSpec& spec, const DeviceInfo* device) {
    constexpr int kNoLimit = std::numeric_limits<int>::max();
    return device ? heuristic_decode_config(spec, *device) : heuristic_decode_config(spec, kNoLimit, kNoLimit);
  }
  // config space pruned by the device, verification against the reference and timing: the tuner
  static DecodeTuneReport tune(const DecodeShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& o) {
    return tune_decode_shape(shape, device, stream, o);
  }
};

// Prefill on CUDA.
template <>
struct Family<PrefillConfig> {
  static constexpr KernelFamily kind = KernelFamily::kPrefill;
  using Shape = PrefillShape;
  static KernelSpec spec(const AttentionCall& call) { return prefill_kernel_spec(call); }
  static nlohmann::json to_json(const PrefillConfig& c) { return prefill_config_to_json(c); }
  static PrefillConfig from_json(const nlohmann::json& j) { return prefill_config_from_json(j); }
  static std::optional<PrefillConfig> winner(const std::string& sku, const std::string& spec_key, const std::string& bucket) {
    return TuningStore::instance().prefill_winner(sku, spec_key, bucket);
  }
  static PrefillConfig heuristic(const KernelSpec& spec, const DeviceInfo* device) {
    return device ? heuristic_prefill_config(spec, *device) : PrefillConfig{};
  }
  static PrefillTuneReport tune(const PrefillShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& o) {
    return tune_prefill_shape(shape, device, stream, o);
  }
};

// Paged decode on the CPU backend: its config and database record (the backend itself lives in runtime/src/cpu).
template <>
struct Family<CpuDecodeConfig> {
  static constexpr KernelFamily kind = KernelFamily::kPagedDecode;
  static nlohmann::json to_json(const CpuDecodeConfig& c) { return cpu_decode_config_to_json(c); }
  static CpuDecodeConfig from_json(const nlohmann::json& j) { return cpu_decode_config_from_json(j); }
  static std::optional<CpuDecodeConfig> winner(const std::string& sku, const std::string& spec_key,
                                               const std::string& bucket) {
    return TuningStore::instance().cpu_decode_winner(sku, spec_key, bucket);
  }
  static CpuDecodeTuneReport tune(const DecodeShape& shape, const TuneOptions& o) { return tune_cpu_decode_shape(shape, o); }
};

// Sparse top-k decode on CUDA; the database record is the config key.
template <>
struct Family<SparseDecodeConfig> {
  static constexpr KernelFamily kind = KernelFamily::kSparseDecode;
  using Shape = SparseShape;
  static KernelSpec spec(const AttentionCall& call) { return sparse_decode_kernel_spec(call); }
  static nlohmann::json to_json(const SparseDecodeConfig& c) { return {{"key", c.key()}}; }
  static SparseDecodeConfig from_json(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("key") || !j["key"].is_string())
      throw Error(ErrorCode::kInvalidArgument, "a sparse_decode config record is {\"key\": \"bn<N>_st<S>[_mma[_ts]]_sp<P>\"}");
    return SparseDecodeConfig::from_key(j["key"].get<std::string>());
  }
  static std::optional<SparseDecodeConfig> winner(const std::string& sku, const std::string& spec_key, const std::string& bucket) {
    const std::optional<nlohmann::json> stored = TuningStore::instance().winner_config(sku, spec_key, bucket);
    return stored ? std::optional<SparseDecodeConfig>(from_json(*stored)) : std::nullopt;
  }
  static SparseTuneReport tune(const SparseShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& o) {
    return tune_sparse_shape(shape, device, stream, o);
  }
  static SparseDecodeConfig heuristic(const KernelSpec& spec, const DeviceInfo* device) {
    return device ? sparse_decode_heuristic(spec, *device) : sparse_decode_heuristic(spec, std::numeric_limits<int>::max());
  }
};

// Calls f(Family<Config>{}) for the CUDA family of `kind`: the one place a CUDA family is registered.
template <class F>
decltype(auto) with_cuda_family(KernelFamily kind, F&& f) {
  switch (kind) {
    case KernelFamily::kPagedDecode: return f(Family<DecodeConfig>{});
    case KernelFamily::kPrefill: return f(Family<PrefillConfig>{});
    case KernelFamily::kSparseDecode: return f(Family<SparseDecodeConfig>{});
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown kernel family " + std::to_string(int(kind)));
}

// A call's tuned config: the database's winner for (device SKU, spec, bucket), else, when `may_tune`, the winner of a
// tuning run of the call's shape (shape_of) made now through tune_on_miss, once however many threads miss it, on a
// stream of its own; nullopt when there is none.
template <class Config, class Problem>
std::optional<Config> tuned_config(const Problem& problem, const DeviceInfo& device, const std::string& bucket,
                                   bool may_tune) {
  using F = Family<Config>;
  const std::string sku = device.sku(), spec_key = problem.spec.key();
  if (std::optional<Config> stored = F::winner(sku, spec_key, bucket)) return stored;
  if (!may_tune) return std::nullopt;
  const auto lookup = [&]() -> std::optional<nlohmann::json> {
    if (std::optional<Config> stored = F::winner(sku, spec_key, bucket)) return F::to_json(*stored);
    return std::nullopt;
  };
  const auto tune = [&] {
    const cuda::OwnedStream stream = cuda::create_stream();  // destroyed however the run ends
    TuneOptions options;
    options.origin = "tuned on a miss";
    return F::to_json(F::tune(shape_of(problem), device, stream.get(), options).best);
  };
  return F::from_json(tune_on_miss(sku + " " + spec_key + " " + bucket, lookup, tune));
}

}  // namespace swajit
