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

constexpr std::string_view kContiguousKvToken = "contig";
constexpr std::string_view kNonCausalToken = "noncausal";
constexpr std::string_view kSinkLogitsToken = "attnsink";
constexpr std::string_view kInterleavedGqaToken = "gqai";
constexpr std::string_view kInt8KvToken = "kvint8";
constexpr std::string_view kFp8KvToken = "kvfp8";
constexpr std::string_view kSharedKvToken = "sharedkv";
constexpr std::string_view kScoreBiasToken = "bias";
constexpr std::string_view kSparseDecodePrefix = "sparse_decode_";

}  // namespace

std::string_view to_string(KernelFamily family) {
  switch (family) {
    case KernelFamily::kPagedDecode: return "paged_decode";
    case KernelFamily::kPrefill: return "prefill";
    case KernelFamily::kSparseDecode: return "sparse_decode";
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
  if (text == "prefill") return KernelFamily::kPrefill;
  if (text == "sparse_decode") return KernelFamily::kSparseDecode;
  throw Error(ErrorCode::kInvalidArgument, "family '" + std::string(text) + "' is unknown; accepted: paged_decode, prefill, sparse_decode");
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
  const bool sparse = family == KernelFamily::kSparseDecode;
  key << to_string(family) << '_' << to_string(dtype) << "_d" << head_dim << '_';
  if (sparse) key << 'v' << head_dim_v << '_';
  if (is_contiguous_kv()) key << kContiguousKvToken;
  else key << 'p' << page_size << '_' << to_string(kv_layout);
  if (family != KernelFamily::kPrefill) key << "_q" << q_seqlen;
  key << "_g" << group;
  if (sparse) key << "_k" << topk;
  key << '_' << windows_token(local_window, global_window);
  if (!causal) key << '_' << kNonCausalToken;
  if (shared_kv) key << '_' << kSharedKvToken;
  if (score_bias) key << '_' << kScoreBiasToken;
  if (sink_logits) key << '_' << kSinkLogitsToken;
  if (gqa == GqaMapping::kInterleaved) key << '_' << kInterleavedGqaToken;
  if (kv_quant == KvQuant::kInt8) key << '_' << kInt8KvToken;
  if (kv_quant == KvQuant::kFp8E4M3) key << '_' << kFp8KvToken;
  return key.str();
}

KernelSpec KernelSpec::from_key(std::string_view key) {
  const std::string form =
      "paged_decode_<dtype>_d<D>_p<P>_<nhd|hnd>_q<Q>_g<G>_<windows>[flags] or "
      "prefill_<dtype>_d<D>_<p<P>_<nhd|hnd>|contig>_g<G>_<windows>[flags] or "
      "sparse_decode_<dtype>_d<D>_v<DV>_p<P>_<nhd|hnd>_q<Q>_g<G>_k<TOPK>_<windows>[flags]; windows: "
      "full|local|global|local_global; flags in order: _noncausal (prefill), _sharedkv, _bias (sparse_decode), "
      "_attnsink, _gqai, _kvint8|_kvfp8";
  const auto malformed = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "': " + why + "; the form is " + form);
  };
  KernelSpec spec;
  std::string_view rest;
  if (key.substr(0, 13) == "paged_decode_") {
    spec.family = KernelFamily::kPagedDecode;
    rest = key.substr(13);
  } else if (key.substr(0, 8) == "prefill_") {
    spec.family = KernelFamily::kPrefill;
    rest = key.substr(8);
  } else if (key.substr(0, kSparseDecodePrefix.size()) == kSparseDecodePrefix) {
    spec.family = KernelFamily::kSparseDecode;
    rest = key.substr(kSparseDecodePrefix.size());
  } else {
    throw malformed("it does not start with a known family (paged_decode, prefill, sparse_decode)");
  }
  const bool sparse = spec.family == KernelFamily::kSparseDecode;
  const auto parts = split(rest, '_');
  size_t next = 0;
  const auto take = [&]() -> std::string_view {
    if (next >= parts.size()) throw malformed("it ends too early");
    return parts[next++];
  };
  spec.dtype = parse_dtype(take());
  spec.head_dim = parse_prefixed_int(take(), "d", "head_dim", key);
  if (sparse) spec.head_dim_v = parse_prefixed_int(take(), "v", "head_dim_v", key);
  const std::string_view storage = take();
  if (spec.family == KernelFamily::kPrefill && storage == kContiguousKvToken) {
    spec.page_size = 0;
  } else {
    spec.page_size = parse_prefixed_int(storage, "p", "page_size", key);
    spec.kv_layout = parse_kv_layout(take());
  }
  if (spec.family != KernelFamily::kPrefill) spec.q_seqlen = parse_prefixed_int(take(), "q", "q_seqlen", key);
  spec.group = parse_prefixed_int(take(), "g", "group", key);
  if (sparse) spec.topk = parse_prefixed_int(take(), "k", "topk bucket", key);
  const std::string_view windows = take();
  if (windows == "local" && next < parts.size() && parts[next] == "global") {
    spec.local_window = spec.global_window = true;
    ++next;
  } else {
    spec.local_window = windows == "local";
    spec.global_window = windows == "global";
    if (!spec.local_window && !spec.global_window && windows != "full")
      throw malformed("windows part '" + std::string(windows) + "' is not one of full, local, global, local_global");
  }
  for (; next < parts.size(); ++next) {
    if (parts[next] == kNonCausalToken) spec.causal = false;
    else if (sparse && parts[next] == kSharedKvToken) spec.shared_kv = true;
    else if (sparse && parts[next] == kScoreBiasToken) spec.score_bias = true;
    else if (parts[next] == kSinkLogitsToken) spec.sink_logits = true;
    else if (parts[next] == kInterleavedGqaToken) spec.gqa = GqaMapping::kInterleaved;
    else if (parts[next] == kInt8KvToken) spec.kv_quant = KvQuant::kInt8;
    else if (parts[next] == kFp8KvToken) spec.kv_quant = KvQuant::kFp8E4M3;
    else throw malformed("unknown flag '" + std::string(parts[next]) + "'");
  }
  if (spec.key() != key)
    throw Error(ErrorCode::kInvalidArgument, "key '" + std::string(key) + "' is not canonical; canonical form: " + spec.key());
  spec.validate();
  return spec;
}

namespace {
void validate_sparse_fields(const KernelSpec& s) {
  const auto& dims = SpecLimits::kHeadDims;
  const bool listed_dim = std::find(std::begin(dims), std::end(dims), s.head_dim) != std::end(dims);
  if (s.shared_kv) {
    if (!listed_dim && s.head_dim != SpecLimits::kSharedKvHeadDim)
      throw Error(ErrorCode::kUnsupported, "head_dim = " + std::to_string(s.head_dim) +
                                               " is not supported with a shared K/V cache; supported: 64, 128, 256, 576");
    constexpr int kVColumnsStep = 64;  // V columns come in 32 lanes x an even number (CUDA: packed 16-bit pairs)
    if (s.head_dim_v < kVColumnsStep || s.head_dim_v > s.head_dim || s.head_dim_v % kVColumnsStep != 0)
      throw Error(ErrorCode::kInvalidArgument, "head_dim_v = " + std::to_string(s.head_dim_v) +
                                                   " must be a multiple of 64 in [64, head_dim = " + std::to_string(s.head_dim) + "]");
  } else {
    if (!listed_dim)
      throw Error(ErrorCode::kUnsupported, "head_dim = " + std::to_string(s.head_dim) +
                                               " is not supported with separate K/V; supported: 64, 128, 256 (576: shared K/V)");
    if (s.head_dim_v != s.head_dim)
      throw Error(ErrorCode::kInvalidArgument, "head_dim_v = " + std::to_string(s.head_dim_v) + " must equal head_dim = " +
                                                   std::to_string(s.head_dim) + " with separate K/V caches");
  }
  require_range("group (num_q_heads / num_kv_heads)", s.group, SpecLimits::kMinGroup, SpecLimits::kMaxSparseGroup);
  require_range("q_seqlen", s.q_seqlen, SpecLimits::kMinQSeqlen, SpecLimits::kMaxQSeqlen);
  if (s.topk != topk_bucket(s.topk))
    throw Error(ErrorCode::kInvalidArgument, "topk bucket = " + std::to_string(s.topk) +
                                                 " must be a power of two in [16, 2048] (topk_bucket of the topk)");
  if (s.global_window)
    throw Error(ErrorCode::kUnsupported, "sparse_decode has no global window; select the sink tokens in the indices");
  if (!s.causal) throw Error(ErrorCode::kInvalidArgument, "causal = false is a prefill option; decode queries are always causal");
}
}  // namespace

int topk_bucket(int topk) {
  int bucket = SpecLimits::kMinTopkBucket;
  while (bucket < topk && bucket < SpecLimits::kMaxTopk) bucket *= 2;
  return bucket;
}

void KernelSpec::validate() const {
  if (!is_contiguous_kv()) require_range("page_size", page_size, SpecLimits::kMinPageSize, SpecLimits::kMaxPageSize);
  if (family == KernelFamily::kSparseDecode) return validate_sparse_fields(*this);
  if (topk != 0 || head_dim_v != 0 || shared_kv || score_bias)
    throw Error(ErrorCode::kInvalidArgument, "topk, head_dim_v, shared_kv and score_bias are sparse_decode fields");
  const auto& dims = SpecLimits::kHeadDims;
  if (std::find(std::begin(dims), std::end(dims), head_dim) == std::end(dims))
    throw Error(ErrorCode::kUnsupported, "head_dim = " + std::to_string(head_dim) + " is not supported; supported: 64, 128, 256");
  require_range("group (num_q_heads / num_kv_heads)", group, SpecLimits::kMinGroup, SpecLimits::kMaxGroup);
  if (family == KernelFamily::kPagedDecode) {
    require_range("q_seqlen", q_seqlen, SpecLimits::kMinQSeqlen, SpecLimits::kMaxQSeqlen);
    if (!causal) throw Error(ErrorCode::kInvalidArgument, "causal = false is a prefill option; decode queries are always causal");
  } else {
    if (q_seqlen != 1)
      throw Error(ErrorCode::kInvalidArgument, "q_seqlen = " + std::to_string(q_seqlen) +
                                                   ": prefill takes its query lengths at run time (cu_seqlens_q); leave it 1");
  }
}

bool KernelSpec::is_contiguous_kv() const { return family == KernelFamily::kPrefill && page_size == 0; }

std::string DecodeConfig::compile_key() const {
  return "bn" + std::to_string(block_n) + "_wn" + std::to_string(warps_n) + "_st" + std::to_string(stages) +
         (producer > 0 ? "_pw" + std::to_string(producer) : "") + (fused_merge ? "_fm" : "") + (pages_first ? "_pf" : "") + (pages_ahead ? "_pa" : "") + (early_tiles ? "_et" : "") +
         (min_blocks > 1 ? "_oc" + std::to_string(min_blocks) : "") + (integer_scores ? "_is" : "") + (direct_grid ? "_dg" : "");
}
std::string DecodeConfig::key() const { return compile_key() + "_sp" + std::to_string(num_splits); }

DecodeConfig DecodeConfig::from_key(std::string_view key) {
  const auto parts = split(key, '_');
  const std::string form = "bn<N>_wn<W>_st<S>[_pw<L>][_fm][_pf][_pa][_et][_oc<B>][_is][_dg]_sp<P>";
  if (parts.size() < 4 || parts.size() > 12)
    throw Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' does not have the form " + form);
  DecodeConfig config;
  config.block_n = parse_prefixed_int(parts[0], "bn", "block_n", key);
  config.warps_n = parse_prefixed_int(parts[1], "wn", "warps_n", key);
  config.stages = parse_prefixed_int(parts[2], "st", "stages", key);
  size_t next = 3;
  if (next + 1 < parts.size() && parts[next].rfind("pw", 0) == 0)
    config.producer = parse_prefixed_int(parts[next++], "pw", "producer", key);
  if (next + 1 < parts.size() && parts[next] == "fm") config.fused_merge = true, ++next;
  if (next + 1 < parts.size() && parts[next] == "pf") config.pages_first = true, ++next;
  if (next + 1 < parts.size() && parts[next] == "pa") config.pages_ahead = true, ++next;
  if (next + 1 < parts.size() && parts[next] == "et") config.early_tiles = true, ++next;
  if (next + 1 < parts.size() && parts[next].rfind("oc", 0) == 0)
    config.min_blocks = parse_prefixed_int(parts[next++], "oc", "min_blocks", key);
  if (next + 1 < parts.size() && parts[next] == "is") config.integer_scores = true, ++next;
  if (next + 1 < parts.size() && parts[next] == "dg") config.direct_grid = true, ++next;
  if (next + 1 != parts.size())
    throw Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' does not have the form " + form);
  config.num_splits = parse_prefixed_int(parts.back(), "sp", "num_splits", key);
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
  require_range("num_splits", num_splits, kSplitsFromCapacity, kMaxSplits);
  require_range("producer", producer, kLoadersAllWarps, kProducerTma);
  if (producer == kProducerTma) {
    if (spec.kv_quant != KvQuant::kNone && spec.head_dim < 128)
      throw Error(ErrorCode::kInvalidArgument, "producer = 4 (TMA pages) with 8-bit K/V needs head_dim >= 128 (rows of "
                                               "whole 128-byte boxes), got " + std::to_string(spec.head_dim));
    constexpr int kSwizzleRows = 8;  // a box lands on whole 1024-byte swizzle atoms: 8 rows of 128 bytes
    const bool pages_in_tile = spec.page_size <= block_n && block_n % spec.page_size == 0 && spec.page_size % kSwizzleRows == 0;
    const bool tile_in_page = spec.page_size >= block_n && spec.page_size % block_n == 0;
    if (!pages_in_tile && !tile_in_page)
      throw Error(ErrorCode::kInvalidArgument, "producer = 4 (TMA pages) needs page_size (" + std::to_string(spec.page_size) +
                                                   ") a multiple of 8 dividing block_n (" + std::to_string(block_n) +
                                                   "), or a multiple of block_n");
  }
  constexpr int kMaxDecodeMinBlocks = 4;
  require_range("min_blocks", min_blocks, 1, kMaxDecodeMinBlocks);
  if (pages_ahead && producer != kLoadersAllWarps)
    throw Error(ErrorCode::kInvalidArgument, "pages_ahead = true needs producer = 0 (every warp loading), got producer = " +
                                                 std::to_string(producer));
  if (early_tiles && producer == kLoadersAllWarps)
    throw Error(ErrorCode::kInvalidArgument, "early_tiles = true needs a producer warp (producer 1..4), got producer = 0");
  if (integer_scores && spec.kv_quant != KvQuant::kInt8)
    throw Error(ErrorCode::kInvalidArgument, "integer_scores = true needs an int8 K/V cache (kv_quant int8), got " +
                                                 spec.key());
  const int threads = decode_geometry(spec, *this).threads;
  if (threads > kMaxThreadsPerBlock)
    throw Error(ErrorCode::kInvalidArgument, "warps_n = " + std::to_string(warps_n) + " gives " +
                                                 std::to_string(threads) + " threads per block; at most " +
                                                 std::to_string(kMaxThreadsPerBlock) + " are allowed");
}

std::string PrefillConfig::compile_key() const {
  return "bm" + std::to_string(block_m) + "_bn" + std::to_string(block_n) + "_st" + std::to_string(stages) + "_mt" +
         std::to_string(m_tiles) + (wgmma ? "_wg" : "") + (warp_specialize > 0 ? "_ws" + std::to_string(warp_specialize) : "") + (tma ? "_tma" : "") +
         (persistent ? "_pt" : "") + (snake_order ? "_sn" : "") + (overlap_items ? "_ov" : "") +
         (dynamic_items ? "_dy" : "") + (tma_store ? "_ts" : "") + (softmax_chains ? "_ch" : "") + (f16_mma ? "_f16" : "") +
         (stored_k_scores ? "_sk" : "") + (stored_v ? "_sv" : "") + (consumer_fold ? "_cf" : "") + (widen_rows ? "_wr" : "") + (widen_ahead ? "_wa" : "") +
         (producer_registers > 0 ? "_pr" + std::to_string(producer_registers) : "") +
         (min_blocks > 1 ? "_oc" + std::to_string(min_blocks) : "");
}

PrefillConfig PrefillConfig::from_key(std::string_view key) {
  const auto parts = split(key, '_');
  const std::string form = "bm<M>_bn<N>_st<S>_mt<T>[_wg][_ws<W>][_tma][_pt][_sn][_ov][_dy][_ts][_ch][_f16][_sk][_sv][_cf][_wr][_wa][_pr<R>][_oc<B>]";
  if (parts.size() < 4 || parts.size() > 18)
    throw Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' does not have the form " + form);
  PrefillConfig config;
  config.block_m = parse_prefixed_int(parts[0], "bm", "block_m", key);
  config.block_n = parse_prefixed_int(parts[1], "bn", "block_n", key);
  config.stages = parse_prefixed_int(parts[2], "st", "stages", key);
  config.m_tiles = parse_prefixed_int(parts[3], "mt", "m_tiles", key);
  size_t next = 4;
  if (next < parts.size() && parts[next] == "wg") config.wgmma = true, ++next;
  if (next < parts.size() && parts[next].rfind("ws", 0) == 0)
    config.warp_specialize = parse_prefixed_int(parts[next++], "ws", "warp_specialize", key);
  if (next < parts.size() && parts[next] == "tma") config.tma = true, ++next;
  if (next < parts.size() && parts[next] == "pt") config.persistent = true, ++next;
  if (next < parts.size() && parts[next] == "sn") config.snake_order = true, ++next;
  if (next < parts.size() && parts[next] == "ov") config.overlap_items = true, ++next;
  if (next < parts.size() && parts[next] == "dy") config.dynamic_items = true, ++next;
  if (next < parts.size() && parts[next] == "ts") config.tma_store = true, ++next;
  if (next < parts.size() && parts[next] == "ch") config.softmax_chains = true, ++next;
  if (next < parts.size() && parts[next] == "f16") config.f16_mma = true, ++next;
  if (next < parts.size() && parts[next] == "sk") config.stored_k_scores = true, ++next;
  if (next < parts.size() && parts[next] == "sv") config.stored_v = true, ++next;
  if (next < parts.size() && parts[next] == "cf") config.consumer_fold = true, ++next;
  if (next < parts.size() && parts[next] == "wr") config.widen_rows = true, ++next;
  if (next < parts.size() && parts[next] == "wa") config.widen_ahead = true, ++next;
  if (next < parts.size() && parts[next].rfind("pr", 0) == 0)
    config.producer_registers = parse_prefixed_int(parts[next++], "pr", "producer_registers", key);
  if (next < parts.size()) config.min_blocks = parse_prefixed_int(parts[next++], "oc", "min_blocks", key);
  if (next != parts.size() || config.compile_key() != key)
    throw Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' is not canonical; the form is " + form);
  return config;
}

// The TMA producer (tma = true) fills a stage with boxes of whole 128-byte rows: block_n tokens of one contiguous
// K/V run, or of a paged cache whole pages (block_n % page_size == 0, pages of 8-row swizzle atoms) or part of one
// page (page_size % block_n == 0; tiles start at multiples of block_n then).
void PrefillConfig::validate_tma(const KernelSpec& spec) const {
  if (warp_specialize == 0)
    throw Error(ErrorCode::kInvalidArgument, "tma = true needs warp_specialize > 0 (the producer warp issues the copies)");
  if (spec.is_contiguous_kv()) return;
  constexpr int kSwizzleAtomRows = 8;  // 128-byte swizzle repeats every 8 rows: a box must start on an atom
  const int page = spec.page_size;
  const bool tile_in_one_page = page % block_n == 0;
  const bool whole_pages = block_n % page == 0 && page % kSwizzleAtomRows == 0;
  if (!tile_in_one_page && !whole_pages)
    throw Error(ErrorCode::kInvalidArgument,
                "tma = true with page_size = " + std::to_string(page) + " and block_n = " + std::to_string(block_n) +
                    ": page_size must be a multiple of block_n, or divide it and be a multiple of 8 (" + spec.key() +
                    " takes tma = false)");
}

void PrefillConfig::validate(const KernelSpec& spec) const {
  constexpr int kMmaM = 16, kMmaK = 16;  // a warp owns m_tiles x 16 query rows; tokens come in k16 steps
  constexpr int kMaxBlockM = 256, kMaxBlockN = 256, kMaxStages = 4, kMaxMTiles = 2;
  require_range("m_tiles", m_tiles, 1, kMaxMTiles);
  require_range("block_m", block_m, kMmaM * m_tiles, kMaxBlockM);
  if (block_m % (kMmaM * m_tiles) != 0)
    throw Error(ErrorCode::kInvalidArgument, "block_m = " + std::to_string(block_m) + " must be a multiple of 16 * m_tiles = " +
                                                 std::to_string(kMmaM * m_tiles));
  require_range("block_n", block_n, kMmaK, kMaxBlockN);
  if (block_n % kMmaK != 0)
    throw Error(ErrorCode::kInvalidArgument, "block_n = " + std::to_string(block_n) + " must be a multiple of 16");
  require_range("stages", stages, 2, kMaxStages);
  constexpr int kMaxMinBlocks = 4;
  require_range("min_blocks", min_blocks, 1, kMaxMinBlocks);
  constexpr int kWarpgroupRows = 64;  // one wgmma covers 64 rows: 4 warps of 16
  if (wgmma && (m_tiles != 1 || block_m % kWarpgroupRows != 0))
    throw Error(ErrorCode::kInvalidArgument, "wgmma needs m_tiles = 1 and block_m a multiple of 64, got block_m = " +
                                                 std::to_string(block_m) + ", m_tiles = " + std::to_string(m_tiles));
  constexpr int kMaxWarpSpecialize = 3, kPingPong = 3, kPingPongRows = 128;  // 2 consumer warpgroups of 64 rows
  require_range("warp_specialize", warp_specialize, 0, kMaxWarpSpecialize);
  if (warp_specialize == kPingPong && block_m != kPingPongRows)
    throw Error(ErrorCode::kInvalidArgument, "warp_specialize = 3 (ping-pong) needs block_m = 128 (2 consumer warpgroups), got " +
                                                 std::to_string(block_m));
  if (warp_specialize > 0 && !wgmma)
    throw Error(ErrorCode::kInvalidArgument, "warp_specialize = " + std::to_string(warp_specialize) +
                                                 " needs wgmma (the producer/consumer split is the Hopper path's)");
  constexpr int kTmaBoxRowBytes = 128;  // a TMA box row: 128 bytes, 128 8-bit channels
  if (tma && spec.kv_quant != KvQuant::kNone && spec.head_dim % kTmaBoxRowBytes != 0)
    throw Error(ErrorCode::kInvalidArgument, "tma = true with 8-bit K/V needs head_dim a multiple of 128 (boxes of whole "
                                             "128-byte rows), got " + std::to_string(spec.head_dim) + " (" + spec.key() +
                                             " takes tma = false)");
  if (tma) validate_tma(spec);
  if (f16_mma && !(tma && spec.kv_quant != KvQuant::kNone && spec.dtype == DType::kBF16))
    throw Error(ErrorCode::kInvalidArgument, "f16_mma = true needs tma = true, 8-bit K/V and bf16 q (the widened "
                                             "tiles of other calls are fp16 already or not widened), got " + spec.key());
  constexpr int kStoredKScoresHeadDim = 128;  // Q's hi and lo 8-bit tiles take the place of its bf16 tile, row by row
  if (stored_k_scores && !(f16_mma && spec.head_dim == kStoredKScoresHeadDim))
    throw Error(ErrorCode::kInvalidArgument, "stored_k_scores = true needs f16_mma = true (8-bit K/V on TMA, bf16 q) and "
                                             "head_dim 128, got " + spec.key());
  constexpr int kStoredVBlockN = 128;  // the transposed V tile: head_dim rows of block_n keys, one 128-byte swizzle row
  if (stored_v && !(stored_k_scores && spec.kv_quant == KvQuant::kFp8E4M3 && block_n == kStoredVBlockN))
    throw Error(ErrorCode::kInvalidArgument, "stored_v = true needs stored_k_scores = true, fp8 K/V (int8 values are "
                                             "not e4m3 values) and block_n 128, got block_n = " + std::to_string(block_n) +
                                             " for " + spec.key());
  if (consumer_fold && !stored_k_scores)
    throw Error(ErrorCode::kInvalidArgument, "consumer_fold = true needs stored_k_scores = true (the 8-bit Q tiles it "
                                             "folds), got " + spec.key());
  if ((widen_rows || widen_ahead) && !(tma && spec.kv_quant != KvQuant::kNone))
    throw Error(ErrorCode::kInvalidArgument, std::string(widen_rows ? "widen_rows" : "widen_ahead") +
                                                 " = true needs tma = true and 8-bit K/V (the producer warps' widening of "
                                                 "staged tiles), got " + spec.key());
  if (persistent && !tma)
    throw Error(ErrorCode::kInvalidArgument, "persistent = true needs tma = true (the TMA producer runs ahead into the "
                                             "next work item)");
  if (snake_order && !persistent)
    throw Error(ErrorCode::kInvalidArgument, "snake_order = true needs persistent = true (it orders a persistent "
                                             "grid's rounds of work items)");
  if (overlap_items && (!persistent || warp_specialize != 2))
    throw Error(ErrorCode::kInvalidArgument, "overlap_items = true needs persistent = true and warp_specialize = 2 (the "
                                             "consumers carry an item's last P.V into their next item)");
  if (dynamic_items && (!persistent || snake_order))
    throw Error(ErrorCode::kInvalidArgument, "dynamic_items = true needs persistent = true and snake_order = false (blocks "
                                             "claim the items in turn instead of taking static rounds)");
  if (tma_store && (!tma || overlap_items))
    throw Error(ErrorCode::kInvalidArgument, "tma_store = true needs tma = true and overlap_items = false (the rows are "
                                             "staged in the item's Q buffer at the item's end)");
  if (producer_registers != 0) {
    // setmaxnreg takes multiples of 8 from 24; above 56 the consumers would get fewer than they launch with
    constexpr int kMinProducerRegisters = 24, kMaxProducerRegisters = 56, kRegisterGranule = 8;
    require_range("producer_registers", producer_registers, kMinProducerRegisters, kMaxProducerRegisters);
    if (producer_registers % kRegisterGranule != 0 || warp_specialize == 0)
      throw Error(ErrorCode::kInvalidArgument, "producer_registers = " + std::to_string(producer_registers) +
                                                   " must be a multiple of 8 and needs warp_specialize > 0 (0: the default)");
  }
  // every head_dim takes every other config; what fits the device is checked when the kernel is built
}

std::string SparseDecodeConfig::compile_key() const {
  return "bn" + std::to_string(block_n) + "_st" + std::to_string(stages) + (mma ? "_mma" : "") + (token_split ? "_ts" : "") +
         (mla ? "_mla" : "") + (warp_specialize ? "_ws" : "") + (copy_ahead ? "_ca" : "") + (score_ahead ? "_sa" : "") + (split_scores ? "_ss" : "") + (seesaw ? "_sw" : "") +
         (l2_prefetch ? "_l2" : "") + (l2_ahead ? "_la" : "") + (table_prefetch ? "_tp" : "") + (persistent ? "_pe" : "") +
         (narrow_warps ? "_nw" : "") + (stagger_v ? "_sv" : "");
}
std::string SparseDecodeConfig::key() const { return compile_key() + "_sp" + std::to_string(num_splits); }

SparseDecodeConfig SparseDecodeConfig::from_key(std::string_view key) {
  const auto parts = split(key, '_');
  const auto malformed = [&] {
    return Error(ErrorCode::kInvalidArgument, "config key '" + std::string(key) + "' does not have the form bn<N>_st<S>[_mma[_ts|_mla[_ws|_ca[_sa]][_ss][_sw]]][_l2][_la][_tp][_pe][_nw][_sv]_sp<P>");
  };
  if (parts.size() < 3) throw malformed();
  SparseDecodeConfig config;
  config.block_n = parse_prefixed_int(parts[0], "bn", "block_n", key);
  config.stages = parse_prefixed_int(parts[1], "st", "stages", key);
  config.num_splits = parse_prefixed_int(parts.back(), "sp", "num_splits", key);
  for (size_t i = 2; i + 1 < parts.size(); ++i) {
    if (parts[i] == "mma") config.mma = true;
    else if (parts[i] == "ts") config.token_split = true;
    else if (parts[i] == "mla") config.mla = true;
    else if (parts[i] == "ws") config.warp_specialize = true;
    else if (parts[i] == "ca") config.copy_ahead = true;
    else if (parts[i] == "sa") config.score_ahead = true;
    else if (parts[i] == "ss") config.split_scores = true;
    else if (parts[i] == "sw") config.seesaw = true;
    else if (parts[i] == "l2") config.l2_prefetch = true;
    else if (parts[i] == "la") config.l2_ahead = true;
    else if (parts[i] == "tp") config.table_prefetch = true;
    else if (parts[i] == "pe") config.persistent = true;
    else if (parts[i] == "nw") config.narrow_warps = true;
    else if (parts[i] == "sv") config.stagger_v = true;
    else throw malformed();
  }
  if (config.key() != key) throw malformed();  // each flag once, in this order
  return config;
}

void SparseDecodeConfig::validate(const KernelSpec& spec) const {
  constexpr int kWarpSize = 32, kMaxBlockN = 128;  // a tile is whole slices of one token per lane
  // 6: two blocks of 32-row tiles per SM keep five tiles each in flight at head_dim 128 (the MLA kernels: validate_mla)
  constexpr int kMaxStages = 6;
  require_range("block_n", block_n, kWarpSize, kMaxBlockN);
  if (block_n % kWarpSize != 0)
    throw Error(ErrorCode::kInvalidArgument, "block_n = " + std::to_string(block_n) + " must be a multiple of 32");
  require_range("stages", stages, 2, kMaxStages);
  require_range("num_splits", num_splits, 1, DecodeConfig::kMaxSplits);
  if (spec.family != KernelFamily::kSparseDecode)
    throw Error(ErrorCode::kInvalidArgument, "a sparse_decode config does not apply to " + spec.key());
  if (mma && spec.kv_quant != KvQuant::kNone)
    throw Error(ErrorCode::kUnsupported, "the tensor-core sparse_decode kernel (mma) reads 16-bit caches only; " +
                                             spec.key() + " has an 8-bit cache (use mma = false)");
  constexpr int kTokenSplitMaxGroup = 16, kTokenSplitMaxHeadDimV = 128;
  if (token_split && (!mma || spec.group > kTokenSplitMaxGroup || spec.head_dim_v > kTokenSplitMaxHeadDimV))
    throw Error(ErrorCode::kInvalidArgument, "token_split needs mma, group <= 16 (one 16-row tile) and head_dim_v <= 128 "
                                             "(the output in one warp's registers); " + spec.key() + " with " + compile_key());
  if (narrow_warps && !token_split)
    throw Error(ErrorCode::kInvalidArgument, "narrow_warps is a variant of the token-split kernel: it needs token_split; " +
                                                 spec.key() + " with " + compile_key());
  if (persistent && (!token_split || spec.local_window))
    throw Error(ErrorCode::kInvalidArgument, "persistent needs token_split and no local window (every item of the grid "
                                             "the same number of tiles); " + spec.key() + " with " + compile_key());
  if (persistent) {  // an item's warps combine in the stage its last tile used (templates/sparse_decode_tokens.cuh)
    const SparseDecodeGeometry g = sparse_decode_geometry(spec, *this);
    constexpr int kMmaRows = 16, kWarpSize = 32, kFloatBytes = 4;
    if (g.threads / kWarpSize * kMmaRows * (spec.head_dim_v + 2) * kFloatBytes > g.stage_bytes)
      throw Error(ErrorCode::kInvalidArgument, "persistent needs the warps' combine to fit one stage; " + spec.key() +
                                                   " with " + compile_key() + " (use a larger block_n)");
  }
  if (mla && (l2_ahead || table_prefetch || stagger_v))
    throw Error(ErrorCode::kInvalidArgument, "l2_ahead, table_prefetch and stagger_v are knobs of the gather of the other sparse_decode "
                                             "kernels (the MLA kernel has its own, l2_prefetch); " + spec.key() + " with " + compile_key());
  if (mla) validate_mla(spec);
  else if (copy_ahead || score_ahead || split_scores || seesaw)
    throw Error(ErrorCode::kInvalidArgument, "copy_ahead, score_ahead, split_scores and seesaw are schedules of the MLA kernel: they need mla; " + spec.key() +
                                                 " with " + compile_key());
  else if (warp_specialize)
    throw Error(ErrorCode::kInvalidArgument, "warp_specialize is a variant of the MLA kernel: it needs mla; " + spec.key() +
                                                 " with " + compile_key());
}

// The MLA kernel's shape (templates/sparse_decode_mla.cuh): the shared latent row of 576 columns (K) whose first 512
// are V, 16-bit, 64-token tiles in two stages (the most shared memory holds beside the Q tile) and tensor cores. The
// warp-specialized one (sparse_decode_mla_ws.cuh) also takes 32-token tiles in four stages (the same bytes) or in
// six (its scorer keeping Q in registers instead).
void SparseDecodeConfig::validate_mla(const KernelSpec& spec) const {
  constexpr int kMlaHeadDim = 576, kMlaHeadDimV = 512, kMlaBlockN = 64, kMlaStages = 2;
  constexpr int kWsSmallBlockN = 32, kWsSmallStages = 4, kWsDeepStages = 6;  // 6: Q in the scorer's registers
  const std::string what = spec.key() + " with " + compile_key();
  if (!spec.shared_kv || spec.head_dim != kMlaHeadDim || spec.head_dim_v != kMlaHeadDimV)
    throw Error(ErrorCode::kUnsupported, "mla needs the shared K/V cache with head_dim 576 and head_dim_v 512; " + what);
  if (!mma || token_split)
    throw Error(ErrorCode::kInvalidArgument, "mla is a tensor-core kernel of its own: it needs mma and not token_split; " + what);
  if (split_scores && (warp_specialize || score_ahead))
    throw Error(ErrorCode::kInvalidArgument, "split_scores is a schedule of the two-warpgroup MLA kernel without "
                                             "score_ahead; " + what);
  if (seesaw && (warp_specialize || copy_ahead || split_scores))
    throw Error(ErrorCode::kInvalidArgument, "seesaw is a schedule of the two-warpgroup MLA kernel of its own (no "
                                             "warp_specialize, copy_ahead or split_scores); " + what);
  if (score_ahead && !copy_ahead)
    throw Error(ErrorCode::kInvalidArgument, "score_ahead needs copy_ahead (tile t + 1 awaited under tile t); " + what);
  if (copy_ahead && warp_specialize)
    throw Error(ErrorCode::kInvalidArgument, "copy_ahead is a schedule of the two-warpgroup MLA kernel (the warp-specialized "
                                             "one always copies ahead); " + what);
  const bool small_tiles = (warp_specialize && block_n == kWsSmallBlockN && (stages == kWsSmallStages || stages == kWsDeepStages)) ||
                           (seesaw && block_n == kWsSmallBlockN && stages == kWsSmallStages);
  if ((block_n != kMlaBlockN || stages != kMlaStages) && !small_tiles)
    throw Error(ErrorCode::kInvalidArgument, "mla takes block_n = 64 and stages = 2 (64-token tiles, two in shared "
                                             "memory beside the 64 x 576 Q tile), with warp_specialize also block_n = 32 "
                                             "and stages = 4 or 6 (Q in registers), with seesaw also 32 and 4; " + what);
}

std::string CpuDecodeConfig::compile_key() const { return "cpu_bn" + std::to_string(block_n); }
std::string CpuDecodeConfig::key() const {
  return compile_key() + "_sp" + std::to_string(num_splits) + "_th" + std::to_string(threads);
}

void CpuDecodeConfig::validate(const KernelSpec&) const {
  constexpr int kMaxBlockN = 1024, kMaxThreads = 4096;
  constexpr int kTokenBlock = 8;  // the CPU kernel sums scores of 8 tokens at once (templates/paged_decode_cpu.cpp)
  require_range("block_n", block_n, kTokenBlock, kMaxBlockN);
  if (block_n % kTokenBlock != 0)
    throw Error(ErrorCode::kInvalidArgument, "block_n = " + std::to_string(block_n) + " must be a multiple of 8 on the CPU");
  require_range("num_splits", num_splits, 1, DecodeConfig::kMaxSplits);
  require_range("threads (0: all)", threads, 0, kMaxThreads);
}

namespace {
KernelSpec spec_of_call(KernelFamily family, const AttentionCall& call) {
  return KernelSpec{.family = family, .dtype = call.dtype, .head_dim = call.head_dim, .page_size = call.page_size,
                    .kv_layout = call.kv_layout, .q_seqlen = call.q_seqlen, .causal = call.causal, .group = call.group,
                    .local_window = call.local_window > 0, .global_window = call.global_window > 0,
                    .sink_logits = call.sink_logits, .gqa = call.gqa, .kv_quant = call.kv_quant};
  // the sparse_decode fields are the sparse builder's
}
}  // namespace

KernelSpec paged_decode_kernel_spec(const AttentionCall& call) {
  KernelSpec s = spec_of_call(KernelFamily::kPagedDecode, call);
  s.validate();
  return s;
}

KernelSpec sparse_decode_kernel_spec(const AttentionCall& call) {
  KernelSpec s = spec_of_call(KernelFamily::kSparseDecode, call);
  require_range("topk", call.topk, 1, SpecLimits::kMaxTopk);
  s.topk = topk_bucket(call.topk);
  s.head_dim_v = call.head_dim_v > 0 ? call.head_dim_v : call.head_dim;
  s.shared_kv = call.shared_kv;
  s.score_bias = call.score_bias;
  s.validate();
  return s;
}

KernelSpec prefill_kernel_spec(const AttentionCall& call) {
  KernelSpec s = spec_of_call(KernelFamily::kPrefill, call);
  s.q_seqlen = 1;
  if (s.page_size == 0) s.kv_layout = KvLayout::kNHD;
  s.validate();
  return s;
}

}  // namespace swajit
