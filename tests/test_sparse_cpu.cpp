// The sparse top-k decode family without a GPU: its whole check matrix against the reference on the CPU backend,
// every bad argument rejected with a typed error naming it, and the CUDA kernel of every spec of the matrix compiled
// for sm_90a by NVRTC; the tuner's config space, records, presets and shape bucket.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "check.hpp"
#include "family.hpp"
#include "tuner.hpp"
#include "tensor_checks.hpp"
#include "nvrtc_compiler.hpp"
#include "hopper_devices.hpp"
#include "sparse_decode_problem.hpp"
#include "swajit/generator.hpp"
#include "swajit/swajit.hpp"

using namespace swajit;

namespace {
constexpr DLDevice kCpu{kDLCPU, 0};

// A small valid CPU call whose tensors a test may change one at a time.
struct SparseFixture {
  std::vector<int64_t> q_shape{2, 1, 8, 128}, cache_shape{4, 16, 2, 128}, bt_shape{2, 2}, sl_shape{2}, idx_shape{2, 1, 8},
      out_shape{2, 1, 8, 128}, bias_shape{2, 1, 8};
  std::vector<uint16_t> q = std::vector<uint16_t>(2 * 8 * 128, 0x3f80), out = q;
  std::vector<uint16_t> k = std::vector<uint16_t>(4 * 16 * 2 * 128, 0x3f80), v = k;
  std::vector<int> block_table{0, 1, 2, 3}, seq_lens{20, 5}, indices = std::vector<int>(16, -1);
  std::vector<float> bias = std::vector<float>(16, 0.f);
  DLTensor view(void* data, std::vector<int64_t>& shape, DLDataType dtype) { return dl_tensor(data, dtype, kCpu, shape); }
  SparseDecodeOptions options;
  void call(bool shared = false) {
    const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
    const DLTensor v_t = view(v.data(), cache_shape, bf16);
    sparse_decode(view(q.data(), q_shape, bf16), view(k.data(), cache_shape, bf16), shared ? nullptr : &v_t,
                  view(block_table.data(), bt_shape, i32), view(seq_lens.data(), sl_shape, i32),
                  view(indices.data(), idx_shape, i32), view(out.data(), out_shape, bf16), nullptr, options);
  }
};

void expect_error(SparseFixture& f, const std::string& needle, ErrorCode code = ErrorCode::kInvalidArgument,
                  bool shared = false) {
  try {
    f.call(shared);
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
    return;
  }
  FAIL("no error mentioning '" << needle << "'");
}
}  // namespace

TEST_CASE("CPU sparse decode: check matrix against the reference") {
  const auto db = std::filesystem::temp_directory_path() / ("swajit_sparse_test_" + std::to_string(::getpid()) + ".db");
  set_tuning_db_path(db.string());
  const auto cases = sparse_check_matrix(kCpu);
  CHECK(cases.size() > 40);
  for (size_t i = 0; i < cases.size(); ++i) {
    const SparseCase& c = cases[i];
    INFO(c.name << " (" << c.spec().key() << ")");
    const CaseResult r = run_sparse_case(c, kCpu, 5000 + i);
    INFO(r.detail);
    CHECK(r.passed);
  }
  std::filesystem::remove(db);
}

TEST_CASE("CPU sparse decode: a valid call runs; every bad argument is named") {
  SparseFixture ok;
  ok.indices[0] = 19;
  CHECK_NOTHROW(ok.call());
  CHECK(ok.out[0] == 0x3f80);  // one visible token of ones: out is that V row
  {
    SparseFixture f;
    f.indices[3] = 20;  // == seq_lens[0]
    expect_error(f, "indices value is outside [-1, seq_lens[b])", ErrorCode::kDeviceArgument);
  }
  {
    SparseFixture f;
    f.idx_shape = {2, 1, 0};
    expect_error(f, "topk");
  }
  {
    SparseFixture f;
    f.idx_shape = {2, 2, 8};
    expect_error(f, "indices must be [batch = 2, q_seqlen = 1");
  }
  {
    SparseFixture f;
    f.options.global_window = 4;
    expect_error(f, "global_window", ErrorCode::kUnsupported);
  }
  {
    SparseFixture f;
    DLTensor bias = f.view(f.bias.data(), f.bias_shape, {kDLFloat, 32, 1});
    f.bias_shape = {2, 1, 7};
    f.options.score_bias = &bias;
    expect_error(f, "score_bias must be");
  }
  {
    SparseFixture f;
    DLTensor bias = f.view(f.bias.data(), f.bias_shape, {kDLFloat, 16, 1});
    f.options.score_bias = &bias;
    expect_error(f, "score_bias");
  }
  {
    SparseFixture f;
    f.out_shape = {2, 1, 8, 64};  // separate V: out is head_dim wide
    expect_error(f, "head_dim_v");
  }
  {
    SparseFixture f;
    f.out_shape = {2, 1, 8, 40};  // shared: a multiple of 16
    expect_error(f, "head_dim_v", ErrorCode::kInvalidArgument, true);
  }
  {
    SparseFixture f;
    f.seq_lens[1] = 40;  // past the two pages the table gives it
    expect_error(f, "seq_lens");
  }
  {
    SparseFixture f;  // shared K/V with head_dim_v 64 runs
    f.out_shape = {2, 1, 8, 64};
    f.indices[0] = 3;
    CHECK_NOTHROW(f.call(true));
  }
}

TEST_CASE("the CUDA kernel of every spec in the sparse check matrix compiles for sm_90a") {
  std::string why;
  if (!nvrtc::available(&why)) {
    MESSAGE("skipped: " << why);
    return;
  }
  std::vector<std::string> compiled;
  for (const SparseCase& c : sparse_check_matrix({kDLCUDA, 0})) {  // with the [CUDA cores] copies' specs
    const KernelSpec spec = c.spec();
    if (std::find(compiled.begin(), compiled.end(), spec.key()) != compiled.end()) continue;
    compiled.push_back(spec.key());
    constexpr int kHopperSharedOptin = 227 * 1024;  // what an sm_90 block may opt in to
    // The heuristic's config (tensor cores for 16-bit caches) and the CUDA-core kernel the check matrix forces.
    std::vector<SparseDecodeConfig> configs = {sparse_decode_heuristic(spec, kHopperSharedOptin)};
    if (configs[0].mma) configs.push_back(SparseDecodeConfig{64, 2, 1, false});
    if (configs[0].token_split) configs.push_back(SparseDecodeConfig{64, 2, 1, true});  // the column-split mma kernel
    if (c.config && (c.config->mla || c.config->l2_ahead || c.config->persistent))
      configs.push_back(*c.config);  // the MLA kernel's copies, the gather's prefetches and the persistent kernel
    for (const SparseDecodeConfig& config : configs) {
      const GeneratedKernel k = generate_sparse_decode_cuda(spec, config);
      INFO(k.cache_key);
      const nvrtc::CompiledCubin cubin = nvrtc::compile(k.source, k.cache_key + ".cu", "sm_90a");
      CHECK(std::string(cubin.cubin.data(), 4) == "\x7f" "ELF");
      CHECK(sparse_decode_geometry(spec, config).shared_bytes <= kHopperSharedOptin);
    }
  }
  MESSAGE(compiled.size() << " sparse_decode kernels compiled");
}

TEST_CASE("sparse tuning: the config space, its keys and records, the presets and the shape bucket") {
  AttentionCall call;
  call.head_dim = 128;
  call.group = 8;
  call.page_size = 64;
  call.topk = 2048;
  const KernelSpec a = sparse_decode_kernel_spec(call);  // shape a: 64 q / 8 kv heads, d128
  const std::vector<SparseDecodeConfig> space = sparse_config_space(a, 16);
  // block_n x stages 2, 3, 4, 6 x (column split, token split, token split with narrow warps) x L2 prefetch x splits
  // 1, 2, 3, 4, 6, 8, 16
  CHECK(space.size() == 3 * 4 * 3 * 2 * 7);
  bool token_split = false;
  for (const SparseDecodeConfig& c : space) {
    INFO(c.key());
    CHECK_NOTHROW(c.validate(a));
    CHECK(c.mma);
    token_split |= c.token_split;
    CHECK(SparseDecodeConfig::from_key(c.key()) == c);
    CHECK(Family<SparseDecodeConfig>::from_json(Family<SparseDecodeConfig>::to_json(c)) == c);
  }
  CHECK(token_split);
  const SparseDecodeConfig prefetching{.block_n = 64, .stages = 2, .num_splits = 3, .mma = true, .token_split = true,
                                       .l2_prefetch = true};
  CHECK(prefetching.key() == "bn64_st2_mma_ts_l2_sp3");
  CHECK(SparseDecodeConfig::from_key(prefetching.key()) == prefetching);
  SparseDecodeConfig ahead = prefetching;  // the gather's prefetches: rows an iteration ahead, the block_table row
  ahead.l2_ahead = ahead.table_prefetch = true;
  CHECK(ahead.key() == "bn64_st2_mma_ts_l2_la_tp_sp3");
  CHECK(SparseDecodeConfig::from_key(ahead.key()) == ahead);
  CHECK_NOTHROW(ahead.validate(a));
  CHECK_THROWS_AS(SparseDecodeConfig::from_key("bn64_st2_mma_ts_tp_la_sp3"), Error);
  CHECK_THROWS_AS(SparseDecodeConfig::from_key("bn64_st2_l2_mma_sp1"), Error);  // flags in their order only
  CHECK_THROWS_AS(SparseDecodeConfig::from_key("bn64_st2_mma_mma_sp1"), Error);
  // 8 candidates a warp (token split only); pipelines up to six stages
  const SparseDecodeConfig narrow{.block_n = 64, .stages = 6, .num_splits = 1, .mma = true, .token_split = true,
                                  .narrow_warps = true};
  CHECK(narrow.key() == "bn64_st6_mma_ts_nw_sp1");
  CHECK(SparseDecodeConfig::from_key(narrow.key()) == narrow);
  CHECK_NOTHROW(narrow.validate(a));
  CHECK(sparse_decode_geometry(a, narrow).threads == 256);  // 8 warps of 8 candidates
  SparseDecodeConfig narrow_mma = narrow;
  narrow_mma.token_split = false;
  CHECK_THROWS_AS(narrow_mma.validate(a), Error);
  SparseDecodeConfig staggered = narrow;  // V rows copied half a tile away from K rows
  staggered.stagger_v = true;
  CHECK(staggered.key() == "bn64_st6_mma_ts_nw_sv_sp1");
  CHECK(SparseDecodeConfig::from_key(staggered.key()) == staggered);
  CHECK_NOTHROW(staggered.validate(a));
  SparseDecodeConfig too_deep = narrow;
  too_deep.stages = 7;
  CHECK_THROWS_AS(too_deep.validate(a), Error);
  AttentionCall mla = call;  // shape b: 128 q heads over one latent head, no token split (more than one 16-row tile)
  mla.head_dim = 576;
  mla.head_dim_v = 512;
  mla.shared_kv = true;
  mla.group = 128;
  for (const SparseDecodeConfig& c : sparse_config_space(sparse_decode_kernel_spec(mla), 4)) CHECK(!c.token_split);
  // The MLA kernel's knob: its key, its one tile, its shape.
  const SparseDecodeConfig mla_config{.block_n = 64, .stages = 2, .num_splits = 3, .mma = true, .mla = true};
  CHECK(mla_config.key() == "bn64_st2_mma_mla_sp3");
  CHECK(SparseDecodeConfig::from_key("bn64_st2_mma_mla_sp3") == mla_config);
  SparseDecodeConfig mla_ahead = mla_config;  // the MLA kernel has its own prefetch (l2_prefetch), not the gather's
  mla_ahead.l2_ahead = true;
  CHECK_THROWS_AS(mla_ahead.validate(sparse_decode_kernel_spec(mla)), Error);
  CHECK_NOTHROW(mla_config.validate(sparse_decode_kernel_spec(mla)));
  const auto mla_error = [](const SparseDecodeConfig& c, const KernelSpec& spec) {
    try {
      c.validate(spec);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kCudaError;  // (nothing thrown: fails every CHECK below)
  };
  CHECK(mla_error(mla_config, a) == ErrorCode::kUnsupported);  // not the shared 576 / 512 shape
  CHECK(mla_error(SparseDecodeConfig{.block_n = 32, .stages = 2, .mma = true, .mla = true}, sparse_decode_kernel_spec(mla)) ==
        ErrorCode::kInvalidArgument);  // its one tile: 64 tokens, two stages
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = false, .mla = true}, sparse_decode_kernel_spec(mla)) ==
        ErrorCode::kInvalidArgument);  // a tensor-core kernel
  CHECK_THROWS_AS(SparseDecodeConfig::from_key("bn64_st2_mma_xx_sp1"), Error);
  CHECK(sparse_decode_geometry(sparse_decode_kernel_spec(mla), mla_config).shared_bytes <= 227 * 1024);
  // Its warp-specialized variant: 64-token tiles in two stages or 32-token ones in four, with one or two P exchanges,
  // or in six with Q in the scorer's registers (no Q tile).
  for (const auto& [block_n, stages, prob_buffers] : {std::tuple{64, 2, 1}, std::tuple{32, 4, 2}, std::tuple{32, 6, 2}}) {
    const SparseDecodeConfig ws{.block_n = block_n, .stages = stages, .num_splits = 1, .mma = true, .mla = true,
                                .warp_specialize = true};
    INFO(ws.key());
    CHECK(SparseDecodeConfig::from_key(ws.key()) == ws);
    CHECK_NOTHROW(ws.validate(sparse_decode_kernel_spec(mla)));
    const SparseDecodeGeometry g = sparse_decode_geometry(sparse_decode_kernel_spec(mla), ws);
    CHECK(g.threads == 384);
    CHECK(g.prob_buffers == prob_buffers);
    CHECK(g.q_bytes == (stages == 6 ? 0 : 64 * 576 * 2));
    CHECK(g.shared_bytes <= 227 * 1024);
  }
  CHECK(SparseDecodeConfig::from_key("bn32_st4_mma_mla_ws_sp2").key() == "bn32_st4_mma_mla_ws_sp2");
  CHECK(mla_error(SparseDecodeConfig{.block_n = 32, .stages = 4, .mma = true, .mla = false, .warp_specialize = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // a variant of the MLA kernel
  CHECK(mla_error(SparseDecodeConfig{.block_n = 32, .stages = 3, .mma = true, .mla = true, .warp_specialize = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // its tiles only
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 6, .mma = true, .mla = true, .warp_specialize = false},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // 6 stages: warp specialized only
  // The two-warpgroup kernel's schedule knob: copies two tiles ahead (the warp-specialized kernel always does).
  const SparseDecodeConfig copies_ahead{.block_n = 64, .stages = 2, .num_splits = 1, .mma = true, .mla = true, .copy_ahead = true};
  CHECK(copies_ahead.key() == "bn64_st2_mma_mla_ca_sp1");
  CHECK(SparseDecodeConfig::from_key(copies_ahead.key()) == copies_ahead);
  CHECK_NOTHROW(copies_ahead.validate(sparse_decode_kernel_spec(mla)));
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = true, .mla = true, .warp_specialize = true,
                                     .copy_ahead = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = true, .copy_ahead = true}, a) ==
        ErrorCode::kInvalidArgument);  // a schedule of the MLA kernel only
  const SparseDecodeConfig scores_ahead{.block_n = 64, .stages = 2, .num_splits = 2, .mma = true, .mla = true,
                                        .copy_ahead = true, .score_ahead = true};
  CHECK(scores_ahead.key() == "bn64_st2_mma_mla_ca_sa_sp2");
  CHECK(SparseDecodeConfig::from_key(scores_ahead.key()) == scores_ahead);
  CHECK_NOTHROW(scores_ahead.validate(sparse_decode_kernel_spec(mla)));
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = true, .mla = true, .score_ahead = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // on top of copy_ahead only
  const SparseDecodeConfig split_columns{.block_n = 64, .stages = 2, .num_splits = 1, .mma = true, .mla = true,
                                         .copy_ahead = true, .split_scores = true};
  CHECK(split_columns.key() == "bn64_st2_mma_mla_ca_ss_sp1");
  CHECK(SparseDecodeConfig::from_key(split_columns.key()) == split_columns);
  CHECK_NOTHROW(split_columns.validate(sparse_decode_kernel_spec(mla)));
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = true, .mla = true, .copy_ahead = true,
                                     .score_ahead = true, .split_scores = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // not with score_ahead
  const SparseDecodeConfig seesaw{.block_n = 64, .stages = 2, .num_splits = 3, .mma = true, .mla = true, .seesaw = true};
  CHECK(seesaw.key() == "bn64_st2_mma_mla_sw_sp3");
  CHECK(SparseDecodeConfig::from_key(seesaw.key()) == seesaw);
  CHECK_NOTHROW(seesaw.validate(sparse_decode_kernel_spec(mla)));
  CHECK(mla_error(SparseDecodeConfig{.block_n = 64, .stages = 2, .mma = true, .mla = true, .warp_specialize = true, .seesaw = true},
                  sparse_decode_kernel_spec(mla)) == ErrorCode::kInvalidArgument);  // a schedule of its own
  AttentionCall int8 = call;  // 8-bit caches: the CUDA-core kernel only
  int8.kv_quant = KvQuant::kInt8;
  const auto int8_space = sparse_config_space(sparse_decode_kernel_spec(int8), 1);
  CHECK(!int8_space.empty());
  for (const SparseDecodeConfig& c : int8_space) CHECK(!c.mma);
  CHECK_THROWS_AS(SparseDecodeConfig({64, 2, 1, false, true}).validate(a), Error);  // token_split needs mma

  const auto preset_a = sparse_preset("a", 32), preset_b = sparse_preset("b", 128);
  REQUIRE(preset_a.size() == 4);
  REQUIRE(preset_b.size() == 2);
  CHECK(preset_a[3].topk == 2048);
  CHECK(preset_a[3].kv_len == 131072);
  CHECK(preset_a[0].num_q_heads / preset_a[0].num_kv_heads == preset_a[0].group);
  CHECK(preset_b[1].local_window == 128);
  CHECK(preset_b[1].sink_logits);
  CHECK(preset_b[0].selected_bytes() == doctest::Approx(128.0 * 2048 * 576 * 2 + 128.0 * 128 * (576 + 512) * 2));
  CHECK_THROWS_AS(sparse_preset("c", 1), Error);

  SparseFixture f;  // batch 2 x 2 kv heads, topk 8: bucket bh4_n8; with a window of 100: n128
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
  const auto describe = [&] {
    const DLTensor v_t = f.view(f.v.data(), f.cache_shape, bf16);
    return describe_sparse_decode(f.view(f.q.data(), f.q_shape, bf16), f.view(f.k.data(), f.cache_shape, bf16), &v_t,
                                  f.view(f.block_table.data(), f.bt_shape, i32), f.view(f.seq_lens.data(), f.sl_shape, i32),
                                  f.view(f.indices.data(), f.idx_shape, i32), f.view(f.out.data(), f.out_shape, bf16), f.options);
  };
  CHECK(sparse_bucket_key(describe()) == "bh4_n8");
  f.options.local_window = 100;
  CHECK(sparse_bucket_key(describe()) == "bh4_n128");
  const SparseShape tuned = shape_of(describe());
  CHECK(tuned.batch == 2);
  CHECK(tuned.num_kv_heads == 2);
  CHECK(tuned.kv_len == 32);  // every sequence at the capacity of its block-table row
}

TEST_CASE("sparse splits: one wave of resident blocks, a pipeline's tiles per split (the H200's tuned winners)") {
  AttentionCall call;  // shape a: 64 q / 8 kv heads, d128, topk 2048, page 64
  call.head_dim = 128;
  call.group = 8;
  call.page_size = 64;
  call.topk = 2048;
  SparseDecodeProblem p;
  p.spec = sparse_decode_kernel_spec(call);
  p.call = call;
  p.num_q_heads = 64;
  p.num_kv_heads = 8;
  p.params.topk = call.topk;
  const SparseDecodeConfig c = sparse_decode_heuristic(p.spec, test::kH200);
  CHECK(c.key() == "bn64_st2_mma_ts_sp1");  // 3 blocks per SM
  const auto splits = [&](int batch) {
    p.batch = batch;
    return sparse_decode_splits(p, c, test::kH200);
  };
  CHECK(splits(1) == 16);   // session 6 run B2: 10.6 us (32 splits of one tile: 13.7)
  CHECK(splits(8) == 6);    // 384 blocks: one wave
  CHECK(splits(32) == 1);   // 79.4 us (3 splits, two waves: 92.4)
  CHECK(splits(128) == 1);  // 1024 blocks
  p.params.topk = call.topk = 512;
  p.spec = sparse_decode_kernel_spec(call);
  p.call = call;
  CHECK(splits(1) == 8);    // run B3: 8.5 us (4 splits of two tiles: 9.2)
  // The whole default: a third stage where one block per item is long or fits one wave, else 32-row tiles in three
  // stages (session 7 run B2).
  const auto default_key = [&](int batch, int topk) {
    p.batch = batch;
    p.params.topk = call.topk = topk;
    p.spec = sparse_decode_kernel_spec(call);
    p.call = call;
    return sparse_decode_default_config(p, test::kH200).key();
  };
  CHECK(default_key(128, 2048) == "bn64_st3_mma_ts_sp1");  // 279.9 us (two stages 284.4; kv 131072 284.6 vs 322.9)
  CHECK(default_key(32, 2048) == "bn64_st3_mma_ts_sp1");
  CHECK(default_key(32, 512) == "bn64_st3_mma_ts_sp1");    // 256 blocks, one wave of two a SM: 26.5 (27.7)
  CHECK(default_key(128, 512) == "bn32_st3_mma_ts_sp1");   // 92.0 (bn64 two stages 93.7, three 97.4)
  CHECK(default_key(1, 2048) == "bn64_st2_mma_ts_sp16");   // split: as measured
  CHECK(default_key(1, 512) == "bn64_st2_mma_ts_sp8");
}
