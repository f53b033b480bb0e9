#include "swajit/spec.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <vector>

#include "swajit/error.hpp"
#include "swajit/generator.hpp"

namespace swajit {
namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

// "d128" with prefix "d" -> 128; throws naming `what` in `key` otherwise.
int parse_prefixed_int(std::string_view token, std::string_view prefix, std::string_view what, std::string_view key) {
  int value = 0;
  const bool prefix_ok = token.substr(0, prefix.size()) == prefix;
  const char* first = token.data() + prefix.size();
  const char* last = token.data() + token.size();
  const auto [ptr, ec] = std::from_chars(first, last, value);
  if (!prefix_ok || ec != std::errc() || ptr != last || first == last)
    throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "': expected " + std::string(what) +
                                                 " as '" + std::string(prefix) + "<number>', got '" +
                                                 std::string(token) + "'");
  return value;
}

void require_range(std::string_view field, int value, int lo, int hi) {
  if (value < lo || value > hi)
    throw Error(ErrorCode::kInvalidArgument, std::string(field) + " = " + std::to_string(value) +
                                                 " is outside the allowed range [" + std::to_string(lo) + ", " +
                                                 std::to_string(hi) + "]");
}

std::string_view windows_token(bool local, bool global) {
  if (local && global) return "local_global";
  if (local) return "local";
  if (global) return "global";
  return "full";
}

constexpr std::string_view kSinkLogitsToken = "attnsink";
constexpr std::string_view kInterleavedGqaToken = "gqai";
constexpr std::string_view kInt8KvToken = "kvint8";
constexpr std::string_view kFp8KvToken = "kvfp8";

}  // namespace

std::string_view to_string(KernelFamily family) {
  switch (family) {
    case KernelFamily::kPagedDecode: return "paged_decode";
  }
  return "?";
}
std::string_view to_string(DType dtype) { return dtype == DType::kBF16 ? "bf16" : "fp16"; }
std::string_view to_string(KvLayout layout) { return layout == KvLayout::kNHD ? "nhd" : "hnd"; }

std::string_view to_string(KvQuant quant) {
  switch (quant) {
    case KvQuant::kInt8: return "int8";
    case KvQuant::kFp8E4M3: return "fp8";
    case KvQuant::kNone: break;
  }
  return "none";
}
std::string_view to_string(GqaMapping gqa) { return gqa == GqaMapping::kGrouped ? "grouped" : "interleaved"; }

KvQuant parse_kv_quant(std::string_view text) {
  if (text == "none") return KvQuant::kNone;
  if (text == "int8") return KvQuant::kInt8;
  if (text == "fp8") return KvQuant::kFp8E4M3;
  throw Error(ErrorCode::kInvalidArgument, "kv quantization '" + std::string(text) + "' is unknown; accepted: none, int8, fp8");
}
GqaMapping parse_gqa(std::string_view text) {
  if (text == "grouped") return GqaMapping::kGrouped;
  if (text == "interleaved") return GqaMapping::kInterleaved;
  throw Error(ErrorCode::kInvalidArgument, "GQA mapping '" + std::string(text) + "' is unknown; accepted: grouped, interleaved");
}

KernelFamily parse_family(std::string_view text) {
  if (text == "paged_decode") return KernelFamily::kPagedDecode;
  throw Error(ErrorCode::kInvalidArgument, "family '" + std::string(text) + "' is unknown; accepted: paged_decode");
}
DType parse_dtype(std::string_view text) {
  if (text == "bf16") return DType::kBF16;
  if (text == "fp16") return DType::kFP16;
  throw Error(ErrorCode::kInvalidArgument, "dtype '" + std::string(text) + "' is unknown; accepted: bf16, fp16");
}
KvLayout parse_kv_layout(std::string_view text) {
  if (text == "nhd" || text == "NHD") return KvLayout::kNHD;
  if (text == "hnd" || text == "HND") return KvLayout::kHND;
  throw Error(ErrorCode::kInvalidArgument, "kv layout '" + std::string(text) + "' is unknown; accepted: nhd, hnd");
}

std::string KernelSpec::key() const {
  std::ostringstream key;
  key << to_string(family) << '_' << to_string(dtype) << "_d" << head_dim << "_p" << page_size << '_'
      << to_string(kv_layout) << "_q" << q_seqlen << "_g" << group << '_' << windows_token(local_window, global_window);
  if (sink_logits) key << '_' << kSinkLogitsToken;
  if (gqa == GqaMapping::kInterleaved) key << '_' << kInterleavedGqaToken;
  if (kv_quant == KvQuant::kInt8) key << '_' << kInt8KvToken;
  if (kv_quant == KvQuant::kFp8E4M3) key << '_' << kFp8KvToken;
  return key.str();
}

KernelSpec KernelSpec::from_key(std::string_view key) {
  constexpr std::string_view kFamilyPrefix = "paged_decode_";
  if (key.substr(0, kFamilyPrefix.size()) != kFamilyPrefix)
    throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "' does not start with a known family (paged_decode)");
  const auto parts = split(key.substr(kFamilyPrefix.size()), '_');
  const std::string form = "paged_decode_<dtype>_d<D>_p<P>_<nhd|hnd>_q<Q>_g<G>_<full|local|global|local_global>"
                           "[_attnsink][_gqai][_kvint8|_kvfp8]";
  constexpr size_t kFixedParts = 6;  // dtype, head_dim, page_size, layout, q_seqlen, group
  if (parts.size() <= kFixedParts)
    throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "' does not have the form " + form);
  KernelSpec spec;
  spec.family = KernelFamily::kPagedDecode;
  spec.dtype = parse_dtype(parts[0]);
  spec.head_dim = parse_prefixed_int(parts[1], "d", "head_dim", key);
  spec.page_size = parse_prefixed_int(parts[2], "p", "page_size", key);
  spec.kv_layout = parse_kv_layout(parts[3]);
  spec.q_seqlen = parse_prefixed_int(parts[4], "q", "q_seqlen", key);
  spec.group = parse_prefixed_int(parts[5], "g", "group", key);
  size_t next = kFixedParts;
  if (parts[next] == "local" && next + 1 < parts.size() && parts[next + 1] == "global") {
    spec.local_window = spec.global_window = true;
    next += 2;
  } else {
    spec.local_window = parts[next] == "local";
    spec.global_window = parts[next] == "global";
    if (!spec.local_window && !spec.global_window && parts[next] != "full")
      throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "': windows part '" + std::string(parts[next]) +
                                                   "' is not one of full, local, global, local_global");
    ++next;
  }
  for (; next < parts.size(); ++next) {
    if (parts[next] == kSinkLogitsToken) spec.sink_logits = true;
    else if (parts[next] == kInterleavedGqaToken) spec.gqa = GqaMapping::kInterleaved;
    else if (parts[next] == kInt8KvToken) spec.kv_quant = KvQuant::kInt8;
    else if (parts[next] == kFp8KvToken) spec.kv_quant = KvQuant::kFp8E4M3;
    else throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "': unknown flag '" + std::string(parts[next]) +
                                                      "'; the form is " + form);
  }
  if (spec.key() != key)
    throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "' is not canonical; canonical form: " + spec.key());
  spec.validate();
  return spec;
}

void KernelSpec::validate() const {
  const auto& dims = SpecLimits::kHeadDims;
  if (std::find(std::begin(dims), std::end(dims), head_dim) == std::end(dims))
    throw Error(ErrorCode::kUnsupported, "head_dim = " + std::to_string(head_dim) + " is not supported; supported: 64, 128, 256");
  require_range("page_size", page_size, SpecLimits::kMinPageSize, SpecLimits::kMaxPageSize);
  require_range("q_seqlen", q_seqlen, SpecLimits::kMinQSeqlen, SpecLimits::kMaxQSeqlen);
  require_range("group (num_q_heads / num_kv_heads)", group, SpecLimits::kMinGroup, SpecLimits::kMaxGroup);
}

std::string DecodeConfig::compile_key() const {
  return "bn" + std::to_string(block_n) + "_wn" + std::to_string(warps_n) + "_st" + std::to_string(stages);
}
std::string DecodeConfig::key() const { return compile_key() + "_sp" + std::to_string(num_splits); }

DecodeConfig DecodeConfig::from_key(std::string_view key) {
  const auto parts = split(key, '_');
  if (parts.size() != 4)
    throw Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' does not have the form bn<N>_wn<W>_st<S>_sp<P>");
  DecodeConfig config;
  config.block_n = parse_prefixed_int(parts[0], "bn", "block_n", key);
  config.warps_n = parse_prefixed_int(parts[1], "wn", "warps_n", key);
  config.stages = parse_prefixed_int(parts[2], "st", "stages", key);
  config.num_splits = parse_prefixed_int(parts[3], "sp", "num_splits", key);
  return config;
}

void DecodeConfig::validate(const KernelSpec& spec) const {
  constexpr int kMmaK = 16;       // tokens per mma k-step: each warp's share of a tile is a multiple of it
  constexpr int kMaxBlockN = 256;
  constexpr int kMaxStages = 8;
  constexpr int kMaxThreadsPerBlock = 1024;  // CUDA's architectural limit on every GPU
  require_range("block_n", block_n, kMmaK, kMaxBlockN);
  require_range("warps_n", warps_n, 1, block_n / kMmaK);
  if (block_n % (warps_n * kMmaK) != 0)
    throw Error(ErrorCode::kInvalidArgument, "block_n = " + std::to_string(block_n) + " must be a multiple of 16 * warps_n = " +
                                                 std::to_string(warps_n * kMmaK));
  require_range("stages", stages, 2, kMaxStages);
  require_range("num_splits", num_splits, 1, kMaxSplits);
  const int threads = decode_geometry(spec, *this).threads;
  if (threads > kMaxThreadsPerBlock)
    throw Error(ErrorCode::kInvalidArgument, "warps_n = " + std::to_string(warps_n) + " gives " +
                                                 std::to_string(threads) + " threads per block; at most " +
                                                 std::to_string(kMaxThreadsPerBlock) + " are allowed");
}

std::string CpuDecodeConfig::compile_key() const { return "cpu_bn" + std::to_string(block_n); }
std::string CpuDecodeConfig::key() const {
  return compile_key() + "_sp" + std::to_string(num_splits) + "_th" + std::to_string(threads);
}

void CpuDecodeConfig::validate(const KernelSpec&) const {
  constexpr int kMaxBlockN = 1024, kMaxThreads = 4096;
  require_range("block_n", block_n, 1, kMaxBlockN);
  require_range("num_splits", num_splits, 1, DecodeConfig::kMaxSplits);
  require_range("threads (0: all)", threads, 0, kMaxThreads);
}

}  // namespace swajit
