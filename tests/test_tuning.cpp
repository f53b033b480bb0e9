// The tuner's pieces that need no GPU: the shape-bucket rule, config JSON, the config space, workload files and
// presets, the runtime's lookup of tuned configs through the database, and the tune-on-miss guard.
#include <doctest/doctest.h>

#include <algorithm>
#include <iterator>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <vector>

#include "heuristic.hpp"
#include "hopper_devices.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"
#include "tune_commands.hpp"
#include "tune_family.hpp"
#include "checked_input.hpp"
#include "tuner.hpp"
#include "shipped_tuning.hpp"
#include "tuning_store.hpp"

using namespace swajit;

namespace {
std::filesystem::path temp_dir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / ("swajit_test_tuning_" + std::string(name) + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}
}  // namespace

TEST_CASE("shape buckets round batch and visible KV up to powers of two") {
  CHECK(shape_bucket(1, 4096).key() == "b1_kv4096");
  CHECK(shape_bucket(3, 4099).key() == "b4_kv8192");
  CHECK(shape_bucket(128, 128).key() == "b128_kv128");
  CHECK(shape_bucket(0, 0).key() == "b1_kv1");
  CHECK(std::string(bucket_rule_text()).find("power of two") != std::string::npos);
}

TEST_CASE("configs round-trip through JSON; bad JSON names the field") {
  const DecodeConfig c{128, 2, 4, 16};
  CHECK(decode_config_from_json(decode_config_to_json(c)) == c);
  CHECK(!decode_config_to_json(c).contains("producer"));  // records of the default loaders read as before
  const DecodeConfig producer{64, 4, 3, 0, DecodeConfig::kProducerBulk};
  CHECK(decode_config_from_json(decode_config_to_json(producer)) == producer);
  CHECK(!decode_config_to_json(producer).contains("fused_merge"));
  const DecodeConfig fused{64, 4, 3, 0, 0, true};
  CHECK(decode_config_from_json(decode_config_to_json(fused)) == fused);
  try {
    decode_config_from_json(nlohmann::json{{"block_n", 64}, {"warps_n", 4}, {"stages", "3"}, {"num_splits", 1}});
    FAIL("accepted a string stage count");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("'stages'") != std::string::npos);
  }
}

TEST_CASE("the config space holds only valid configs, and the heuristic's shape of config") {
  KernelSpec spec;
  spec.q_seqlen = 4; spec.group = 4;
  const auto space = decode_config_space(spec, 32);
  CHECK(space.size() > 50);
  for (const auto& c : space) CHECK_NOTHROW(c.validate(spec));
  // Every config of the space reads its block_table entries a tile step ahead (pages_ahead), as the heuristic's do.
  const auto ahead = [](DecodeConfig c) { c.pages_ahead = true; return c; };
  for (const auto& c : space) CHECK(c.pages_ahead);
  CHECK(std::find(space.begin(), space.end(), ahead(DecodeConfig{64, 4, 3, 16})) != space.end());
  CHECK(std::find(space.begin(), space.end(), DecodeConfig{32, 4, 3, 1}) == space.end());  // 32 tokens over 4 warps
  CHECK(decode_config_space(spec, 1).size() * 7 == 2 * space.size());  // splits 0 (capacity), 1 | 2, 4, 8, 16, 32
  CHECK(std::find(space.begin(), space.end(), ahead(DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity})) != space.end());

  // Deeper pipelines of smaller tiles with the bytes in flight of 16-bit block_n 64 ones: bf16 block_n 32 at 5 and 7
  // stages; 8-bit block_n 64 at 5 and 7, block_n 32 at 5 (9 is past the limit); and the heuristic's: 5 stages of
  // 8-bit tiles = 3 of 16-bit ones, while two blocks still fit an SM's shared memory.
  const auto has = [&](const std::vector<DecodeConfig>& s, DecodeConfig c) { return std::find(s.begin(), s.end(), ahead(c)) != s.end(); };
  CHECK(has(space, DecodeConfig{32, 2, 7, 1}));
  CHECK_FALSE(has(space, DecodeConfig{64, 2, 5, 1}));
  KernelSpec int8_spec = spec;
  int8_spec.kv_quant = KvQuant::kInt8;
  const auto int8_space = decode_config_space(int8_spec, 1);
  CHECK(has(int8_space, DecodeConfig{64, 4, 7, 1}));
  CHECK(has(int8_space, DecodeConfig{32, 2, 5, 1}));
  CHECK_FALSE(has(int8_space, DecodeConfig{32, 2, 7, 1}));
  CHECK(has(int8_space, DecodeConfig{128, 4, 4, 1}));
  // On a device, the depths its memory system asks for and the deepest its shared memory holds at one and two blocks
  // per SM: bn32 at head_dim 128 up to 8 and 6 stages, bn64 up to 6 (one block of 196 KB), none of them constants.
  const auto h200_space = decode_config_space(spec, 1, &test::kH200);
  CHECK(has(h200_space, DecodeConfig{32, 2, 8, 1}));
  CHECK(has(h200_space, DecodeConfig{32, 2, 6, 1}));
  CHECK(has(h200_space, DecodeConfig{64, 4, 6, 1}));
  CHECK_FALSE(has(space, DecodeConfig{64, 4, 6, 1}));
  CHECK(h200_space.size() > decode_config_space(spec, 1).size());
  constexpr int kH200SharedPerBlock = 227 * 1024, kH200SharedPerSm = 228 * 1024;
  CHECK(has(int8_space, DecodeConfig{128, 4, 3, 1}));
  constexpr int kCapacity = DecodeConfig::kSplitsFromCapacity;
  // 8-bit: tiles of 16-bit block_n 64's bytes; head_dim 256 (3 such stages would not leave room for 2 blocks per
  // SM) keeps block_n 64 with a deeper pipeline.
  CHECK(heuristic_decode_config(int8_spec, kH200SharedPerBlock, kH200SharedPerSm) == DecodeConfig{128, 4, 3, kCapacity});
  KernelSpec int8_256 = int8_spec;
  int8_256.head_dim = 256;
  CHECK(heuristic_decode_config(int8_256, kH200SharedPerBlock, kH200SharedPerSm) == DecodeConfig{64, 4, 3, kCapacity});
  KernelSpec int8_32_rows = int8_spec;
  int8_32_rows.group = 8;  // 2 row tiles: 2 warp columns, which at block_n 128 would be 64 tokens a warp
  CHECK(heuristic_decode_config(int8_32_rows, kH200SharedPerBlock, kH200SharedPerSm).block_n == 64);
  CHECK(heuristic_decode_config(spec, kH200SharedPerBlock, kH200SharedPerSm) == DecodeConfig{64, 4, 3, kCapacity});
  CHECK(heuristic_decode_config(int8_spec, kH200SharedPerBlock, 140 * 1024).stages == 4);  // 2 x 68 KB fit, 2 x 84 KB do not
  // Bulk-copied rows are padded by 16 bytes: the default tiles and stages still fit two blocks per SM.
  constexpr int kBulk = DecodeConfig::kProducerBulk;
  CHECK(2 * decode_geometry(spec, DecodeConfig{64, 4, 3, kCapacity, kBulk}).shared_bytes <= kH200SharedPerSm);
  CHECK(2 * decode_geometry(int8_spec, DecodeConfig{128, 4, 3, kCapacity, kBulk}).shared_bytes <= kH200SharedPerSm);
}

// The configs tools/bench/RESULTS.md measured best, from one rule over each device's DeviceInfo (the read bandwidth
// from its memory clock and bus width, SMs, shared memory, registers) and the call's (sequence, kv head) pairs.
TEST_CASE("one device-derived decode rule gives the measured winners on the H100 and the H200") {
  using test::kH100;
  using test::kH200;
  constexpr int kCapacity = DecodeConfig::kSplitsFromCapacity, kBulk = DecodeConfig::kProducerBulk;
  // Every-warp loaders read a tile step ahead (pages_ahead: session 7 run B2, page 16 b32 / b128 / b256 q1 151.4 /
  // 532.4 / 1057.4 -> 135.1 / 507.3 / 988.1 us).
  const auto every_warp = [](DecodeConfig c) { c.pages_ahead = true; return c; };
  const DecodeConfig wide = every_warp({64, 4, 3, kCapacity}), narrow = every_warp({32, 2, 3, kCapacity});
  // Cut pairs merged by the main grid's last blocks where a block's rows are few (q1, groups up to 4) and the pairs
  // fill half the resident blocks (session 12: uniform b32 q1 133.2 -> 130.0 us, q4 and batch 8 slower).
  const auto fused = [](DecodeConfig c) { c.fused_merge = true; return c; };
  KernelSpec mistral;  // 32 q / 8 kv heads, head_dim 128
  mistral.q_seqlen = 1; mistral.group = 4;
  KernelSpec mistral_q4 = mistral;
  mistral_q4.q_seqlen = 4;
  KernelSpec gemma_d128 = mistral;  // gemma-3-27b preset: 32 q / 16 kv heads
  gemma_d128.group = 2;
  KernelSpec gemma_d256 = gemma_d128;
  gemma_d256.head_dim = 256;

  // H200 (4.4 TB/s read): the default's two blocks per SM stream 87% of the floor; bn32 wn2 st3 (4 blocks) won
  // where the pairs fill two blocks per SM (session 4 runs C/D: b128 529.2 us against 558.5, q4 542.9 against
  // 580.5; gemma-3-27b b32 72.6, b128 274.0), and tied at b32 (145.0 against 146.0), where the default stays.
  CHECK(heuristic_decode_config(mistral, kH200, 128 * 8) == fused(narrow));
  CHECK(heuristic_decode_config(mistral_q4, kH200, 128 * 8) == narrow);
  CHECK(heuristic_decode_config(gemma_d128, kH200, 32 * 16) == fused(narrow));
  CHECK(heuristic_decode_config(gemma_d128, kH200, 128 * 16) == fused(narrow));
  CHECK(heuristic_decode_config(mistral, kH200, 32 * 8) == fused(wide));
  CHECK(heuristic_decode_config(mistral, kH200, 8 * 8) == wide);
  CHECK(heuristic_decode_config(mistral, kH200, 1 * 8) == wide);
  // head_dim 256 on the H200: the producer's bn32 wn2 st3 once the pairs fill one block per SM (run B: b32 211.6 ->
  // 159.3 us, b128 817.9 -> 613.4; every warp loading 4-6% slower than the default); b8 (128 pairs) keeps the
  // default, bn64 wn4 with the 2 stages one block per SM holds (55.5 us against 82.1 for the producer).
  const DecodeConfig gemma_wide = heuristic_decode_config(gemma_d256, kH200.max_shared_per_block_optin, kH200.max_shared_per_sm);
  CHECK(gemma_wide == DecodeConfig{64, 4, 2, kCapacity});
  // The producer moves whole pages as TMA boxes where the pages suit them (session 5 run B2: b32 144.3, b128 528.4 us),
  // else bulk row copies.
  constexpr int kTma = DecodeConfig::kProducerTma;
  CHECK(heuristic_decode_config(gemma_d256, kH200, 32 * 16) == DecodeConfig{32, 2, 3, kCapacity, kTma});
  CHECK(heuristic_decode_config(gemma_d256, kH200, 128 * 16) == DecodeConfig{32, 2, 3, kCapacity, kTma});
  KernelSpec gemma_page_7 = gemma_d256;  // pages TMA boxes cannot fill
  gemma_page_7.page_size = 7;
  CHECK(heuristic_decode_config(gemma_page_7, kH200, 32 * 16) == DecodeConfig{32, 2, 3, kCapacity, kBulk});
  // Caches the TMA engine cannot read (paged_decode.cpp: decode_tma_layout_problem) keep the row copies too.
  CHECK(heuristic_decode_config(gemma_d256, kH200, 32 * 16, 0, /*tma_layout_ok=*/false) == DecodeConfig{32, 2, 3, kCapacity, kBulk});
  KernelSpec mistral_int8 = mistral;  // int8: TMA pages where TMA reads the caches, else every warp loading
  mistral_int8.kv_quant = KvQuant::kInt8;
  CHECK(heuristic_decode_config(mistral_int8, kH200, 32 * 8).producer == kTma);
  const DecodeConfig int8_gathers = heuristic_decode_config(mistral_int8, kH200, 32 * 8, 0, /*tma_layout_ok=*/false);
  CHECK(int8_gathers.producer == DecodeConfig::kLoadersAllWarps);
  CHECK(int8_gathers.min_blocks == 1);
  CHECK(heuristic_decode_config(gemma_d256, kH200, 8 * 16) == every_warp(gemma_wide));
  // fp8: every warp loading; half the tokens over half the warp columns once the pairs fill those blocks uncut, int8
  // too (session 8 runs B / B2: fp8 b128 269.8 against 284.7 us, int8 295.1 against its TMA pages' 301.3; fp8 b32,
  // 256 pairs on 528 slots, 83.6 against 79.9).
  KernelSpec mistral_fp8 = mistral;
  mistral_fp8.kv_quant = KvQuant::kFp8E4M3;
  DecodeConfig fp8_wide{128, 4, 3, kCapacity}, fp8_narrow{64, 2, 3, kCapacity};
  for (DecodeConfig* c : {&fp8_wide, &fp8_narrow}) c->pages_first = c->pages_ahead = true;
  CHECK(heuristic_decode_config(mistral_fp8, kH200, 32 * 8) == fp8_wide);
  CHECK(heuristic_decode_config(mistral_fp8, kH200, 64 * 8) == fp8_narrow);
  CHECK(heuristic_decode_config(mistral_fp8, kH200, 128 * 8) == fp8_narrow);
  KernelSpec mistral_fp8_q4 = mistral_fp8;
  mistral_fp8_q4.q_seqlen = 4;
  CHECK(heuristic_decode_config(mistral_fp8_q4, kH200, 256 * 8) == fp8_narrow);
  CHECK(heuristic_decode_config(mistral_fp8_q4, kH200, 32 * 8) == fp8_wide);
  CHECK(heuristic_decode_config(mistral_int8, kH200, 128 * 8) == fp8_narrow);

  // H100 (3.1 TB/s read): the default already streams the floor (tuned 2026-11-22: bn64_wn4_st3_sp1 at 92-96% of
  // it at batch 32 and 128), so the same pairs keep it.
  CHECK(heuristic_decode_config(mistral, kH100, 128 * 8) == fused(wide));
  CHECK(heuristic_decode_config(mistral, kH100, 32 * 8) == fused(wide));
  CHECK(heuristic_decode_config(mistral, kH100, 8 * 8) == wide);

  // The rule follows the device, not its name: an H100 with the H200's memory picks what the H200 picks, and a
  // device of half the SMs with the H200's bandwidth (twice the share per SM) takes the narrow tiles at half the pairs.
  DeviceInfo fast_h100 = kH100;
  fast_h100.memory_clock_khz = kH200.memory_clock_khz;
  fast_h100.memory_bus_width_bits = kH200.memory_bus_width_bits;
  CHECK(heuristic_decode_config(mistral, fast_h100, 128 * 8) == fused(narrow));
  DeviceInfo half = kH200;
  half.sm_count = 66;
  CHECK(heuristic_decode_config(mistral, half, 32 * 8) == fused(narrow));
  CHECK(heuristic_decode_config(mistral, half, 16 * 8) == fused(wide));  // 128 pairs: under half of 4 x 66 blocks

  // Where the default's blocks cut every pair in two anyway, the narrow tile cuts them further if each item keeps a
  // pipeline's tiles: the gemma-3-27b preset (window 1024) at batch 8 (H200 run A: bn32_wn2_st3_sp4 25.9 us against
  // the default's 35.6) and the grid at batch 8 (bn32_wn2_st3_sp8 45.0 against 46.7); not at batch 1 (2 tiles an
  // item; the default won). Head_dim 256 at batch 8, where the default's one block per SM cuts nothing and holds one
  // tile in flight: the producer's 3 stages over pieces of the pairs (session 7 run B: 46.2 us against 57.3).
  CHECK(heuristic_decode_config(gemma_d128, kH200, 8 * 16, 1024) == narrow);
  CHECK(heuristic_decode_config(mistral, kH200, 8 * 8, 4096) == narrow);
  CHECK(heuristic_decode_config(mistral, kH200, 1 * 8, 4096) == wide);
  CHECK(heuristic_decode_config(gemma_d128, kH200, 1 * 16, 1024) == wide);
  CHECK(heuristic_decode_config(gemma_d256, kH200, 8 * 16, 1024) == DecodeConfig{32, 2, 3, kCapacity, kTma});
  // Pages of one token the same (session 7 run B: b32 271.1 -> 136.4 us).
  KernelSpec mistral_page_1 = mistral;
  mistral_page_1.page_size = 1;
  for (int64_t batch : {1, 32, 128, 256}) {
    DecodeConfig expected = heuristic_decode_config(mistral, kH200, batch * 8, 32768);
    expected.pages_ahead = true;
    CHECK(heuristic_decode_config(mistral_page_1, kH200, batch * 8, 32768) == expected);
  }
  CHECK(heuristic_decode_config(mistral, kH100, 8 * 8, 4096) == wide);  // memory-bound on the H100: a tie

  // Pairs too short for the work schedule (gpt-oss: window 128, head_dim 64, 8 rows per kv head) run on the direct
  // grid: at batch 128 (1024 pairs) the default's 4 blocks per SM take two waves where 32-token tiles of one warp
  // column take one (H200, tuned bn32_wn1_st3_sp1 13.2 us against the default's 18.2; bn32 wn2 measured 17.4 in run
  // B1 of session 5); at batch 32 both take one and the default stays (the
  // tuned winner there). Long windows are cut by the schedule whatever the batch: no waves.
  KernelSpec gpt_oss;
  gpt_oss.head_dim = 64; gpt_oss.group = 8; gpt_oss.q_seqlen = 1; gpt_oss.sink_logits = true;
  CHECK(heuristic_decode_config(gpt_oss, kH200, 128 * 8, 128) == every_warp({32, 1, 3, 1}));  // one warp column
  CHECK(heuristic_decode_config(gpt_oss, kH200, 32 * 8, 128) == wide);
  // q_seqlen 4 (32 rows): 32-token tiles over one warp column fit 7 blocks per SM, 924 on the H200, still two waves
  // for 1024 pairs: the default stays (the tuner found bn32_wn1_st5 scheduled 1.16x faster: not this rule's).
  KernelSpec gpt_oss_q4 = gpt_oss;
  gpt_oss_q4.q_seqlen = 4;
  CHECK(heuristic_decode_config(gpt_oss_q4, kH200, 128 * 8, 128 + 3) == every_warp({64, 2, 3, kCapacity}));
  CHECK(heuristic_decode_config(mistral, kH200, 128 * 8, 4096) == fused(narrow));
  CHECK(heuristic_decode_config(mistral, kH100, 128 * 8, 4096) == fused(wide));

  // Unknown pairs (gen, the tuner's space), 8-bit caches, devices before sm_90 (no bulk copies) and many rows per
  // block (a 64 KB Q tile at 128 rows: one block per SM, 8 warps) keep the default's loaders.
  CHECK(heuristic_decode_config(mistral, kH200) == wide);
  KernelSpec gemma_int8 = gemma_d256;
  gemma_int8.kv_quant = KvQuant::kInt8;
  CHECK(heuristic_decode_config(gemma_int8, kH200, 32 * 16).producer == DecodeConfig::kLoadersAllWarps);
  DeviceInfo ampere = kH200;
  ampere.cc_major = 8;
  CHECK(heuristic_decode_config(gemma_d256, ampere, 32 * 16).producer == DecodeConfig::kLoadersAllWarps);
  KernelSpec many_rows = gemma_d256;
  many_rows.group = 16; many_rows.q_seqlen = 8;
  CHECK(heuristic_decode_config(many_rows, kH200, 32 * 16).producer == DecodeConfig::kLoadersAllWarps);
}

TEST_CASE("presets and workload files") {
  cli::TuneCommand grid;
  const auto mistral = cli::preset_shapes("mistral-7b", grid);
  CHECK(mistral.size() == 16);
  CHECK(mistral[0].num_q_heads == 32);
  CHECK(mistral[0].num_kv_heads == 8);
  CHECK(mistral[0].local_window == 4096);
  const auto gpt_oss = cli::preset_shapes("gpt-oss-20b", grid);
  CHECK(gpt_oss[0].sink_logits);
  CHECK(gpt_oss[0].head_dim == 64);
  CHECK_THROWS_AS(cli::preset_shapes("llama-3", grid), Error);

  const auto dir = temp_dir("workload");
  const auto good = dir / "good.json", bad = dir / "bad.json";
  std::ofstream(good) << R"({"shapes": [{"batch": 4, "kv_len": 1000, "num_q_heads": 8, "num_kv_heads": 2,
                                         "head_dim": 64, "q_seqlen": 2, "kv_quant": "fp8", "sink_logits": true}]})";
  const auto shapes = cli::workload_shapes(good.string());
  REQUIRE(shapes.size() == 1);
  CHECK(shapes[0].batch == 4);
  CHECK(shapes[0].kv_quant == KvQuant::kFp8E4M3);
  CHECK(shapes[0].sink_logits);
  CHECK(shapes[0].page_size == 16);  // default
  std::ofstream(bad) << R"({"shapes": [{"batch": 4, "kv_len": "long", "num_q_heads": 8, "num_kv_heads": 2, "head_dim": 64}]})";
  try {
    cli::workload_shapes(bad.string());
    FAIL("accepted a string kv_len");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("shapes[0].kv_len must be an integer") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the runtime finds tuned configs by (SKU, spec, bucket) and ignores foreign or broken rows") {
  const auto dir = temp_dir("store");
  const std::string path = (dir / "tuning.db").string();
  {
    db::TuningDb db(path);
    db::DeviceRecord device;
    device.sku = "Test GPU sm_90 x132";
    device.backend = "cuda";
    db.upsert_device(device);
    db::WinnerRecord w;
    w.device_sku = device.sku;
    w.spec_key = "paged_decode_bf16_d128_p16_nhd_q1_g4_local";
    w.bucket = "b32_kv4096";
    w.config = decode_config_to_json(DecodeConfig{32, 2, 3, 8});
    w.time_us = 10;
    db.put_winner(w);
    w.bucket = "b64_kv4096";
    w.config = nlohmann::json{{"block_n", 32}};  // broken: missing fields
    db.put_winner(w);
  }
  TuningStore& store = TuningStore::instance();
  store.set_path(path);
  REQUIRE(store.available());
  const auto hit = store.decode_winner("Test GPU sm_90 x132", "paged_decode_bf16_d128_p16_nhd_q1_g4_local", "b32_kv4096");
  REQUIRE(hit.has_value());
  CHECK(*hit == DecodeConfig{32, 2, 3, 8});
  CHECK_FALSE(store.decode_winner("Other GPU sm_80 x108", "paged_decode_bf16_d128_p16_nhd_q1_g4_local", "b32_kv4096"));
  CHECK_FALSE(store.decode_winner("Test GPU sm_90 x132", "paged_decode_bf16_d128_p16_nhd_q1_g4_local", "b64_kv4096"));
  store.put_binary("abc123", "sm_90a", 13000, 13000, {'\x7f', 'E', 'L', 'F'});
  const auto stored = store.binary("abc123");  // found by its hash alone: no compiler version needed to look it up
  REQUIRE(stored);
  CHECK(stored->bytes == std::vector<char>{'\x7f', 'E', 'L', 'F'});
  CHECK(stored->compiler_version == 13000);  // kept beside it, for the caller to judge
  CHECK(stored->driver_version == 13000);
  CHECK_FALSE(store.binary("abc124"));
  store.set_path((dir / "missing-dir" / "x" / "tuning.db").string());
  std::filesystem::remove_all(dir);
}

TEST_CASE("prefill: config JSON, buckets and the config space") {
  const PrefillConfig c{192, 128, 3, 1, true, 1};
  CHECK(prefill_config_from_json(prefill_config_to_json(c)) == c);
  CHECK_THROWS_WITH_AS(prefill_config_from_json(nlohmann::json{{"block_m", 128}}), doctest::Contains("'block_n'"), Error);
  CHECK(prefill_bucket_key(1, 32768, 4096) == "b1_q32768_w4096");
  CHECK(prefill_bucket_key(3, 5000, 0) == "b4_q8192_w0");
  KernelSpec spec;
  spec.family = KernelFamily::kPrefill;
  spec.page_size = 0;
  spec.group = 4;
  spec.local_window = true;
  const auto without = prefill_config_space(spec, false), with = prefill_config_space(spec, true);
  CHECK(without.size() > 20);
  CHECK(with.size() > without.size());
  for (const auto& config : without) {
    CHECK_FALSE(config.wgmma);
    CHECK_NOTHROW(config.validate(spec));
  }
  for (const auto& config : with) {
    if (config.wgmma) CHECK(config.block_m % 64 == 0);
    if (config.warp_specialize) {
      CHECK(config.wgmma);
      // 3 and 2 on row gathers measured slower: forcible, not tuned; 2 with TMA on the persistent grid is tuned
      CHECK((config.warp_specialize == 1 || (config.warp_specialize == 2 && config.tma && config.persistent)));
      CHECK(config.min_blocks == 1);
    }
  }
  CHECK(std::any_of(with.begin(), with.end(), [](const PrefillConfig& c) { return c.warp_specialize == 1; }));
  // every ws1 config comes with and without the TMA producer, and with TMA once more as ws2 on the persistent grid;
  // paged 7 (no box fits) only without
  const auto count_tma = [](const std::vector<PrefillConfig>& space, bool tma, int mode = 1) {
    return std::count_if(space.begin(), space.end(), [&](const PrefillConfig& c) { return c.warp_specialize == mode && c.tma == tma; });
  };
  CHECK(count_tma(with, true) > 0);
  CHECK(count_tma(with, true) == count_tma(with, false));
  CHECK(count_tma(with, true, 2) == count_tma(with, true));
  CHECK(count_tma(without, true) == 0);
  KernelSpec paged7 = spec;
  paged7.page_size = 7;
  const auto paged7_space = prefill_config_space(paged7, true);
  CHECK(count_tma(paged7_space, false) > 0);
  CHECK(count_tma(paged7_space, true) == 0);
  // 8-bit K/V: the TMA-widened configs are tuned where the boxes hold whole 128-byte rows (head_dim 128, not 64)
  KernelSpec int8_spec = spec;
  int8_spec.head_dim = 128;
  int8_spec.kv_quant = KvQuant::kInt8;
  const auto int8_space = prefill_config_space(int8_spec, true);
  // the stored-K configs (8-bit, head_dim 128, the bm128 bn128 st2 persistent tile): the producer's or the compute
  // warps' Q fold, and for fp8 also P.V from the stored V tiles
  const auto stored = [](const std::vector<PrefillConfig>& space) {
    std::vector<PrefillConfig> out;
    std::copy_if(space.begin(), space.end(), std::back_inserter(out), [](const PrefillConfig& c) { return c.stored_k_scores; });
    return out;
  };
  const auto int8_stored = stored(int8_space);
  CHECK(int8_stored.size() == 2);
  for (const PrefillConfig& c : int8_stored) {
    CHECK((c.block_m == 128 && c.block_n == 128 && c.stages == 2 && c.persistent && c.f16_mma && !c.stored_v));
    CHECK_NOTHROW(c.validate(int8_spec));
  }
  KernelSpec fp8_spec = int8_spec;
  fp8_spec.kv_quant = KvQuant::kFp8E4M3;
  const auto fp8_stored = stored(prefill_config_space(fp8_spec, true));
  CHECK(fp8_stored.size() == 4);
  CHECK(std::count_if(fp8_stored.begin(), fp8_stored.end(), [](const PrefillConfig& c) { return c.stored_v; }) == 2);
  const std::ptrdiff_t int8_stored_count = int8_stored.size();
  CHECK(count_tma(int8_space, true) == 2 * count_tma(int8_space, false));  // with and without f16_mma
  CHECK(count_tma(int8_space, true, 2) == count_tma(int8_space, true) + int8_stored_count);
  const auto f16_count = [](const std::vector<PrefillConfig>& space) {
    return std::count_if(space.begin(), space.end(), [](const PrefillConfig& c) { return c.f16_mma; });
  };
  // half of the other TMA tiles
  CHECK(2 * (f16_count(int8_space) - int8_stored_count) ==
        count_tma(int8_space, true) + count_tma(int8_space, true, 2) - int8_stored_count);
  CHECK(f16_count(with) == 0);  // 16-bit K/V: no f16_mma
  int8_spec.head_dim = 64;
  CHECK(count_tma(prefill_config_space(int8_spec, true), true) == 0);
  const PrefillConfig ws{128, 64, 2, 1, true, 2, 2};
  CHECK(prefill_config_from_json(prefill_config_to_json(ws)) == ws);
  nlohmann::json old = prefill_config_to_json(c);  // written before warp_specialize existed
  old.erase("warp_specialize");
  CHECK(prefill_config_from_json(old) == c);
  PrefillConfig tma = ws;
  tma.tma = true;
  CHECK(prefill_config_from_json(prefill_config_to_json(tma)) == tma);
  PrefillConfig persistent = tma;  // written only when set: records of other configs stay as they were
  persistent.persistent = true;
  CHECK(prefill_config_from_json(prefill_config_to_json(persistent)) == persistent);
  PrefillConfig f16 = persistent;  // likewise written only when set
  f16.f16_mma = true;
  CHECK(prefill_config_from_json(prefill_config_to_json(f16)) == f16);
  CHECK_FALSE(prefill_config_to_json(persistent).contains("f16_mma"));
  PrefillConfig kv8_knobs = f16;  // scores from the stored K tiles, rows-first widening: likewise
  kv8_knobs.stored_k_scores = kv8_knobs.widen_rows = true;
  CHECK(prefill_config_from_json(prefill_config_to_json(kv8_knobs)) == kv8_knobs);
  kv8_knobs.stored_v = kv8_knobs.consumer_fold = true;  // likewise
  CHECK(prefill_config_from_json(prefill_config_to_json(kv8_knobs)) == kv8_knobs);
  CHECK_FALSE(prefill_config_to_json(f16).contains("stored_v"));
  CHECK_FALSE(prefill_config_to_json(f16).contains("consumer_fold"));
  CHECK_FALSE(prefill_config_to_json(f16).contains("stored_k_scores"));
  CHECK_FALSE(prefill_config_to_json(f16).contains("widen_rows"));
  CHECK_FALSE(prefill_config_to_json(tma).contains("persistent"));
  PrefillConfig knobs = persistent;  // snake order and overlapped items: written only when set, like persistent
  knobs.snake_order = knobs.overlap_items = true;
  CHECK(prefill_config_from_json(prefill_config_to_json(knobs)) == knobs);
  CHECK_FALSE(prefill_config_to_json(persistent).contains("snake_order"));
  CHECK_FALSE(prefill_config_to_json(persistent).contains("overlap_items"));
  nlohmann::json before_tma = prefill_config_to_json(ws);  // written before the tma knob existed
  before_tma.erase("tma");
  CHECK(prefill_config_from_json(before_tma) == ws);
}

TEST_CASE("tune-on-miss: threads missing the same key share one run, its winner or its error") {
  std::atomic<int> runs{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  const auto nothing_stored = [] { return std::optional<nlohmann::json>(); };
  const auto slow_tune = [&] {
    ++runs;
    released.wait();  // every thread misses while this run is in flight
    return nlohmann::json{{"block_n", 32}};
  };
  constexpr int kThreads = 4;
  std::vector<std::future<nlohmann::json>> results;
  for (int t = 0; t < kThreads; ++t)
    results.push_back(std::async(std::launch::async, [&] { return tune_on_miss("sku spec b1", nothing_stored, slow_tune); }));
  while (runs == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the others reach the in-flight run
  release.set_value();
  for (auto& r : results) CHECK(r.get() == nlohmann::json{{"block_n", 32}});
  CHECK(runs == 1);

  // A finished run is forgotten: the next miss asks the database first, and tunes only if it still has nothing.
  CHECK(tune_on_miss("sku spec b1", [] { return std::optional<nlohmann::json>(nlohmann::json{{"block_n", 64}}); },
                     slow_tune) == nlohmann::json{{"block_n", 64}});
  CHECK(runs == 1);

  // An error reaches the caller (no half-done state is left: the next miss runs again).
  const auto failing = [&]() -> nlohmann::json {
    ++runs;
    throw Error(ErrorCode::kUnsupported, "no config ran correctly");
  };
  CHECK_THROWS_AS(tune_on_miss("sku spec b2", nothing_stored, failing), Error);
  CHECK_THROWS_AS(tune_on_miss("sku spec b2", nothing_stored, failing), Error);
  CHECK(runs == 3);
}

TEST_CASE("shipped tuning data: found by the SKU beneath the user's database, the user's rows win, sources listed") {
  CHECK(shipped::file_name("NVIDIA H100 80GB HBM3 sm_90 x132") == "nvidia-h100-80gb-hbm3-sm-90-x132.json");
  if (!std::getenv("SWAJIT_SHIPPED_DIR") && shipped::directory()) {  // this checkout's (or the installed) files
    const std::string h100 = "NVIDIA H100 80GB HBM3 sm_90 x132";
    REQUIRE(shipped::file_for(h100));
    CHECK(shipped::winners(h100).size() >= 6);
    // The H200's: decode winners of session 3 runs A and C, prefill (TMA space) and decode winners of run D.
    const std::string h200 = "NVIDIA H200 sm_90 x132";
    CHECK(shipped::file_name(h200) == "nvidia-h200-sm-90-x132.json");
    REQUIRE(shipped::file_for(h200));
    CHECK(shipped::winners(h200).size() >= 5);
    for (const db::WinnerRecord& w : shipped::winners(h200))
      if (w.spec_key.rfind("paged_decode_", 0) == 0) CHECK_NOTHROW(decode_config_from_json(w.config));
  }
  const auto dir = temp_dir("shipped");
  const std::string sku = "Shipped GPU sm_90 x132", spec = "paged_decode_bf16_d128_p16_nhd_q1_g4_local";
  const DecodeConfig user_config{32, 2, 3, 8}, shipped_config{64, 4, 4, 2};
  nlohmann::json doc = {{"format", "swajit-tuning-db"}, {"version", 1}, {"devices", nlohmann::json::array()},
                        {"winners", nlohmann::json::array()}};
  for (const char* bucket : {"b32_kv4096", "b64_kv4096"})
    doc["winners"].push_back({{"device_sku", sku}, {"spec_key", spec}, {"bucket", bucket},
                              {"config", decode_config_to_json(shipped_config)}, {"time_us", 5.0}, {"samples", 100}});
  std::filesystem::create_directories(dir / "shipped");
  std::ofstream(dir / "shipped" / shipped::file_name(sku)) << doc.dump();
  std::ofstream(dir / "shipped" / "broken-gpu.json") << "{ not json";  // reported and skipped, never fatal
  const std::string path = (dir / "tuning.db").string();
  {
    db::TuningDb db(path);
    db::DeviceRecord device;
    device.sku = sku;
    device.backend = "cuda";
    db.upsert_device(device);
    db::WinnerRecord w;
    w.device_sku = sku;
    w.spec_key = spec;
    w.bucket = "b32_kv4096";
    w.config = decode_config_to_json(user_config);
    w.time_us = 7;
    db.put_winner(w);
  }
  ::setenv("SWAJIT_SHIPPED_DIR", (dir / "shipped").c_str(), 1);
  TuningStore& store = TuningStore::instance();
  store.set_path(path);
  CHECK(store.decode_winner(sku, spec, "b32_kv4096") == user_config);     // the user's row wins
  CHECK(store.decode_winner(sku, spec, "b64_kv4096") == shipped_config);  // only shipped: found by the SKU
  CHECK_FALSE(store.decode_winner("Unshipped GPU sm_80 x108", spec, "b64_kv4096"));
  {
    db::TuningDb db(path);
    const auto listed = shipped::winners_beneath(db.list_winners());
    REQUIRE(listed.size() == 2);  // the shipped b32 row lies under the user's and is not listed
    CHECK(listed[0].winner.bucket == "b32_kv4096");
    CHECK(listed[0].source == "user");
    CHECK(listed[1].winner.bucket == "b64_kv4096");
    CHECK(listed[1].source == "shipped:" + shipped::file_name(sku));
    CHECK(decode_config_from_json(listed[1].winner.config) == shipped_config);
  }
  ::setenv("SWAJIT_SHIPPED", "0", 1);  // turned off: only the user's database
  store.set_path(path);
  CHECK_FALSE(store.decode_winner(sku, spec, "b64_kv4096"));
  CHECK(store.decode_winner(sku, spec, "b32_kv4096") == user_config);
  ::unsetenv("SWAJIT_SHIPPED");
  ::unsetenv("SWAJIT_SHIPPED_DIR");
  store.set_path((dir / "missing-dir" / "x" / "tuning.db").string());
  std::filesystem::remove_all(dir);
}

TEST_CASE("tune --device cuda:all: each GPU's worker gets its share of the shard and its own --device") {
  CHECK(cli::worker_shard("0/1", 0, 2) == "0/2");
  CHECK(cli::worker_shard("0/1", 1, 2) == "1/2");
  CHECK(cli::worker_shard("1/3", 1, 2) == "4/6");  // items 1, 4, 7, ... of the whole: worker 1 takes 4, 10, ...
  // The workers' shards cover exactly the items of the shard, each once.
  for (const auto& [shard, workers] : {std::pair<std::string, int>{"0/1", 8}, {"2/5", 3}, {"0/3", 1}}) {
    const auto [index, count] = cli::parse_shard(shard);
    for (int item = 0; item < 200; ++item) {
      int takers = 0;
      for (int g = 0; g < workers; ++g) {
        const auto [wi, wn] = cli::parse_shard(cli::worker_shard(shard, g, workers));
        takers += item % wn == wi;
      }
      CHECK(takers == (item % count == index ? 1 : 0));
    }
  }
  std::vector<std::string> argv_text = {"swajit", "--db", "x.db", "tune", "--preset", "mistral-7b", "--device",
                                        "cuda:all", "--shard=1/2", "--quick-reps", "3"};
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  CHECK(cli::worker_arguments(int(argv.size()), argv.data(), 3, "7/8") ==
        std::vector<std::string>{"--db", "x.db", "tune", "--preset", "mistral-7b", "--quick-reps", "3", "--device",
                                 "cuda:3", "--shard", "7/8"});
  if (cuda_devices().empty()) {
    int ran = 0;
    CHECK_THROWS_WITH_AS(cli::tune_on_every_gpu(int(argv.size()), argv.data(), cli::TuneRun{},
                                                [&](const cli::TuneRun&) { return ++ran; }),
                         doctest::Contains("--device cuda:all: no GPU"), Error);
    CHECK(ran == 0);
  }
}

TEST_CASE("bench and tune shapes: only the pages the window and the sinks touch are allocated and counted") {
  DecodeShape gpt_oss;  // window 128 at kv 32768, page 16: the last 8 pages
  gpt_oss.batch = 256;
  gpt_oss.kv_len = 32768;
  gpt_oss.local_window = 128;
  gpt_oss.page_size = 16;
  CHECK(gpt_oss.first_visible(0) == 32768 - 128);
  const auto pages = [](const DecodeShape& s) {
    const DecodeShape::TouchedPages t = s.touched_pages(0);
    return std::vector<int>{t.sink_end, t.window_begin, t.end, int(t.count())};
  };
  CHECK(pages(gpt_oss) == std::vector<int>{0, 2040, 2048, 8});
  gpt_oss.q_seqlen = 4;  // three more keys for the earlier queries: one more page
  CHECK(pages(gpt_oss) == std::vector<int>{0, 2039, 2048, 9});
  gpt_oss.global_window = 17;  // sinks: pages 0 and 1 too
  CHECK(pages(gpt_oss) == std::vector<int>{2, 2039, 2048, 11});
  DecodeShape full;  // no local window: every page, the sinks' inside the window's
  full.kv_len = 100;
  full.local_window = 0;
  full.global_window = 4;
  full.page_size = 7;
  CHECK(pages(full) == std::vector<int>{0, 0, 15, 15});
  DecodeShape empty;  // kv length 0: nothing
  empty.kv_len = 0;
  empty.q_seqlen = 0;
  CHECK(pages(empty) == std::vector<int>{0, 0, 0, 0});
  DecodeShape window_past_start;  // the window starts on page 0: no separate sink pages
  window_past_start.kv_len = 40;
  window_past_start.local_window = 4096;
  window_past_start.global_window = 4;
  CHECK(pages(window_past_start) == std::vector<int>{0, 0, 3, 3});
  // Gemma 3 (16 kv heads, head_dim 256, window 1024) at batch 256 and kv 32768 touches ~4 GiB, not the 128 GiB of
  // whole sequences: a machine of any size above that takes it.
  cli::TuneCommand batch_256;
  batch_256.batches = {256}; batch_256.kv_lens = {32768}; batch_256.q_seqlens = {1};
  DecodeShape gemma = cli::preset_shapes("gemma-3-27b", batch_256).front();  // 32 q / 16 kv heads, window 1024
  gemma.head_dim = 256;                                                        // the 4B / 12B models' head_dim
  CHECK_NOTHROW(cli::check_decode_shape(gemma, "gemma", DLDevice{kDLCPU, 0}));
}

// Every way a decode config is made gives one that validates: the heuristics (with and without a device, 16- and
// 8-bit, every head_dim, q_seqlen 1..8), the tuner's space, and JSON records with and without the later knobs (a
// record written before min_blocks existed reads as 1, not 0).
TEST_CASE("every decode config path gives a valid config (later knobs at their defaults)") {
  const KernelSpec base = KernelSpec::from_key("paged_decode_bf16_d128_p16_nhd_q1_g4_local");
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kInt8, KvQuant::kFp8E4M3})
    for (int d : {64, 128, 256})
      for (int qs : {1, 4, 8}) {
        KernelSpec spec = base;
        spec.kv_quant = quant;
        spec.head_dim = d;
        spec.q_seqlen = qs;
        INFO(spec.key());
        for (const DecodeConfig& c : {heuristic_decode_config(spec, test::kH200), heuristic_decode_config(spec, test::kH200, 1024, 4096),
                                      heuristic_decode_config(spec, 227 * 1024, 228 * 1024)}) {
          CHECK_NOTHROW(c.validate(spec));
          CHECK(c.min_blocks == (c.producer == DecodeConfig::kProducerTma && quant != KvQuant::kNone ? 2 : 1));
        }
        const DecodeConfig on_device = heuristic_decode_config(spec, test::kH200, 1024, 4096);
        CHECK(decode_geometry(spec, on_device).shared_bytes <= test::kH200.max_shared_per_block_optin);  // it fits
        CHECK(on_device.pages_first == (quant != KvQuant::kNone));
        // 8-bit at 1024 pairs: every warp loading, a tile step ahead (session 7 run B2), the halved tile up to head_dim
        // 128 (session 8); int8 at 64 pairs on TMA pages at head_dim 128.
        if (quant != KvQuant::kNone) CHECK(on_device.producer == DecodeConfig::kLoadersAllWarps);
        if (quant != KvQuant::kNone && d <= 128) CHECK(on_device.block_n == heuristic_decode_config(spec, test::kH200).block_n / 2);
        if (quant == KvQuant::kInt8 && d == 128)
          CHECK(heuristic_decode_config(spec, test::kH200, 64, 4096).producer == DecodeConfig::kProducerTma);
        CHECK(on_device.pages_ahead == (on_device.producer == DecodeConfig::kLoadersAllWarps));
        CHECK_NOTHROW(without_tma_pages(spec, on_device).validate(spec));
        CHECK(!on_device.integer_scores);
        for (const DecodeConfig& c : decode_config_space(spec, 4, &test::kH200)) {
          INFO(c.key());
          CHECK_NOTHROW(c.validate(spec));
          CHECK(decode_config_from_json(decode_config_to_json(c)) == c);
        }
      }
  DecodeConfig knobs{128, 4, 3, 0, DecodeConfig::kProducerTma};
  knobs.min_blocks = 2;
  knobs.pages_first = true;
  knobs.integer_scores = true;
  knobs.pages_ahead = true;
  knobs.early_tiles = true;
  CHECK(decode_config_from_json(decode_config_to_json(knobs)) == knobs);
  const DecodeConfig old_record = decode_config_from_json(nlohmann::json::parse(R"({"block_n": 64, "warps_n": 4, "stages": 3, "num_splits": 0})"));
  CHECK(old_record == DecodeConfig{64, 4, 3, 0});
  CHECK(old_record.min_blocks == 1);
}
