// Specs, keys, configs and source generation: everything here runs without a GPU.
#include <doctest/doctest.h>

#include "swajit/error.hpp"
#include "swajit/generator.hpp"
#include "swajit/spec.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>
#include <string>

using namespace swajit;

static ErrorCode code_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  FAIL("no swajit::Error thrown");
  return ErrorCode::kCudaError;
}

TEST_CASE("spec key is canonical and round-trips") {
  KernelSpec s;
  s.head_dim = 128; s.page_size = 16; s.q_seqlen = 4; s.group = 4; s.local_window = true; s.global_window = true;
  CHECK(s.key() == "paged_decode_bf16_d128_p16_nhd_q4_g4_local_global");
  CHECK(KernelSpec::from_key(s.key()) == s);
  for (bool local : {false, true})
    for (bool global : {false, true})
      for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND}) {
        KernelSpec t;
        t.dtype = DType::kFP16; t.head_dim = 64; t.page_size = 17; t.kv_layout = layout; t.q_seqlen = 8; t.group = 16;
        t.local_window = local; t.global_window = global;
        CHECK(KernelSpec::from_key(t.key()) == t);
        t.sink_logits = true;
        t.gqa = GqaMapping::kInterleaved;
        CHECK(KernelSpec::from_key(t.key()) == t);
      }
  KernelSpec full;
  CHECK(full.key() == "paged_decode_bf16_d128_p16_nhd_q1_g1_full");
  full.sink_logits = true;
  full.gqa = GqaMapping::kInterleaved;
  CHECK(full.key() == "paged_decode_bf16_d128_p16_nhd_q1_g1_full_attnsink_gqai");
}

TEST_CASE("malformed or out-of-range keys are rejected with the field named") {
  CHECK(code_of([] { KernelSpec::from_key("prefill_bf16_d128"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q4_g4_wide"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q4_g4_full_fast"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q4_g4_full_gqai_attnsink"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d128_p016_nhd_q4_g4_full"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d96_p16_nhd_q4_g4_full"); }) == ErrorCode::kUnsupported);
  try {
    KernelSpec::from_key("paged_decode_bf16_d128_p300_nhd_q4_g4_full");
    FAIL("accepted page_size 300");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("page_size = 300") != std::string::npos);
    CHECK(std::string(e.what()).find("[1, 256]") != std::string::npos);
  }
  KernelSpec s;
  s.q_seqlen = 9;
  CHECK(code_of([&] { s.validate(); }) == ErrorCode::kInvalidArgument);
  s.q_seqlen = 1;
  s.group = 17;
  CHECK(code_of([&] { s.validate(); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("config keys and validation") {
  DecodeConfig c{64, 4, 3, 2};
  CHECK(c.key() == "bn64_wn4_st3_sp2");
  CHECK(DecodeConfig::from_key(c.key()) == c);
  KernelSpec s;
  CHECK_NOTHROW(c.validate(s));
  CHECK(code_of([&] { DecodeConfig{48, 4, 3, 1}.validate(s); }) == ErrorCode::kInvalidArgument);  // 48 % 64
  CHECK(code_of([&] { DecodeConfig{64, 4, 1, 1}.validate(s); }) == ErrorCode::kInvalidArgument);  // stages
  CHECK(code_of([&] { DecodeConfig{64, 4, 3, -1}.validate(s); }) == ErrorCode::kInvalidArgument);  // splits
  CHECK_NOTHROW(DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity}.validate(s));        // the heuristic's
  CHECK(DecodeConfig::from_key("bn64_wn4_st3_sp0").num_splits == DecodeConfig::kSplitsFromCapacity);
  s.q_seqlen = 8; s.group = 16;  // 128 rows: 8 warp rows
  CHECK(code_of([&] { DecodeConfig{256, 16, 2, 1}.validate(s); }) == ErrorCode::kInvalidArgument);  // 4096 threads
}

TEST_CASE("launch geometry") {
  KernelSpec s;
  s.q_seqlen = 4; s.group = 4;  // 16 rows: one warp row
  const DecodeGeometry g = decode_geometry(s, DecodeConfig{64, 4, 3, 1});
  CHECK(g.rows == 16);
  CHECK(g.warps_m == 1);
  CHECK(g.threads == 128);
  CHECK(g.q_bytes == 16 * 128 * 2);
  CHECK(g.tile_bytes == 64 * 128 * 2);
  CHECK(g.shared_bytes == g.q_bytes + 2 * 3 * g.tile_bytes);
  s.group = 5;  // 20 rows: two warp rows
  CHECK(decode_geometry(s, DecodeConfig{64, 2, 3, 1}).threads == 2 * 2 * 32);
}

TEST_CASE("fused merge knob: key round trip, canonical order, same geometry") {
  KernelSpec s;
  s.q_seqlen = 1; s.group = 4;
  const DecodeConfig fused{64, 4, 3, 0, 0, true};
  CHECK(fused.key() == "bn64_wn4_st3_fm_sp0");
  CHECK(DecodeConfig::from_key(fused.key()) == fused);
  const DecodeConfig both{32, 2, 3, 7, DecodeConfig::kProducerBulk, true};
  CHECK(both.key() == "bn32_wn2_st3_pw2_fm_sp7");
  CHECK(DecodeConfig::from_key(both.key()) == both);
  CHECK(code_of([] { DecodeConfig::from_key("bn64_wn4_st3_fm_pw2_sp0"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { DecodeConfig::from_key("bn64_wn4_st3_fm_fm_sp0"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { DecodeConfig::from_key("bn64_wn4_st3_fm"); }) == ErrorCode::kInvalidArgument);
  // The merge moves into the epilogue: no shared memory or threads of its own.
  CHECK(decode_geometry(s, fused).shared_bytes == decode_geometry(s, DecodeConfig{64, 4, 3, 0}).shared_bytes);
  CHECK(decode_geometry(s, fused).threads == decode_geometry(s, DecodeConfig{64, 4, 3, 0}).threads);
}

TEST_CASE("TMA page producer: which pages and tiles it takes, plain swizzled rows") {
  KernelSpec s;
  s.q_seqlen = 1; s.group = 4; s.page_size = 16;
  const DecodeConfig tma{64, 4, 3, 0, DecodeConfig::kProducerTma};
  CHECK(tma.key() == "bn64_wn4_st3_pw4_sp0");
  CHECK(DecodeConfig::from_key(tma.key()) == tma);
  CHECK_NOTHROW(tma.validate(s));
  const DecodeGeometry g = decode_geometry(s, tma);
  CHECK(g.stored_row_bytes == 128 * 2);  // no padding: the TMA swizzle spreads the rows over the banks
  CHECK(g.threads == 5 * 32);
  CHECK(g.q_bytes % 1024 == 0);          // the tiles start on 1024-byte swizzle atoms
  CHECK(g.tile_bytes % 1024 == 0);
  for (int page : {8, 32, 64, 128, 256}) {  // pages of whole atoms dividing the tile, or tiles inside a page
    s.page_size = page;
    CHECK_NOTHROW(tma.validate(s));
  }
  for (int page : {1, 4, 7, 24, 48}) {  // partial atoms, or neither divides the other
    s.page_size = page;
    CAPTURE(page);
    CHECK(code_of([&] { tma.validate(s); }) == ErrorCode::kInvalidArgument);
  }
  s.page_size = 16;
  s.kv_quant = KvQuant::kFp8E4M3;  // 8-bit rows of whole 128-byte boxes: head_dim 128 and 256
  CHECK_NOTHROW(tma.validate(s));
  CHECK(decode_geometry(s, tma).stored_row_bytes == 128);
  s.head_dim = 64;
  CHECK(code_of([&] { tma.validate(s); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("producer-warp loaders: key, validation and geometry") {
  KernelSpec s;
  s.q_seqlen = 1; s.group = 4;
  DecodeConfig c{64, 4, 3, 0, DecodeConfig::kProducerBulk};
  CHECK(c.key() == "bn64_wn4_st3_pw2_sp0");
  CHECK(DecodeConfig::from_key(c.key()) == c);
  CHECK(DecodeConfig::from_key("bn64_wn4_st3_sp0").producer == DecodeConfig::kLoadersAllWarps);
  CHECK(code_of([] { DecodeConfig::from_key("bn64_wn4_st3_xx2_sp0"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([&] { DecodeConfig{64, 4, 3, 1, 5}.validate(s); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([&] { DecodeConfig{64, 4, 3, 1, -1}.validate(s); }) == ErrorCode::kInvalidArgument);
  const DecodeGeometry plain = decode_geometry(s, DecodeConfig{64, 4, 3, 1});
  const DecodeGeometry cp_async = decode_geometry(s, DecodeConfig{64, 4, 3, 1, DecodeConfig::kProducerCpAsync});
  const DecodeGeometry bulk = decode_geometry(s, c);
  CHECK(cp_async.threads == plain.threads + 32);  // one producer warp on top of the compute warps
  CHECK(cp_async.tile_bytes == plain.tile_bytes);
  CHECK(cp_async.shared_bytes == plain.shared_bytes + 2 * 3 * 8);  // a full and an empty mbarrier per stage
  CHECK(bulk.stored_row_bytes == 128 * 2 + 16);                     // rows padded by 16 bytes
  CHECK(bulk.tile_bytes == 64 * (128 * 2 + 16));
  CHECK(bulk.barrier_offset == bulk.q_bytes + 2 * 3 * bulk.tile_bytes);
  CHECK(bulk.barrier_offset % 8 == 0);
  s.kv_quant = KvQuant::kInt8;
  CHECK(decode_geometry(s, c).stored_row_bytes == 128 + 16);
  const DecodeGeometry split_kv = decode_geometry(s, DecodeConfig{64, 4, 3, 1, DecodeConfig::kProducerBulkSplitKv});
  CHECK(split_kv.stored_row_bytes == 128 + 16);
  CHECK(split_kv.shared_bytes == split_kv.barrier_offset + 3 * 3 * 8);  // full K, full V and empty per stage
}

TEST_CASE("generated source is deterministic, self-contained and names its spec") {
  KernelSpec s;
  s.q_seqlen = 4; s.group = 4; s.local_window = true; s.global_window = true;
  const GeneratedKernel a = generate_paged_decode_cuda(s, DecodeConfig{});
  const GeneratedKernel b = generate_paged_decode_cuda(s, DecodeConfig{});
  CHECK(a.source == b.source);
  CHECK(a.kernel_symbol == "swajit_paged_decode_bf16_d128_p16_nhd_q4_g4_local_global__bn64_wn4_st3");
  CHECK(a.merge_symbol == a.kernel_symbol + "_merge");
  CHECK(a.source.find("// spec:   paged_decode_bf16_d128_p16_nhd_q4_g4_local_global") != std::string::npos);
  CHECK(a.source.find("#include") == std::string::npos);
  CHECK(a.source.find("constexpr int kGroup = 4;") != std::string::npos);
  CHECK(a.source.find("constexpr bool kLocalWindow = true;") != std::string::npos);
  s.local_window = false;
  CHECK(generate_paged_decode_cuda(s, DecodeConfig{}).source != a.source);
  CHECK(code_of([] { template_text("nope.cuh"); }) == ErrorCode::kInvalidArgument);
}

TEST_CASE("prefill spec keys and configs round-trip; invalid ones are named") {
  KernelSpec s;
  s.family = KernelFamily::kPrefill;
  s.page_size = 0;  // contiguous K/V
  s.group = 4;
  s.local_window = true;
  CHECK(s.key() == "prefill_bf16_d128_contig_g4_local");
  CHECK(KernelSpec::from_key(s.key()) == s);
  s.page_size = 7;
  s.kv_layout = KvLayout::kHND;
  s.causal = false;
  s.sink_logits = true;
  s.gqa = GqaMapping::kInterleaved;
  CHECK(s.key() == "prefill_bf16_d128_p7_hnd_g4_local_noncausal_attnsink_gqai");
  CHECK(KernelSpec::from_key(s.key()) == s);
  CHECK_THROWS_WITH_AS(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_attnsink_noncausal"),
                       doctest::Contains("not canonical"), Error);
  KernelSpec decode;
  decode.causal = false;
  CHECK_THROWS_WITH_AS(decode.validate(), doctest::Contains("causal = false is a prefill option"), Error);
  KernelSpec quantized = s;
  quantized.kv_quant = KvQuant::kInt8;
  CHECK(quantized.key() == "prefill_bf16_d128_p7_hnd_g4_local_noncausal_attnsink_gqai_kvint8");
  CHECK(KernelSpec::from_key(quantized.key()) == quantized);
  quantized.page_size = 0;  // contiguous K/V (no layout)
  quantized.kv_layout = KvLayout::kNHD;
  quantized.kv_quant = KvQuant::kFp8E4M3;
  CHECK(quantized.key() == "prefill_bf16_d128_contig_g4_local_noncausal_attnsink_gqai_kvfp8");
  CHECK(KernelSpec::from_key(quantized.key()) == quantized);
  // 8-bit K/V: stages hold 8-bit tiles, plus one widened 16-bit K and V tile pair.
  const PrefillGeometry q8 = prefill_geometry(quantized, PrefillConfig{128, 64, 3, 1, true, 1});
  CHECK(q8.tile_bytes == 64 * 128);
  CHECK(q8.dequant_bytes == 2 * 64 * 128 * 2);
  CHECK(q8.shared_bytes == 128 * 128 * 2 + 2 * 3 * 64 * 128 + 2 * 64 * 128 * 2);

  const PrefillConfig c{128, 64, 2, 1, true, 2};
  CHECK(c.key() == "bm128_bn64_st2_mt1_wg_oc2");
  CHECK(PrefillConfig::from_key(c.key()) == c);
  CHECK(PrefillConfig::from_key("bm64_bn32_st3_mt2") == PrefillConfig{64, 32, 3, 2, false, 1});
  CHECK_THROWS_WITH_AS(PrefillConfig::from_key("bm64_bn32_st3_mt2_oc1"), doctest::Contains("not canonical"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{96, 64, 2, 1, true, 1}.validate(s)), doctest::Contains("multiple of 64"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{128, 64, 1, 1, false, 1}.validate(s)), doctest::Contains("stages"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{48, 64, 2, 2, false, 1}.validate(s)), doctest::Contains("multiple of 16 * m_tiles"), Error);
  const PrefillGeometry g = prefill_geometry(s, PrefillConfig{128, 64, 3, 2, false, 1});
  CHECK(g.threads == 128);  // 4 warps of 32 rows
  CHECK(g.shared_bytes == 128 * 128 * 2 + 2 * 3 * 64 * 128 * 2);
  CHECK(g.dequant_bytes == 0);

  // warp specialization: a producer warpgroup, mbarriers after the stages, registers moved to the consumers
  const PrefillConfig ws{128, 64, 2, 1, true, 1, 2};
  CHECK(ws.key() == "bm128_bn64_st2_mt1_wg_ws2");
  CHECK(PrefillConfig::from_key(ws.key()) == ws);
  CHECK(PrefillConfig::from_key("bm128_bn64_st2_mt1_wg_ws1_oc2") == PrefillConfig{128, 64, 2, 1, true, 2, 1});
  CHECK_THROWS_WITH_AS(PrefillConfig::from_key("bm128_bn64_st2_mt1_wg_ws0"), doctest::Contains("not canonical"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{128, 64, 2, 1, false, 1, 1}.validate(s)), doctest::Contains("needs wgmma"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{128, 64, 2, 1, true, 1, 4}.validate(s)), doctest::Contains("warp_specialize"), Error);
  CHECK_THROWS_WITH_AS((PrefillConfig{192, 64, 2, 1, true, 1, 3}.validate(s)), doctest::Contains("ping-pong"), Error);
  CHECK_NOTHROW((PrefillConfig{128, 64, 2, 1, true, 1, 3}.validate(s)));

  // the TMA producer: a knob of the warp-specialized path; paged caches need boxes of whole pages or within one
  PrefillConfig tma = ws;
  tma.tma = true;
  CHECK(tma.key() == "bm128_bn64_st2_mt1_wg_ws2_tma");
  CHECK(PrefillConfig::from_key(tma.key()) == tma);
  CHECK(PrefillConfig::from_key("bm128_bn64_st2_mt1_wg_ws1_tma_oc2").tma);
  CHECK_NOTHROW(tma.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local")));
  CHECK_NOTHROW(tma.validate(KernelSpec::from_key("prefill_bf16_d128_p16_nhd_g4_local")));   // 4 pages a tile
  CHECK_NOTHROW(tma.validate(KernelSpec::from_key("prefill_bf16_d128_p256_hnd_g4_local")));  // a quarter page a tile
  CHECK_THROWS_WITH_AS(tma.validate(KernelSpec::from_key("prefill_bf16_d128_p13_nhd_g4_local")),
                       doctest::Contains("page_size = 13 and block_n = 64"), Error);
  CHECK_THROWS_WITH_AS(tma.validate(KernelSpec::from_key("prefill_bf16_d128_p4_nhd_g4_local")),
                       doctest::Contains("multiple of 8"), Error);
  // 8-bit K/V on TMA: boxes of whole 128-byte rows (head_dim 128 or 256), one staged (K, V) pair and its 4 barriers
  CHECK_NOTHROW(tma.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8")));
  CHECK_THROWS_WITH_AS(tma.validate(KernelSpec::from_key("prefill_bf16_d64_contig_g4_local_kvfp8")),
                       doctest::Contains("needs head_dim a multiple of 128"), Error);
  {
    PrefillConfig kv8_tile{128, 128, 2, 1, true, 1, 2};
    kv8_tile.tma = kv8_tile.persistent = true;
    const PrefillGeometry g = prefill_geometry(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8"), kv8_tile);
    CHECK(g.tile_bytes == 128 * 128 * 2);
    CHECK(g.dequant_bytes == 2 * 128 * 128);
    CHECK(g.barrier_bytes == (4 * 2 + 2 * 2 + 4) * 8);
    CHECK(g.shared_bytes <= 227 * 1024);  // the H200's opt-in limit
    PrefillConfig f16 = kv8_tile;
    f16.f16_mma = true;
    CHECK(f16.key() == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16");
    CHECK(PrefillConfig::from_key(f16.key()) == f16);
    CHECK(PrefillConfig::from_key("bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_pr40").producer_registers == 40);
    CHECK_NOTHROW(f16.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8")));
    CHECK_THROWS_WITH_AS(f16.validate(KernelSpec::from_key("prefill_fp16_d128_contig_g4_local_kvint8")),
                         doctest::Contains("f16_mma = true needs"), Error);
    CHECK_THROWS_WITH_AS(f16.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local")),
                         doctest::Contains("f16_mma = true needs"), Error);
    PrefillConfig sk = f16;  // scores from the stored K tiles and rows-first widening: knobs of the 8-bit TMA tile
    sk.stored_k_scores = sk.widen_rows = true;
    CHECK(sk.key() == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_sk_wr");
    CHECK(PrefillConfig::from_key(sk.key()) == sk);
    CHECK_NOTHROW(sk.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8")));
    CHECK_NOTHROW(sk.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8")));
    CHECK_THROWS_WITH_AS(sk.validate(KernelSpec::from_key("prefill_fp16_d128_contig_g4_local_kvint8")),
                         doctest::Contains("needs"), Error);
    CHECK_THROWS_WITH_AS(sk.validate(KernelSpec::from_key("prefill_bf16_d256_contig_g4_local_kvfp8")),
                         doctest::Contains("stored_k_scores = true needs"), Error);
    // stored K: K's stages hold the stored tiles and V takes the room for one more stage
    const PrefillGeometry stored = prefill_geometry(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8"), sk);
    CHECK(stored.k_tile_bytes == 128 * 128);
    CHECK(stored.v_stages == 3);
    CHECK(stored.shared_bytes <= 227 * 1024);
    // fp8 P.V from the transposed stored V tiles (_sv) and the compute warps' Q fold (_cf)
    PrefillConfig sv = sk;
    sv.widen_rows = false;
    sv.stored_v = sv.consumer_fold = true;
    CHECK(sv.key() == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_sk_sv_cf");
    CHECK(PrefillConfig::from_key(sv.key()) == sv);
    CHECK_NOTHROW(sv.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8")));
    CHECK_THROWS_WITH_AS(sv.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8")),
                         doctest::Contains("stored_v = true needs"), Error);
    PrefillConfig sv64 = sv;
    sv64.block_n = 64;
    CHECK_THROWS_WITH_AS(sv64.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8")),
                         doctest::Contains("block_n 128"), Error);
    PrefillConfig cf = f16;
    cf.consumer_fold = true;
    CHECK_THROWS_WITH_AS(cf.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvfp8")),
                         doctest::Contains("consumer_fold = true needs stored_k_scores"), Error);
    PrefillConfig wr = kv8_tile;
    wr.widen_rows = true;
    CHECK_NOTHROW(wr.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8")));
    CHECK_THROWS_WITH_AS(wr.validate(KernelSpec::from_key("prefill_bf16_d128_contig_g4_local")),
                         doctest::Contains("widen_rows = true needs"), Error);
  }
  // 8-bit K/V, warp specialized: the stages hold widened 16-bit tiles, staged through the 8-bit pair area
  const KernelSpec int8_spec = KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8");
  CHECK_NOTHROW(ws.validate(int8_spec));
  const PrefillGeometry g8 = prefill_geometry(int8_spec, ws);
  CHECK(g8.tile_bytes == 64 * 128 * 2);
  CHECK(g8.dequant_bytes == 2 * 2 * 64 * 128);  // K and V stored tiles, double buffered
  PrefillConfig tma_alone{128, 64, 2, 1, true};
  tma_alone.tma = true;
  CHECK_THROWS_WITH_AS(tma_alone.validate(s), doctest::Contains("tma = true needs warp_specialize"), Error);
  const PrefillGeometry gw = prefill_geometry(s, ws);
  CHECK(gw.threads == 384);  // 2 consumer warpgroups + the producer
  CHECK(gw.shared_bytes == 128 * 128 * 2 + 2 * 2 * 64 * 128 * 2 + (4 * 2 + 2) * 8);  // K/V full + empty, Q full + empty
  // persistent (tma only): a second Q tile and its two barriers
  PrefillConfig persistent = tma;
  persistent.persistent = true;
  CHECK(persistent.key() == tma.key() + "_pt");
  CHECK(PrefillConfig::from_key(persistent.key()) == persistent);
  CHECK(PrefillConfig::from_key("bm128_bn64_st2_mt1_wg_ws1_tma_pt_oc2").persistent);
  const KernelSpec contiguous = KernelSpec::from_key("prefill_bf16_d128_contig_g4_local");
  CHECK_NOTHROW(persistent.validate(contiguous));
  CHECK(prefill_geometry(contiguous, persistent).shared_bytes ==
        prefill_geometry(contiguous, tma).shared_bytes + 128 * 128 * 2 + 2 * 8);
  PrefillConfig persistent_gathers = persistent;
  persistent_gathers.tma = false;
  CHECK_THROWS_WITH_AS(persistent_gathers.validate(contiguous), doctest::Contains("persistent = true needs tma = true"), Error);
  // snake_order (persistent only): every other round of items walked backwards; no shared memory of its own
  PrefillConfig snake = persistent;
  snake.snake_order = true;
  CHECK(snake.key() == persistent.key() + "_sn");
  CHECK(PrefillConfig::from_key(snake.key()) == snake);
  CHECK(PrefillConfig::from_key("bm128_bn128_st2_mt1_wg_ws2_tma_pt_sn_pr40_oc2").snake_order);
  CHECK_NOTHROW(snake.validate(contiguous));
  CHECK(prefill_geometry(contiguous, snake).shared_bytes == prefill_geometry(contiguous, persistent).shared_bytes);
  PrefillConfig snake_alone = tma;
  snake_alone.snake_order = true;
  CHECK_THROWS_WITH_AS(snake_alone.validate(contiguous), doctest::Contains("snake_order = true needs persistent = true"), Error);
  // overlap_items (persistent ws2 only): an item's last P.V carried into the next item
  PrefillConfig overlap = snake;
  overlap.overlap_items = true;
  overlap.warp_specialize = 1;
  CHECK_THROWS_WITH_AS(overlap.validate(contiguous), doctest::Contains("overlap_items = true needs persistent = true and warp_specialize = 2"), Error);
  overlap.warp_specialize = 2;
  CHECK(overlap.key() == "bm128_bn64_st2_mt1_wg_ws2_tma_pt_sn_ov");
  CHECK(PrefillConfig::from_key(overlap.key()) == overlap);
  CHECK_NOTHROW(overlap.validate(contiguous));
  // dynamic_items (persistent, no snake order): blocks claim their next item; one 8-byte item slot per Q buffer
  PrefillConfig dynamic = persistent;
  dynamic.dynamic_items = true;
  CHECK(dynamic.key() == persistent.key() + "_dy");
  CHECK(PrefillConfig::from_key("bm128_bn128_st2_mt1_wg_ws2_tma_pt_ov_dy_f16_pr40_oc2").dynamic_items);
  CHECK(PrefillConfig::from_key(dynamic.key()) == dynamic);
  CHECK_NOTHROW(dynamic.validate(contiguous));
  CHECK(prefill_geometry(contiguous, dynamic).barrier_bytes == prefill_geometry(contiguous, persistent).barrier_bytes + 2 * 8);
  PrefillConfig dynamic_snake = dynamic;
  dynamic_snake.snake_order = true;
  CHECK_THROWS_WITH_AS(dynamic_snake.validate(contiguous), doctest::Contains("dynamic_items = true needs persistent = true and snake_order = false"), Error);
  PrefillConfig dynamic_alone = tma;
  dynamic_alone.dynamic_items = true;
  CHECK_THROWS_WITH_AS(dynamic_alone.validate(contiguous), doctest::Contains("dynamic_items = true needs persistent"), Error);
  // tma_store (tma, no overlapped items): the output rows through the Q buffer and a TMA store
  PrefillConfig stored = dynamic;
  stored.tma_store = true;
  CHECK(stored.key() == persistent.key() + "_dy_ts");
  CHECK(PrefillConfig::from_key(stored.key()) == stored);
  CHECK(PrefillConfig::from_key("bm128_bn128_st2_mt1_wg_ws2_tma_pt_sn_ts_f16_pr40_oc2").tma_store);
  CHECK_NOTHROW(stored.validate(contiguous));
  stored.softmax_chains = true;
  CHECK(stored.key() == persistent.key() + "_dy_ts_ch");
  CHECK(PrefillConfig::from_key(stored.key()) == stored);
  CHECK(PrefillConfig::from_key("bm128_bn128_st2_mt1_ch").softmax_chains);
  stored.overlap_items = true;
  CHECK_THROWS_WITH_AS(stored.validate(contiguous), doctest::Contains("tma_store = true needs tma = true and overlap_items = false"), Error);
  CHECK(gw.producer_registers == 56);
  CHECK(gw.consumer_registers == 224);  // (168 x 384 - 56 x 128) / 256
  CHECK(gw.producer_registers * 128 + gw.consumer_registers * 256 <= 168 * 384);
  // producer_registers: FA3's 24 / 240 split of the same block (the TMA producer needs few registers)
  PrefillConfig fa3_split = persistent;
  fa3_split.producer_registers = 24;
  CHECK(fa3_split.key() == persistent.key() + "_pr24");
  CHECK(PrefillConfig::from_key(fa3_split.key()) == fa3_split);
  CHECK(PrefillConfig::from_key("bm128_bn64_st2_mt1_wg_ws1_tma_pt_pr40_oc2").producer_registers == 40);
  CHECK_NOTHROW(fa3_split.validate(contiguous));
  const PrefillGeometry split = prefill_geometry(contiguous, fa3_split);
  CHECK(split.producer_registers == 24);
  CHECK(split.consumer_registers == 240);  // min(240, (168 x 384 - 24 x 128) / 256)
  for (int bad : {16, 30, 64}) {
    fa3_split.producer_registers = bad;
    CHECK_THROWS_AS(fa3_split.validate(contiguous), Error);
  }
  PrefillConfig unspecialized{128, 64, 2, 1, true};
  unspecialized.producer_registers = 24;
  CHECK_THROWS_WITH_AS(unspecialized.validate(contiguous), doctest::Contains("warp_specialize > 0"), Error);
}

// templates/window_mask.h compiled here for every combination of the spec's mask flags, as the kernels see it.
#define SWAJIT_WINDOW_FN static inline
#define SWAJIT_WINDOW_METHOD inline
namespace mask_variants {
// (the header has no include guard: each namespace gets its own copy)
namespace ccl { using std::max; using std::min; constexpr int kBlockN = 64; constexpr bool kCausal = true, kLocalWindow = true, kGlobalWindow = true;
#include "../templates/window_mask.h"
}
namespace ccn { using std::max; using std::min; constexpr int kBlockN = 64; constexpr bool kCausal = true, kLocalWindow = true, kGlobalWindow = false;
#include "../templates/window_mask.h"
}
namespace cnn { using std::max; using std::min; constexpr int kBlockN = 64; constexpr bool kCausal = true, kLocalWindow = false, kGlobalWindow = false;
#include "../templates/window_mask.h"
}
namespace ncl { using std::max; using std::min; constexpr int kBlockN = 64; constexpr bool kCausal = false, kLocalWindow = true, kGlobalWindow = true;
#include "../templates/window_mask.h"
}
}  // namespace mask_variants

template <class VisibleColumnsFn, class IsVisibleFn>
static void check_columns_match(VisibleColumnsFn visible_columns, IsVisibleFn is_visible, const char* variant) {
  uint64_t state = 12345;
  const auto next = [&](int bound) { state = state * 6364136223846793005ull + 1442695040888963407ull; return int((state >> 33) % uint64_t(bound)); };
  for (int trial = 0; trial < 20000; ++trial) {
    const int p = next(600), first_token = next(600), tile_end = first_token + 1 + next(64);
    const int local_window = next(5) == 0 ? 0 : 1 + next(300), global_window = next(3) == 0 ? 0 : next(200);
    const auto columns = visible_columns(p, first_token, tile_end, local_window, global_window);
    for (int c = 0; c < 64; ++c) {
      const int j = first_token + c;
      const bool expected = j < tile_end && is_visible(p, j, local_window, global_window);
      if (columns(c) != expected) {
        FAIL(std::string(variant) << ": p " << p << " j " << j << " tile_end " << tile_end << " local " << local_window << " global "
                     << global_window << ": visible_columns says " << columns(c));
        return;
      }
    }
  }
}

TEST_CASE("a masked tile's visible columns are exactly the visible positions") {
  using namespace mask_variants;
  check_columns_match(ccl::visible_columns, ccl::is_visible, "causal, local, global");
  check_columns_match(ccn::visible_columns, ccn::is_visible, "causal, local");
  check_columns_match(cnn::visible_columns, cnn::is_visible, "causal");
  check_columns_match(ncl::visible_columns, ncl::is_visible, "non-causal, local, global");
}

// tiles_on_block_grid: tiles start at multiples of kBlockN, never overlap, stay inside [0, end of the visited
// ranges), and still cover every (query, key) pair a block of queries can see.
template <class Ranges, class Align, class IsVisible>
static void check_block_grid(Ranges visible_tile_ranges, Align tiles_on_block_grid, IsVisible is_visible, const char* variant) {
  constexpr int kBlockN = 64;
  uint64_t state = 99;
  const auto next = [&](int bound) { state = state * 6364136223846793005ull + 1442695040888963407ull; return int((state >> 33) % uint64_t(bound)); };
  for (int trial = 0; trial < 3000; ++trial) {
    const int kv_len = next(900), rows = 1 + next(200), p_max = kv_len - 1 - (kv_len > 0 ? next(std::max(kv_len / 4, 1)) : 0);
    const int p_min = std::max(0, p_max - rows + 1);
    const int local_window = next(5) == 0 ? 0 : 1 + next(300), global_window = next(3) == 0 ? 0 : next(200);
    const auto original = visible_tile_ranges(p_min, p_max, kv_len, local_window, global_window);
    const auto aligned = tiles_on_block_grid(original);
    INFO(variant << ": kv_len " << kv_len << " p " << p_min << ".." << p_max << " local " << local_window << " global " << global_window);
    std::vector<int> covered(size_t(std::max(kv_len, 1)) + kBlockN, 0);
    int previous_end = 0;
    for (int t = 0; t < aligned.count(); ++t) {
      const int begin = aligned.tile_begin(t), end = aligned.tile_end(t);
      REQUIRE(begin % kBlockN == 0);
      REQUIRE(begin >= previous_end);
      REQUIRE(end > begin);
      REQUIRE(end <= std::max(kv_len, 0));
      previous_end = end;
      for (int j = begin; j < end; ++j) covered[j] = 1;
    }
    int uncovered = 0;
    for (int p = p_min; p <= p_max && kv_len > 0; ++p)
      for (int j = 0; j < kv_len; ++j) uncovered += is_visible(p, j, local_window, global_window) && !covered[j];
    REQUIRE(uncovered == 0);
    REQUIRE(aligned.count() <= original.count() + 1);  // at most one extra tile: the rounded-down window start
  }
}

TEST_CASE("tiles on the block grid (prefill's TMA path) cover every visible pair and start at multiples of kBlockN") {
  using namespace mask_variants;
  check_block_grid(ccl::visible_tile_ranges, ccl::tiles_on_block_grid, ccl::is_visible, "causal, local, global");
  check_block_grid(ccn::visible_tile_ranges, ccn::tiles_on_block_grid, ccn::is_visible, "causal, local");
  check_block_grid(cnn::visible_tile_ranges, cnn::tiles_on_block_grid, cnn::is_visible, "causal");
  check_block_grid(ncl::visible_tile_ranges, ncl::tiles_on_block_grid, ncl::is_visible, "non-causal, local, global");
}

TEST_CASE("sparse_decode spec keys round-trip, topk buckets, invalid fields are named") {
  AttentionCall call;
  call.head_dim = 576; call.head_dim_v = 512; call.shared_kv = true; call.group = 128; call.page_size = 64;
  call.topk = 2048; call.local_window = 128; call.sink_logits = true; call.score_bias = true;
  const KernelSpec mla = sparse_decode_kernel_spec(call);
  CHECK(mla.key() == "sparse_decode_bf16_d576_v512_p64_nhd_q1_g128_k2048_local_sharedkv_bias_attnsink");
  CHECK(KernelSpec::from_key(mla.key()) == mla);
  AttentionCall separate;
  separate.topk = 100; separate.q_seqlen = 4; separate.kv_quant = KvQuant::kFp8E4M3; separate.gqa = GqaMapping::kInterleaved;
  const KernelSpec s = sparse_decode_kernel_spec(separate);
  CHECK(s.topk == 128);
  CHECK(s.head_dim_v == 128);
  CHECK(s.key() == "sparse_decode_bf16_d128_v128_p16_nhd_q4_g1_k128_full_gqai_kvfp8");
  CHECK(KernelSpec::from_key(s.key()) == s);
  CHECK(topk_bucket(1) == 16);
  CHECK(topk_bucket(16) == 16);
  CHECK(topk_bucket(17) == 32);
  CHECK(topk_bucket(2048) == 2048);

  const auto fails_with = [](AttentionCall c, const std::string& needle) {
    try {
      sparse_decode_kernel_spec(c);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
      return;
    }
    FAIL("no error for " << needle);
  };
  AttentionCall bad = separate;
  bad.topk = 0;
  fails_with(bad, "topk");
  bad.topk = 2049;
  fails_with(bad, "topk");
  bad = separate;
  bad.group = 129;
  fails_with(bad, "group");
  bad = separate;
  bad.head_dim_v = 64;  // separate K/V: V is as wide as K
  fails_with(bad, "head_dim_v");
  bad = call;
  bad.head_dim_v = 500;
  fails_with(bad, "head_dim_v");
  bad = call;
  bad.shared_kv = false;
  fails_with(bad, "head_dim = 576");
  bad = separate;
  bad.global_window = 4;
  fails_with(bad, "global window");
  CHECK(code_of([] { KernelSpec::from_key("sparse_decode_bf16_d128_v128_p16_nhd_q1_g1_k100_full"); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([] { KernelSpec::from_key("sparse_decode_bf16_d128_v128_p16_nhd_q1_g1_k128_global"); }) == ErrorCode::kUnsupported);
  CHECK(code_of([] { KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q1_g1_full_sharedkv"); }) == ErrorCode::kInvalidArgument);

  SparseDecodeConfig config{32, 3, 5};
  CHECK(config.key() == "bn32_st3_sp5");
  CHECK(SparseDecodeConfig::from_key(config.key()) == config);
  CHECK_NOTHROW(config.validate(s));
  CHECK(code_of([&] { SparseDecodeConfig{24, 2, 1}.validate(s); }) == ErrorCode::kInvalidArgument);
  CHECK(code_of([&] { SparseDecodeConfig{64, 2, 1}.validate(KernelSpec{}); }) == ErrorCode::kInvalidArgument);
  const SparseDecodeConfig tensor_cores{64, 2, 3, true};
  CHECK(tensor_cores.key() == "bn64_st2_mma_sp3");
  CHECK(SparseDecodeConfig::from_key(tensor_cores.key()) == tensor_cores);
  CHECK_NOTHROW(tensor_cores.validate(mla));
  CHECK(code_of([&] { tensor_cores.validate(s); }) == ErrorCode::kUnsupported);  // s has an fp8 cache
  CHECK(code_of([] { SparseDecodeConfig::from_key("bn64_st2_wgmma_sp3"); }) == ErrorCode::kInvalidArgument);
  const GeneratedKernel cpu = generate_sparse_decode_cpu(s, CpuDecodeConfig{});
  CHECK(cpu.source.find("constexpr int kHeadDim = 128, kHeadDimV = 128;") != std::string::npos);
  CHECK(cpu.source.find("#include") == std::string::npos);
}
