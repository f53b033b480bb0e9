// Generated sources compile with NVRTC for Hopper and Ampere; a broken source surfaces the NVRTC log.
// Needs NVRTC (part of the CUDA toolkit) but no GPU.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include "check.hpp"
#include "nvrtc_compiler.hpp"
#include "prefill_problem.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"

using namespace swajit;

TEST_CASE("generated paged decode kernels compile for sm_90a and sm_80") {
  std::string why;
  if (!nvrtc::available(&why)) {
    MESSAGE("skipped: " << why);
    return;
  }
  struct Case { DType dtype; int d, page, qs, group; bool local, global, sinks; GqaMapping gqa; DecodeConfig config; };
  const Case cases[] = {
      {DType::kBF16, 128, 16, 4, 4, true, true, false, GqaMapping::kGrouped, DecodeConfig{64, 4, 3, 1}},
      {DType::kFP16, 64, 3, 1, 1, false, false, true, GqaMapping::kInterleaved, DecodeConfig{32, 2, 2, 1}},
      {DType::kBF16, 256, 17, 8, 16, true, false, false, GqaMapping::kGrouped, DecodeConfig{64, 1, 2, 1}},
  };
  for (const Case& c : cases) {
    KernelSpec s;
    s.dtype = c.dtype; s.head_dim = c.d; s.page_size = c.page; s.q_seqlen = c.qs; s.group = c.group;
    s.local_window = c.local; s.global_window = c.global; s.sink_logits = c.sinks; s.gqa = c.gqa;
    const GeneratedKernel k = generate_paged_decode_cuda(s, c.config);
    for (const char* arch : {"sm_90a", "sm_80"}) {
      INFO(k.cache_key << " for " << arch);
      const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", arch);
      CHECK(cubin.cubin.size() > 1000);
      CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
      MESSAGE(k.cache_key << " " << std::string(arch) << ": " << cubin.compile_ms << " ms");
    }
  }
}

TEST_CASE("generated prefill kernels compile for sm_90a and sm_80") {
  if (!nvrtc::available()) return;
  const auto persistent_tma = [](PrefillConfig c) { c.tma = c.persistent = true; return c; };
  const auto overlapped = [](PrefillConfig c) { c.snake_order = c.overlap_items = true; return c; };
  const auto dynamic = [](PrefillConfig c) { c.dynamic_items = true; return c; };
  const auto stored = [](PrefillConfig c) { c.tma_store = true; return c; };
  const auto chains = [](PrefillConfig c) { c.softmax_chains = true; return c; };
  struct Case { const char* key; PrefillConfig config; };
  const Case cases[] = {
      {"prefill_bf16_d128_contig_g4_local_global", PrefillConfig{128, 64, 2}},
      {"prefill_fp16_d64_p7_hnd_g1_full_noncausal_attnsink_gqai", PrefillConfig{64, 32, 3}},
      {"prefill_bf16_d256_p16_nhd_g16_local", PrefillConfig{64, 64, 2}},
      {"prefill_bf16_d128_contig_g4_local", PrefillConfig{128, 64, 2, 2}},
      // paged and warp specialized: each warpgroup role scans the block_table over its own named barrier
      {"prefill_bf16_d128_p16_nhd_g4_local", PrefillConfig{128, 64, 2, 1, true, 1, 1}},
      // the same with TMA and a persistent grid (the roles loop over the items)
      {"prefill_bf16_d128_p16_nhd_g4_local", persistent_tma(PrefillConfig{128, 128, 2, 1, true, 1, 1})},
      // ws2 with snake order and overlapped items (the consumers carry an item's last P.V into the next)
      {"prefill_bf16_d128_contig_g4_local", overlapped(persistent_tma(PrefillConfig{128, 128, 2, 1, true, 1, 2}))},
      // dynamic items (blocks claim their next item; the producer alone scans a paged sequence's pages)
      {"prefill_bf16_d128_p16_nhd_g4_local", dynamic(persistent_tma(PrefillConfig{128, 128, 2, 1, true, 1, 2}))},
      // the output through the Q buffer and a TMA store
      {"prefill_bf16_d128_contig_g4_local", stored(persistent_tma(PrefillConfig{128, 128, 2, 1, true, 1, 3}))},
      // each row's max and sum in 4 chains, also on the mma.sync path
      {"prefill_bf16_d128_contig_g4_local", chains(persistent_tma(PrefillConfig{128, 128, 2, 1, true, 1, 2}))},
      {"prefill_fp16_d64_p7_hnd_g1_full_noncausal_attnsink_gqai", chains(PrefillConfig{64, 32, 3})},
  };
  for (const Case& c : cases) {
    const GeneratedKernel k = generate_prefill_cuda(KernelSpec::from_key(c.key), c.config);
    for (const char* arch : {"sm_90a", "sm_80"}) {
      INFO(k.cache_key << " for " << arch);
      const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", arch);
      CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
      MESSAGE(k.cache_key << " " << std::string(arch) << ": " << cubin.compile_ms << " ms");
    }
  }
}

TEST_CASE("8-bit KV kernels compile for sm_90a and sm_80: prefill (wgmma and mma.sync, contiguous and paged) and decode") {
  if (!nvrtc::available()) return;
  struct Case { const char* key; PrefillConfig config; };
  const Case prefill_cases[] = {
      {"prefill_bf16_d128_contig_g4_local_kvint8", PrefillConfig{128, 64, 2, 1, true, 2}},
      {"prefill_fp16_d64_p7_hnd_g8_local_global_kvfp8", PrefillConfig{64, 32, 3}},
      {"prefill_bf16_d256_p16_nhd_g4_local_kvfp8", PrefillConfig{64, 64, 2, 1, true, 1}},
      {"prefill_fp16_d128_p13_hnd_g2_full_attnsink_kvint8", PrefillConfig{128, 64, 2, 2}},
      // warp specialized: the producer widens each tile
      {"prefill_bf16_d128_contig_g4_local_kvint8", PrefillConfig{192, 64, 3, 1, true, 1, 1}},
      {"prefill_fp16_d128_p13_hnd_g2_local_global_kvfp8", PrefillConfig{128, 64, 2, 1, true, 1, 3}},
  };
  // tma (sm_90a only): the stored tiles moved by TMA, widened in shared memory by producer warps
  const auto kv8_tma = [](int bm, int bn, int mode) {
    PrefillConfig c{bm, bn, 2, 1, true, 1, mode};
    c.tma = c.persistent = true;
    return c;
  };
  const Case tma_cases[] = {
      {"prefill_bf16_d128_contig_g4_local_kvint8", kv8_tma(128, 128, 2)},
      {"prefill_bf16_d128_p16_nhd_g4_local_kvfp8", kv8_tma(128, 128, 2)},
      {"prefill_fp16_d256_p64_hnd_g8_local_attnsink_kvfp8", kv8_tma(64, 64, 2)},
  };
  PrefillConfig f16 = kv8_tma(128, 128, 2);
  f16.f16_mma = true;  // bf16 q only
  PrefillConfig f16_wr = f16;  // widen_rows: 8 lanes widen 8 rows of a chunk column
  f16_wr.widen_rows = true;
  PrefillConfig sk = f16_wr;  // stored_k_scores: Q.K^T on the 8-bit tensor cores from the stored K tiles
  sk.stored_k_scores = true;
  PrefillConfig sv = sk;  // fp8 P.V from the transposed stored V tiles, the compute warps folding Q
  sv.widen_rows = false;
  sv.stored_v = sv.consumer_fold = true;
  const Case f16_cases[] = {{"prefill_bf16_d128_p16_nhd_g4_local_attnsink_kvfp8", sv},{"prefill_bf16_d128_contig_g4_local_kvint8", f16},
                            {"prefill_bf16_d128_p16_nhd_g4_local_attnsink_kvfp8", f16},
                            {"prefill_bf16_d128_contig_g4_local_kvint8", f16_wr},
                            {"prefill_bf16_d128_p16_nhd_g4_local_attnsink_kvfp8", sk},
                            {"prefill_bf16_d128_contig_g4_local_kvint8", sk}};
  for (const Case& c : f16_cases) {
    const GeneratedKernel k = generate_prefill_cuda(KernelSpec::from_key(c.key), c.config);
    INFO(k.cache_key);
    CHECK(std::string(nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a").cubin.data(), 4) == "\x7f" "ELF");
  }
  for (const Case& c : tma_cases) {
    const GeneratedKernel k = generate_prefill_cuda(KernelSpec::from_key(c.key), c.config);
    INFO(k.cache_key);
    CHECK(std::string(nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a").cubin.data(), 4) == "" "ELF");
  }
  std::vector<GeneratedKernel> kernels;
  for (const Case& c : prefill_cases) kernels.push_back(generate_prefill_cuda(KernelSpec::from_key(c.key), c.config));
  kernels.push_back(generate_paged_decode_cuda(KernelSpec::from_key("paged_decode_fp16_d128_p16_hnd_q2_g4_local_kvfp8"), DecodeConfig{}));
  for (const GeneratedKernel& k : kernels)
    for (const char* arch : {"sm_90a", "sm_80"}) {
      INFO(k.cache_key << " for " << arch);
      const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", arch);
      CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
    }
}

TEST_CASE("producer-warp decode kernels compile for sm_90a and refuse sm_80 by name") {
  if (!nvrtc::available()) return;
  struct Case { const char* key; DecodeConfig config; };
  const Case cases[] = {
      {"paged_decode_bf16_d128_p16_nhd_q1_g4_local_global", DecodeConfig{64, 4, 3, 0, DecodeConfig::kProducerCpAsync}},
      {"paged_decode_bf16_d128_p16_nhd_q1_g4_local_global", DecodeConfig{64, 4, 3, 0, DecodeConfig::kProducerBulk}},
      {"paged_decode_fp16_d64_p7_hnd_q4_g4_local_attnsink_kvint8", DecodeConfig{128, 4, 3, 2, DecodeConfig::kProducerBulk}},
      {"paged_decode_bf16_d256_p16_nhd_q8_g16_local_kvfp8", DecodeConfig{64, 1, 2, 1, DecodeConfig::kProducerCpAsync}},
      {"paged_decode_bf16_d128_p16_nhd_q4_g4_local_attnsink", DecodeConfig{64, 4, 3, 0, DecodeConfig::kProducerBulkSplitKv}},
      {"paged_decode_fp16_d128_p16_nhd_q1_g4_local_kvfp8", DecodeConfig{128, 4, 3, 0, DecodeConfig::kProducerBulkSplitKv}},
  };
  for (const Case& c : cases) {
    const GeneratedKernel k = generate_paged_decode_cuda(KernelSpec::from_key(c.key), c.config);
    INFO(k.cache_key);
    CHECK(std::string(nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a").cubin.data(), 4) == "\x7f" "ELF");
    try {
      nvrtc::compile(k.source, k.cache_key + ".cu", "sm_80");
      FAIL("a producer-warp kernel compiled for sm_80");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("need sm_90") != std::string::npos);
    }
  }
}

TEST_CASE("decode knobs: integer int8 scores and pages-first loads compile on sm_90a and sm_80, keys round-trip") {
  DecodeConfig integer{128, 4, 3, 0};
  integer.integer_scores = true;
  DecodeConfig pages_first{64, 2, 4, 0, DecodeConfig::kProducerCpAsync};
  pages_first.pages_first = true;
  DecodeConfig both = integer;
  both.pages_first = true;
  both.min_blocks = 2;
  CHECK(both.compile_key() == "bn128_wn4_st3_pf_oc2_is");
  for (const DecodeConfig& c : {integer, pages_first, both}) CHECK(DecodeConfig::from_key(c.key()) == c);
  DecodeConfig too_many = integer;
  too_many.min_blocks = 5;
  CHECK_THROWS_AS(too_many.validate(KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q1_g4_local_kvint8")), Error);
  CHECK_THROWS_AS(integer.validate(KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q1_g4_local_kvfp8")), Error);
  if (!nvrtc::available()) return;
  struct Case { const char* key; DecodeConfig config; bool sm80; };
  const Case cases[] = {
      {"paged_decode_bf16_d128_p16_nhd_q4_g4_local_attnsink_kvint8", both, true},
      {"paged_decode_fp16_d64_p7_hnd_q1_g4_local_kvint8", integer, true},
      {"paged_decode_bf16_d256_p16_nhd_q8_g16_local_kvint8", integer, true},
      {"paged_decode_bf16_d128_p16_nhd_q1_g4_local_kvfp8", pages_first, false},
  };
  for (const Case& c : cases) {
    const GeneratedKernel k = generate_paged_decode_cuda(KernelSpec::from_key(c.key), c.config);
    INFO(k.cache_key);
    for (const char* arch : {"sm_90a", "sm_80"})
      if (c.sm80 || std::string(arch) == "sm_90a")
        CHECK(std::string(nvrtc::compile(k.source, k.cache_key + ".cu", arch).cubin.data(), 4) == "\x7f" "ELF");
  }
}

// Each (spec key, config) generated and compiled by NVRTC for every arch listed: an ELF cubin.
void check_decode_compiles(std::initializer_list<std::pair<const char*, DecodeConfig>> cases,
                           std::initializer_list<const char*> archs) {
  for (const auto& [key, config] : cases) {
    const GeneratedKernel k = generate_paged_decode_cuda(KernelSpec::from_key(key), config);
    INFO(k.cache_key);
    for (const char* arch : archs)
      CHECK(std::string(nvrtc::compile(k.source, k.cache_key + ".cu", arch).cubin.data(), 4) == "\x7f" "ELF");
  }
}

TEST_CASE("decode knob pages_ahead: compiles on sm_90a and sm_80 (page 1, 8-bit and 16-bit), key round-trips, every-warp loaders only") {
  DecodeConfig ahead{64, 4, 3, 0};
  ahead.pages_ahead = true;
  DecodeConfig both = ahead;
  both.pages_first = true;
  CHECK(both.compile_key() == "bn64_wn4_st3_pf_pa");
  for (const DecodeConfig& c : {ahead, both}) CHECK(DecodeConfig::from_key(c.key()) == c);
  DecodeConfig producer = ahead;
  producer.producer = DecodeConfig::kProducerCpAsync;
  CHECK_THROWS_AS(producer.validate(KernelSpec::from_key("paged_decode_bf16_d128_p1_nhd_q1_g4_local")), Error);
  if (!nvrtc::available()) return;
  DecodeConfig ahead8 = ahead;
  ahead8.block_n = 128;
  check_decode_compiles({{"paged_decode_bf16_d128_p1_nhd_q1_g4_local", ahead},
                         {"paged_decode_bf16_d128_p1_nhd_q4_g4_local_attnsink_kvfp8", ahead8},
                         {"paged_decode_fp16_d256_p7_hnd_q1_g2_local", both}},
                        {"sm_90a", "sm_80"});
}

TEST_CASE("decode knob early_tiles: compiles on sm_90a (every producer, 8-bit, head_dim 256), key round-trips, producer warps only") {
  DecodeConfig early{32, 2, 3, 0, DecodeConfig::kProducerTma};
  early.early_tiles = true;
  CHECK(early.compile_key() == "bn32_wn2_st3_pw4_et");
  CHECK(DecodeConfig::from_key(early.key()) == early);
  DecodeConfig every_warp = early;
  every_warp.producer = DecodeConfig::kLoadersAllWarps;
  CHECK_THROWS_AS(every_warp.validate(KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q1_g4_local")), Error);
  if (!nvrtc::available()) return;
  DecodeConfig early8 = early;
  early8.block_n = 128;
  early8.warps_n = 4;
  early8.min_blocks = 2;
  DecodeConfig bulk = early;
  bulk.producer = DecodeConfig::kProducerBulkSplitKv;
  check_decode_compiles({{"paged_decode_bf16_d256_p16_nhd_q1_g2_local", early},
                         {"paged_decode_bf16_d128_p16_nhd_q4_g4_local_attnsink_kvint8", early8},
                         {"paged_decode_fp16_d128_p7_hnd_q1_g4_local", bulk}},
                        {"sm_90a"});
}

// Every case of the decode check matrix carries a config that validates against its spec (or none: the heuristic's).
TEST_CASE("decode check cases' configs are valid") {
  for (const DecodeCase& c : decode_check_matrix()) {
    if (!c.config) continue;
    INFO(c.name);
    CHECK_NOTHROW(c.config->validate(c.spec()));
    CHECK(c.config->min_blocks >= 1);
  }
}

TEST_CASE("a compile failure carries the NVRTC log") {
  if (!nvrtc::available()) return;
  try {
    nvrtc::compile("extern \"C\" __global__ void broken() { int x = ; }", "broken.cu", "sm_90a");
    FAIL("NVRTC accepted broken source");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kCompileError);
    const std::string what = e.what();
    CHECK(what.find("broken.cu") != std::string::npos);
    CHECK(what.find("NVRTC log") != std::string::npos);
    CHECK(what.find("expected an expression") != std::string::npos);
  }
}

// The TMA producer (PrefillConfig::tma) against every 16-bit spec of the prefill check matrix: it compiles for
// sm_90a where its boxes fit the page size, and is refused with a typed error naming tma where they do not.
TEST_CASE("every 16-bit prefill spec of the check matrix takes the TMA producer or refuses it by name") {
  if (!nvrtc::available()) return;
  std::set<std::string> seen;
  int compiled = 0, refused = 0;
  for (const PrefillCase& c : prefill_check_matrix()) {
    const KernelSpec spec = c.spec();
    if (spec.kv_quant != KvQuant::kNone || !seen.insert(spec.key()).second) continue;
    PrefillConfig config{spec.head_dim >= 256 ? 64 : 128, 64, 2, 1, true, 1, 2};
    config.tma = true;
    INFO(spec.key() << " " << config.key());
    const bool boxes_fit = spec.is_contiguous_kv() || spec.page_size % config.block_n == 0 ||
                           (config.block_n % spec.page_size == 0 && spec.page_size % 8 == 0);
    if (!boxes_fit) {
      CHECK_THROWS_WITH_AS(config.validate(spec), doctest::Contains("tma = true with page_size"), Error);
      ++refused;
      continue;
    }
    const GeneratedKernel k = generate_prefill_cuda(spec, config);
    const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a");
    CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
    MESSAGE(k.cache_key << " sm_90a: " << cubin.compile_ms << " ms");
    ++compiled;
  }
  CHECK(compiled >= 10);
  CHECK(refused >= 2);  // pages of 1, 7, 13 and 100 tokens
}

// The runtime's default prefill config on an H200 (the heuristic, nothing forced) for every check-matrix case that
// does not force one (the forced ones must be configs of their specs): valid for its spec, TMA wherever the page size lets TMA boxes fill a tile, and each distinct
// TMA kernel compiles for sm_90a. The listed cases are the ones the GPU check now runs through the TMA producer.
TEST_CASE("the H200 default prefill config takes TMA wherever the check matrix's layout allows it") {
  DeviceInfo h200;  // the properties the heuristic reads, as the H200 reports them
  h200.cc_major = 9;
  h200.cc_minor = 0;
  h200.sm_count = 132;
  h200.max_shared_per_block_optin = 227 * 1024;
  h200.max_shared_per_sm = 228 * 1024;
  h200.max_registers_per_block = 64 * 1024;
  std::set<std::string> compiled;
  int tma_cases = 0;
  for (const PrefillCase& c : prefill_check_matrix()) {
    const KernelSpec spec = c.spec();
    if (c.config) {  // forced: only has to be a config of its spec (the GPU check runs it)
      INFO(c.name << ": " << spec.key() << " " << c.config->key());
      CHECK_NOTHROW(c.config->validate(spec));
      if (c.config->wgmma) CHECK(prefill_geometry(spec, *c.config).shared_bytes <= h200.max_shared_per_block_optin);
      continue;
    }
    const PrefillConfig config = heuristic_prefill_config(spec, h200);
    INFO(c.name << ": " << spec.key() << " " << config.key());
    CHECK_NOTHROW(config.validate(spec));
    const bool boxes_fit = spec.is_contiguous_kv() || spec.page_size % config.block_n == 0 ||
                           (config.block_n % spec.page_size == 0 && spec.page_size % 8 == 0);
    // head_dim 64, 128 and 256; 8-bit K/V only where a row is whole 128-byte boxes (head_dim 128 and 256)
    const bool tma_expected = (spec.kv_quant == KvQuant::kNone || spec.head_dim % 128 == 0) && boxes_fit;
    CHECK(config.tma == tma_expected);
    if (!config.tma) continue;
    ++tma_cases;
    MESSAGE("TMA by default: " << c.name << " (" << config.key() << ")");
    if (!nvrtc::available() || !compiled.insert(spec.key()).second) continue;
    const GeneratedKernel k = generate_prefill_cuda(spec, config);
    const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a");
    CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
  }
  CHECK(tma_cases >= 15);
}

TEST_CASE("decode grids: a module holds one grid's kernel (direct or scheduled), its key says which") {
  DecodeConfig scheduled{64, 4, 3, DecodeConfig::kSplitsFromCapacity};
  DecodeConfig direct = scheduled;
  direct.direct_grid = true;
  CHECK(direct.key() == "bn64_wn4_st3_dg_sp0");
  for (const DecodeConfig& c : {scheduled, direct}) CHECK(DecodeConfig::from_key(c.key()) == c);
  const KernelSpec spec = KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q4_g4_local_attnsink");
  const GeneratedKernel a = generate_paged_decode_cuda(spec, scheduled), b = generate_paged_decode_cuda(spec, direct);
  CHECK(a.kernel_symbol != b.kernel_symbol);  // two modules, cached apart
  CHECK(a.source.find("constexpr bool kDirectGrid = false;") != std::string::npos);
  CHECK(b.source.find("constexpr bool kDirectGrid = true;") != std::string::npos);
  if (!nvrtc::available()) return;
  for (const GeneratedKernel* k : {&a, &b})
    CHECK(std::string(nvrtc::compile(k->source, k->cache_key + ".cu", "sm_90a").cubin.data(), 4) == "\x7f" "ELF");
}
