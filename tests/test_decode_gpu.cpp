// Paged decode on the GPU against the reference over the whole correctness matrix, plus the runtime's behaviour:
// compile-once under concurrency, device-side argument errors, graph capture and caller workspaces.
// Exits with ctest's skip code when there is no GPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <numeric>
#include <random>
#include <thread>

#include <unistd.h>

#include "check.hpp"
#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "half.hpp"
#include "decode_plan.hpp"
#include "run_on_threads.hpp"
#include "tensor_checks.hpp"
#include "kernel_cache.hpp"
#include "reference.hpp"
#include "tuner.hpp"

#include "swajit/swajit.hpp"

using namespace swajit;

namespace {
constexpr int kSkipReturnCode = 77;  // SKIP_RETURN_CODE in tests/CMakeLists.txt
constexpr int kDevice = 0;

// A DLTensor over a whole device buffer, compact, on the test's GPU.
DLTensor device_view(const DeviceBuffer& b, DLDataType t, std::vector<int64_t>& shape) {
  return dl_tensor(b.data(), t, {kDLCUDA, kDevice}, shape);
}

// A fresh tuning database for one test, and a stream on the device; both go away with it.
struct TuningFixture {
  std::filesystem::path dir;
  cuda::ScopedDeviceContext scope{kDevice};
  const DeviceInfo& device = cuda_device(kDevice);
  CUstream stream = nullptr;
  explicit TuningFixture(const char* name)
      : dir(std::filesystem::temp_directory_path() / (std::string(name) + "_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
    set_tuning_db_path((dir / "tuning.db").string());
    cuda::check(cuda::driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  }
  ~TuningFixture() {
    cuda::driver().cuStreamDestroy(stream);
    set_tuning_db_path((dir / "unused.db").string());
    std::filesystem::remove_all(dir);
  }
};
}  // namespace

// Runs every case of a family's check matrix on fresh random data, once per seed base (+ the case's index), and
// requires the harness's verdict (the error within the case's tolerance, device-side faults as expected).
template <class Case, class Run>
static void check_matrix(const std::vector<Case>& cases, std::initializer_list<uint64_t> seed_bases, Run run) {
  for (size_t i = 0; i < cases.size(); ++i)
    for (uint64_t base : seed_bases) {
      const uint64_t seed = base + i;
      INFO(cases[i].name << " (" << cases[i].spec().key() << ") seed " << seed);
      const CaseResult r = run(cases[i], seed);
      INFO(r.detail);
      CHECK(r.passed);
    }
}

TEST_CASE("correctness matrix against the reference") {
  const auto cases = decode_check_matrix();
  precompile_cases(cases, {kDLCUDA, kDevice}, int(std::max(1u, std::thread::hardware_concurrency())));
  check_matrix(cases, {1000, 2000}, [](const DecodeCase& c, uint64_t seed) { return run_decode_case(c, {kDLCUDA, kDevice}, seed); });
}

TEST_CASE("prefill correctness matrix against the reference") {
  const auto cases = prefill_check_matrix();
  check_matrix(cases, {3000, 4000}, [](const PrefillCase& c, uint64_t seed) { return run_prefill_case(c, kDevice, seed); });
}

TEST_CASE("sparse decode correctness matrix against the reference (invalid indices reported, rows zeroed)") {
  const auto cases = sparse_check_matrix({kDLCUDA, kDevice});
  precompile_sparse_cases(cases, {kDLCUDA, kDevice}, int(std::max(1u, std::thread::hardware_concurrency())));
  check_matrix(cases, {5000}, [](const SparseCase& c, uint64_t seed) { return run_sparse_case(c, {kDLCUDA, kDevice}, seed); });
}

TEST_CASE("prefill: invalid device-side metadata is reported, never read out of bounds") {
  // One sequence whose KV length (3) is below its query length (4): reported, and its rows written as zeros.
  const int hq = 2, d = 64, total_q = 4, total_kv = 3;
  cuda::ScopedDeviceContext scope(kDevice);
  std::vector<int64_t> q_shape = {total_q, hq, d}, k_shape = {total_kv, hq, d}, cu_shape = {2};
  DeviceBuffer q(size_t(total_q * hq * d * 2)), out(size_t(total_q * hq * d * 2)), k(size_t(total_kv * hq * d * 2));
  DeviceBuffer cu_q(std::vector<int>{0, total_q}), cu_k(std::vector<int>{0, total_kv});
  q.fill(0x3c);
  k.fill(0x3c);
  out.fill(0xff);
  const auto view = [](const DeviceBuffer& b, std::vector<int64_t>& shape, DLDataType t) { return device_view(b, t, shape); };
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
  PrefillOptions options;
  options.check_device_args = true;
  try {
    prefill(view(q, q_shape, bf16), view(k, k_shape, bf16), view(k, k_shape, bf16), view(cu_q, cu_shape, i32),
            view(cu_k, cu_shape, i32), view(out, q_shape, bf16), nullptr, options);
    FAIL("accepted a KV length below the query length");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDeviceArgument);
    CHECK(std::string(e.what()).find("KV length is below its query length") != std::string::npos);
  }
  for (uint16_t bits : out.download<uint16_t>()) CHECK(bits == 0);
}

TEST_CASE("prefill: 8-bit K/V workload (bench and tuner path) verifies against the dequantized reference") {
  cuda::ScopedDeviceContext scope(kDevice);
  const DeviceInfo& device = cuda_device(kDevice);
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    PrefillShape shape;
    shape.seq_len = 1024;
    shape.num_q_heads = 8;
    shape.num_kv_heads = 2;
    shape.local_window = 256;
    shape.global_window = 4;
    shape.kv_quant = quant;
    PrefillWorkload workload(shape, kDevice, nullptr);
    const PrefillProblem problem = workload.problem();
    INFO(problem.spec.key());
    CHECK(problem.spec.kv_quant == quant);
    const PrefillConfig heuristic = heuristic_prefill_config(problem.spec, device);
    CHECK(prefill_geometry(problem.spec, heuristic).shared_bytes <= device.max_shared_per_block_optin);
    workload.run(heuristic, TuningPolicy::kHeuristic, /*poison=*/true);
    CHECK(workload.sampled_relative_error() <= tolerance_for(shape.dtype));
  }
}

TEST_CASE("prefill: varlen chunked workload over a paged cache (bench rows of issue 15) verifies, TMA or not") {
  cuda::ScopedDeviceContext scope(kDevice);
  const DeviceInfo& device = cuda_device(kDevice);
  for (int page_size : {0, 16, 64}) {
    PrefillShape shape;
    shape.q_lens = {300, 77, 0, 520};
    shape.prefix_len = 200;
    shape.page_size = page_size;
    shape.num_q_heads = 8;
    shape.num_kv_heads = 2;
    shape.local_window = 256;
    shape.global_window = 4;
    PrefillWorkload workload(shape, kDevice, nullptr);
    const PrefillProblem problem = workload.problem();
    INFO(problem.spec.key());
    CHECK(problem.spec.is_contiguous_kv() == (page_size == 0));
    CHECK(shape.useful_flops() > 0);
    std::vector<std::optional<PrefillConfig>> configs = {std::nullopt};
    if (device.arch() == "sm_90a") {
      PrefillConfig tma{192, 64, 3, 1, true, 1, 1};
      tma.tma = true;
      configs.push_back(tma);
    }
    for (const auto& config : configs) {
      INFO((config ? config->key() : std::string("heuristic")));
      workload.run(config, TuningPolicy::kHeuristic, /*poison=*/true);
      CHECK(workload.sampled_relative_error() <= tolerance_for(shape.dtype));
    }
  }
}

TEST_CASE("threads asking for the same new kernel compile it exactly once") {
  KernelSpec spec;
  spec.head_dim = 64; spec.page_size = 5; spec.q_seqlen = 3; spec.group = 3; spec.local_window = true;
  const DecodeConfig config{32, 2, 2, 1};
  const uint64_t before = kernel_cache_stats().builds;
  std::vector<const LoadedDecodeKernel*> seen(8, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      cuda::ScopedDeviceContext scope(kDevice);
      seen[t] = &decode_kernel(spec, config, cuda_device(kDevice), scope.context());
    });
  for (auto& t : threads) t.join();
  CHECK(kernel_cache_stats().builds == before + 1);
  for (auto* k : seen) CHECK(k == seen[0]);
  CHECK(seen[0]->local_bytes == 0);  // no spills
}

TEST_CASE("a config over the device's shared-memory limit is rejected with the numbers") {
  KernelSpec spec;  // head_dim 128: 4 stages of 128-token K and V tiles need 256 KiB
  cuda::ScopedDeviceContext scope(kDevice);
  try {
    decode_kernel(spec, DecodeConfig{128, 1, 4, 1}, cuda_device(kDevice), scope.context());
    FAIL("accepted a config that cannot fit");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("bytes of shared memory per block") != std::string::npos);
  }
}

namespace {
// A tiny valid problem on the device, for the runtime-behaviour tests.
struct SmallProblem {
  std::vector<int64_t> q_shape = {2, 1, 4, 64}, k_shape = {8, 16, 1, 64}, bt_shape = {2, 4}, sl_shape = {2};
  DeviceBuffer q{size_t(2 * 4 * 64 * 2)}, out{size_t(2 * 4 * 64 * 2)}, k{size_t(8 * 16 * 64 * 2)}, v{size_t(8 * 16 * 64 * 2)};
  DeviceBuffer bt{std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}}, sl;
  explicit SmallProblem(std::vector<int> seq_lens) : sl(seq_lens) {
    q.fill(0x3c);
    k.fill(0x3c);
    v.fill(0x3c);
  }
  static DLTensor view(const DeviceBuffer& b, DLDataType t, std::vector<int64_t>& shape) { return device_view(b, t, shape); }
  void run(CUstream stream, const DecodeOptions& o) {
    const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
    paged_decode(view(q, bf16, q_shape), view(k, bf16, k_shape), view(v, bf16, k_shape), view(bt, i32, bt_shape),
                 view(sl, i32, sl_shape), view(out, bf16, q_shape), stream, o);
  }
};
}  // namespace

TEST_CASE("invalid device-side seq_lens and block_table values are reported, not read out of bounds") {
  cuda::ScopedDeviceContext scope(kDevice);
  DecodeOptions o;
  o.check_device_args = true;
  const auto expect_device_error = [&](std::vector<int> lens, const char* needle) {
    SmallProblem p(lens);
    try {
      p.run(nullptr, o);
      FAIL("no error for seq_lens " << lens[0] << ", " << lens[1]);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kDeviceArgument);
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  expect_device_error({20, 65}, "exceeds max_pages_per_seq * page_size");
  expect_device_error({-1, 3}, "negative or below q_seqlen");
  SmallProblem good({20, 0});
  CHECK_NOTHROW(good.run(nullptr, o));
  SmallProblem bad_page({20, 3});  // sequence 1 (length 3) reads its first page: table entry 4
  bad_page.bt.upload(std::vector<int>{0, 1, 2, 3, 99, 5, 6, 7});
  try {
    bad_page.run(nullptr, o);
    FAIL("no error for block_table entry 99");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("block_table entry") != std::string::npos);
  }
}

namespace {
// bf16 0x3c3c: the value SmallProblem fills q, K and V with, so a correct row of attention is all 0x3c3c.
constexpr uint16_t kFillBits = 0x3c3c;
bool near_fill(uint16_t bits) { return std::abs(half::bf16_to_float(bits) / half::bf16_to_float(kFillBits) - 1.f) < 1e-2f; }
}  // namespace

TEST_CASE("decode: a sequence with an out-of-range block_table entry is all zeros; the others are computed") {
  cuda::ScopedDeviceContext scope(kDevice);
  constexpr int kRowElems = 4 * 64;  // one sequence's output: 4 heads x head_dim 64 (q_seqlen 1)
  // num_splits 1 (one block per sequence) and 4 (split-KV: splits that never see the bad page, and the merge grid or
  // the fused merge); the TMA page producer (its tile over the bad page taken by cp.async).
  for (const DecodeConfig& config : {DecodeConfig{16, 1, 2, 1}, DecodeConfig{16, 1, 2, 4}, DecodeConfig{16, 1, 2, 4, 0, true},
                                     DecodeConfig{16, 1, 2, 4, DecodeConfig::kProducerTma}}) {
    CAPTURE(config.key());
    DecodeOptions o;
    o.check_device_args = true;
    o.config = config;
    SmallProblem p({20, 40});  // sequence 1: pages 0..2 (table entries 4, 5, 6) of which only page 2 is bad
    p.bt.upload(std::vector<int>{0, 1, 2, 3, 4, 5, 99, 7});
    p.out.fill(0xff);
    try {
      p.run(nullptr, o);
      FAIL("no error for block_table entry 99");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kDeviceArgument);
      CHECK(std::string(e.what()).find("block_table entry") != std::string::npos);
    }
    const std::vector<uint16_t> out = p.out.download<uint16_t>();
    int sequence0_correct = 0, sequence1_zero = 0;
    for (int e = 0; e < kRowElems; ++e) sequence0_correct += near_fill(out[e]);
    for (int e = kRowElems; e < 2 * kRowElems; ++e) sequence1_zero += out[e] == 0;
    CHECK(sequence0_correct == kRowElems);
    CHECK(sequence1_zero == kRowElems);  // before: tokens 0..31 were still attended, so the row was not zero
  }
}

TEST_CASE("paged prefill: a sequence with an out-of-range block_table entry is all zeros; the others are computed") {
  cuda::ScopedDeviceContext scope(kDevice);
  // head_dim 64 and 128: both defaults are TMA tiles, whose producer alone scans the pages and loads a bad
  // sequence's tiles as zeros (templates/prefill.cuh kProducerScans)
  for (const int kDim : {64, 128}) {
    CAPTURE(kDim);
    constexpr int kHeads = 2, kPage = 16, kPages = 8;
    constexpr int kQ0 = 4, kQ1 = 16;  // sequence 1: rows at positions 24..39; those below 32 never see page 2
    std::vector<int64_t> q_shape = {kQ0 + kQ1, kHeads, kDim}, cache_shape = {kPages, kPage, kHeads, kDim},
                         bt_shape = {2, 4}, sl_shape = {2}, cu_shape = {3};
    DeviceBuffer q(size_t((kQ0 + kQ1) * kHeads * kDim * 2)), out(q.bytes()), kv(size_t(kPages * kPage * kHeads * kDim * 2));
    DeviceBuffer bt(std::vector<int>{0, 1, 2, 3, 4, 5, 99, 7}), sl(std::vector<int>{20, 40}), cu(std::vector<int>{0, kQ0, kQ0 + kQ1});
    q.fill(0x3c);
    kv.fill(0x3c);
    out.fill(0xff);
    const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
    PrefillOptions options;
    options.check_device_args = true;
    try {
      paged_prefill(device_view(q, bf16, q_shape), device_view(kv, bf16, cache_shape), device_view(kv, bf16, cache_shape),
                    device_view(bt, i32, bt_shape), device_view(sl, i32, sl_shape), device_view(cu, i32, cu_shape),
                    device_view(out, bf16, q_shape), nullptr, options);
      FAIL("no error for block_table entry 99");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kDeviceArgument);
      CHECK(std::string(e.what()).find("block_table entry") != std::string::npos);
    }
    const std::vector<uint16_t> values = out.download<uint16_t>();
    const size_t sequence1 = size_t(kQ0) * kHeads * kDim;
    int sequence0_correct = 0, sequence1_zero = 0;
    for (size_t e = 0; e < sequence1; ++e) sequence0_correct += near_fill(values[e]);
    for (size_t e = sequence1; e < values.size(); ++e) sequence1_zero += values[e] == 0;
    CHECK(sequence0_correct == int(sequence1));
    CHECK(sequence1_zero == int(values.size() - sequence1));  // before: rows at 24..31 were computed
  }
}

TEST_CASE("graph capture: the library's workspace is captured with the call, caller workspaces work") {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(kDevice);
  CUstream stream;
  cuda::check(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  SmallProblem p({64, 17});
  DecodeOptions o;
  o.config = DecodeConfig{16, 1, 2, 5};  // 4 tiles of 16 tokens over 5 splits: needs a workspace
  const auto replay_and_check = [&](CUgraph graph) {
    CUgraphExec exec;
    cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiate");
    for (int replay = 0; replay < 3; ++replay) {
      cuda::check(d.cuMemsetD8Async(p.out.ptr(), 0xff, p.out.bytes(), stream), "poison");
      cuda::check(d.cuGraphLaunch(exec, stream), "launch");
      cuda::check(d.cuStreamSynchronize(stream), "sync");
      // Every value is 0x3c3c in bf16 (about 0.0115); attention of equal values returns that value.
      const auto out = p.out.download<uint16_t>();
      for (uint16_t x : out) CHECK(x == 0x3c3c);
    }
    d.cuGraphExecDestroy(exec);
    d.cuGraphDestroy(graph);
  };
  // With the caller's own workspace: warm-up call (compiles the kernel), then capture and replay.
  const size_t bytes = paged_decode_workspace_bytes(SmallProblem::view(p.q, {kDLBfloat, 16, 1}, p.q_shape),
                                                    SmallProblem::view(p.k, {kDLBfloat, 16, 1}, p.k_shape),
                                                    SmallProblem::view(p.v, {kDLBfloat, 16, 1}, p.k_shape),
                                                    SmallProblem::view(p.bt, {kDLInt, 32, 1}, p.bt_shape),
                                                    SmallProblem::view(p.sl, {kDLInt, 32, 1}, p.sl_shape),
                                                    SmallProblem::view(p.out, {kDLBfloat, 16, 1}, p.q_shape), o);
  CHECK(bytes > 0);
  DeviceBuffer workspace(bytes);
  DecodeOptions own = o;
  own.workspace = workspace.data();
  own.workspace_bytes = bytes;
  p.run(stream, own);
  CUgraph graph = nullptr;
  cuda::check(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "begin capture");
  p.run(stream, own);
  cuda::check(d.cuStreamEndCapture(stream, &graph), "end capture");
  replay_and_check(graph);
  // The same split-KV call with the library's workspace, never made before outside a capture: the graph records
  // the call's own stream-ordered allocation and free (global capture mode, as PyTorch captures).
  cuda::check(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin capture");
  p.run(stream, o);
  cuda::check(d.cuStreamEndCapture(stream, &graph), "end capture");
  replay_and_check(graph);
  o = own;
  o.workspace_bytes = bytes - 1;
  CHECK_THROWS_AS(p.run(stream, o), Error);
  d.cuStreamDestroy(stream);
}

namespace {
// Holds back the work queued on streams behind it and then releases it all at once, so that calls on different
// streams really run at the same time: a host function on a private stream sleeps while the calls are enqueued,
// and every held stream waits for an event recorded after it.
class StreamGate {
 public:
  explicit StreamGate(std::chrono::milliseconds hold) : hold_(hold) {
    const cuda::Driver& d = cuda::driver();
    cuda::check(d.cuStreamCreate(&gate_, CU_STREAM_NON_BLOCKING), "cuStreamCreate(gate)");
    cuda::check(d.cuEventCreate(&opened_, CU_EVENT_DISABLE_TIMING), "cuEventCreate(gate)");
    cuda::check(d.cuLaunchHostFunc(gate_, &StreamGate::sleep, this), "cuLaunchHostFunc(gate)");
    cuda::check(d.cuEventRecord(opened_, gate_), "cuEventRecord(gate)");
  }
  ~StreamGate() {
    cuda::driver().cuStreamSynchronize(gate_);
    cuda::driver().cuEventDestroy(opened_);
    cuda::driver().cuStreamDestroy(gate_);
  }
  void hold(CUstream stream) const { cuda::check(cuda::driver().cuStreamWaitEvent(stream, opened_, 0), "cuStreamWaitEvent"); }

 private:
  static void CUDA_CB sleep(void* self) { std::this_thread::sleep_for(static_cast<StreamGate*>(self)->hold_); }
  std::chrono::milliseconds hold_;
  CUstream gate_ = nullptr;
  CUevent opened_ = nullptr;
};

struct OwnedStream {
  CUstream stream = nullptr;
  OwnedStream() { cuda::check(cuda::driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate"); }
  ~OwnedStream() { cuda::driver().cuStreamDestroy(stream); }
};

// The serving-engine case of the concurrency issue: batch 1, a long sequence, few kv heads, so every call splits.
DecodeShape split_kv_shape(int num_kv_heads, int q_seqlen) {
  DecodeShape s;
  s.batch = 1;
  s.kv_len = 32768;
  s.local_window = 8192;
  s.num_kv_heads = num_kv_heads;
  s.num_q_heads = 4 * num_kv_heads;
  s.q_seqlen = q_seqlen;
  return s;
}

// Entries of the heuristic's work list per kv head (0: the direct grid, no split).
int heuristic_work_items(const DecodeWorkload& w) {
  cuda::ScopedDeviceContext scope(kDevice);
  DecodeOptions heuristic;
  heuristic.tuning = TuningPolicy::kHeuristic;
  return work_items(plan_decode(w.problem(0), heuristic, cuda_device(kDevice), scope.context(), nullptr).work,
                    w.problem(0).batch);
}
}  // namespace

// With the fused merge too: its arrival counters (in the graph's own buffer) are back at zero after every replay.
TEST_CASE("work schedule: one captured graph replays correctly as the device-side lengths change") {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(kDevice);
  for (const bool fused : {false, true}) {
    CAPTURE(fused);
    OwnedStream owned;
    const CUstream stream = owned.stream;
    SmallProblem p({64, 1});
    DecodeOptions o;
    o.config = DecodeConfig{16, 1, 2, 2, 0, fused};  // the work schedule: chunks of ceil(tiles / 4) tiles, at least 2
    p.run(stream, o);                                // compiles outside the capture
    CUgraph graph = nullptr;
    CUgraphExec exec;
    cuda::check(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin capture");
    p.run(stream, o);
    cuda::check(d.cuStreamEndCapture(stream, &graph), "end capture");
    cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiate");
    // Ragged, swapped, empty, one chunk (32 tokens = 2 tiles) and one token over, both at the table's capacity.
    for (const std::vector<int>& lens : std::vector<std::vector<int>>{{64, 1}, {1, 64}, {0, 33}, {32, 0}, {33, 32}, {64, 64}, {0, 0}, {64, 64}}) {
      CAPTURE(lens[0]);
      CAPTURE(lens[1]);
      p.sl.upload(lens);
      cuda::check(d.cuMemsetD8Async(p.out.ptr(), 0xff, p.out.bytes(), stream), "poison");
      cuda::check(d.cuGraphLaunch(exec, stream), "launch");
      cuda::check(d.cuStreamSynchronize(stream), "sync");
      const auto out = p.out.download<uint16_t>();
      const size_t per_sequence = out.size() / 2;
      // Every value is 0x3c3c; attention over equal values returns it, and a sequence with no tokens is zeros.
      for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == (lens[i / per_sequence] > 0 ? 0x3c3c : 0));
    }
    d.cuGraphExecDestroy(exec);
    d.cuGraphDestroy(graph);
  }
}

// The capacity rule's schedule under one captured graph: 40 sequences (more than one 32-sequence round of the kernel's
// scan) over 16 kv heads, lengths moving step to step between the branches of templates/decode_schedule.h: equal
// (the one-round cut: no cut once the pairs fill the slots), ragged (cut by cost, the long windows first), empty and
// length-1 sequences among them, and all empty. Each replay is compared with the reference on random data.
TEST_CASE("work schedule: the capacity rule's graph replays correctly as lengths move between uniform and ragged") {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(kDevice);
  OwnedStream owned;
  const CUstream stream = owned.stream;
  HostPagedDecode h;
  h.batch = 40, h.num_kv_heads = 16, h.num_q_heads = 32, h.head_dim = 64, h.page_size = 16;
  h.max_pages_per_seq = 125, h.local_window = 1024, h.scale = 1.0 / 8;
  h.num_pages = h.batch * h.max_pages_per_seq;
  std::mt19937_64 rng(19);
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  const auto random_bf16 = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = half::to_float(half::from_float(value(rng), DType::kBF16), DType::kBF16);
    return v;
  };
  const auto to_bf16 = [](const std::vector<float>& v) {
    std::vector<uint16_t> bits(v.size());
    for (size_t i = 0; i < v.size(); ++i) bits[i] = half::from_float(v[i], DType::kBF16);
    return bits;
  };
  h.q = random_bf16(size_t(h.batch) * h.num_q_heads * h.head_dim);
  h.k = random_bf16(size_t(h.num_pages) * h.page_size * h.num_kv_heads * h.head_dim);
  h.v = random_bf16(h.k.size());
  h.block_table.resize(h.num_pages);
  std::iota(h.block_table.begin(), h.block_table.end(), 0);
  std::shuffle(h.block_table.begin(), h.block_table.end(), rng);  // scattered pages
  h.seq_lens.assign(h.batch, h.max_pages_per_seq * h.page_size);

  std::vector<int64_t> q_shape = {h.batch, 1, h.num_q_heads, h.head_dim};
  std::vector<int64_t> k_shape = {h.num_pages, h.page_size, h.num_kv_heads, h.head_dim};
  std::vector<int64_t> bt_shape = {h.batch, h.max_pages_per_seq}, sl_shape = {h.batch};
  DeviceBuffer q(to_bf16(h.q)), k(to_bf16(h.k)), v(to_bf16(h.v)), bt(h.block_table), sl(h.seq_lens);
  DeviceBuffer out{h.q.size() * 2};
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
  DecodeOptions o;
  o.tuning = TuningPolicy::kHeuristic;  // the capacity rule
  o.local_window = h.local_window;
  // Told the (equal) lengths on the host at capture, the call takes the direct kernel; the replays' lengths differ.
  const std::vector<int> capture_lengths = h.seq_lens;
  SUBCASE("device lengths only: the scheduled kernel") {}
  SUBCASE("equal host lengths at capture: the direct kernel") { o.host_seq_lens = capture_lengths.data(); }
  const auto run = [&] {
    paged_decode(device_view(q, bf16, q_shape), device_view(k, bf16, k_shape), device_view(v, bf16, k_shape),
                 device_view(bt, i32, bt_shape), device_view(sl, i32, sl_shape), device_view(out, bf16, q_shape), stream, o);
  };
  run();  // compiles outside the capture
  CUgraph graph = nullptr;
  CUgraphExec exec;
  cuda::check(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin capture");
  run();
  cuda::check(d.cuStreamEndCapture(stream, &graph), "end capture");
  cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiate");

  const int full = h.max_pages_per_seq * h.page_size;
  std::vector<std::vector<int>> steps = {std::vector<int>(h.batch, full), std::vector<int>(h.batch, 0)};
  std::vector<int> bimodal(h.batch, 37), mixed(h.batch), short_ones(h.batch, 1);
  for (int b = 0; b < h.batch; b += 9) bimodal[b] = full;   // a few full windows among short sequences
  std::uniform_int_distribution<int> any_length(0, full);
  for (int& len : mixed) len = any_length(rng);
  mixed[0] = 0, mixed[1] = 1, mixed[39] = full;
  short_ones[33] = full - 5;                                 // one long sequence in the second round of the scan
  steps.insert(steps.begin() + 1, {bimodal, mixed, short_ones});
  for (const std::vector<int>& lens : steps) {
    CAPTURE(lens[0]);
    CAPTURE(lens[1]);
    CAPTURE(lens[33]);
    h.seq_lens = lens;
    sl.upload(lens);
    cuda::check(d.cuMemsetD8Async(out.ptr(), 0xff, out.bytes(), stream), "poison");
    cuda::check(d.cuGraphLaunch(exec, stream), "launch");
    cuda::check(d.cuStreamSynchronize(stream), "sync");
    const std::vector<uint16_t> got = out.download<uint16_t>();
    const std::vector<double> want = reference_paged_decode(h);
    double err2 = 0, ref2 = 0;
    int not_finite = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double x = half::to_float(got[i], DType::kBF16);
      if (!std::isfinite(x)) ++not_finite;
      else err2 += (x - want[i]) * (x - want[i]), ref2 += want[i] * want[i];
    }
    CHECK(not_finite == 0);  // every output written (the poison is NaN)
    CHECK(std::sqrt(err2 / std::max(ref2, 1e-30)) < tolerance_for(DType::kBF16));
  }
  d.cuGraphExecDestroy(exec);
  d.cuGraphDestroy(graph);
}

TEST_CASE("concurrent streams: split-KV decode calls held back and released together are each correct") {
  cuda::ScopedDeviceContext scope(kDevice);
  OwnedStream sa, sb;
  DecodeWorkload a(split_kv_shape(1, 1), {kDLCUDA, kDevice}, sa.stream);
  DecodeWorkload b(split_kv_shape(2, 4), {kDLCUDA, kDevice}, sb.stream);
  REQUIRE(heuristic_work_items(a) > 1);  // the schedule and the merge
  REQUIRE(heuristic_work_items(b) > 2);
  a.run(0, std::nullopt, TuningPolicy::kHeuristic);  // compile both kernels before the rounds
  b.run(0, std::nullopt, TuningPolicy::kHeuristic);
  constexpr int kRounds = 25, kCallsPerStream = 4;
  int wrong = 0;
  for (int round = 0; round < kRounds; ++round) {
    {
      StreamGate gate(std::chrono::milliseconds(20));
      gate.hold(sa.stream);
      gate.hold(sb.stream);
      a.poison_output();
      b.poison_output();
      for (int call = 0; call < kCallsPerStream; ++call) {  // interleaved, all queued behind the gate
        a.run(0, std::nullopt, TuningPolicy::kHeuristic);
        b.run(0, std::nullopt, TuningPolicy::kHeuristic);
      }
    }
    const double err_a = a.relative_error(0), err_b = b.relative_error(0);
    if (!(err_a <= tolerance_for(DType::kBF16)) || !(err_b <= tolerance_for(DType::kBF16))) {
      ++wrong;
      MESSAGE("round " << round << ": relative errors " << err_a << " and " << err_b);
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("concurrent streams: a graph replayed on one stream beside eager calls on the stream it was captured on") {
  // What a per-stream scratch would get wrong: the graph was captured on stream X (its workspace must not be X's),
  // is replayed on stream Y, while X runs eager split-KV calls of another problem.
  // The heuristic's config (merge grid) and the fused merge: a per-stream counter buffer would be shared by both.
  for (const std::optional<DecodeConfig> config : {std::optional<DecodeConfig>{}, std::optional<DecodeConfig>{DecodeConfig{64, 4, 3, 0, 0, true}}}) {
    CAPTURE(config.has_value());
    const cuda::Driver& d = cuda::driver();
    cuda::ScopedDeviceContext scope(kDevice);
    OwnedStream x, y;
    DecodeWorkload captured(split_kv_shape(2, 4), {kDLCUDA, kDevice}, x.stream);
    DecodeWorkload eager(split_kv_shape(1, 1), {kDLCUDA, kDevice}, x.stream);
    captured.run(0, config, TuningPolicy::kHeuristic);  // compiles the kernels outside the capture
    eager.run(0, config, TuningPolicy::kHeuristic);
    CUgraph graph;
    CUgraphExec exec;
    cuda::check(d.cuStreamBeginCapture(x.stream, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin capture");
    captured.run(0, config, TuningPolicy::kHeuristic);
    cuda::check(d.cuStreamEndCapture(x.stream, &graph), "end capture");
    cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiate");
    int wrong = 0;
    for (int round = 0; round < 20; ++round) {
      {
        StreamGate gate(std::chrono::milliseconds(20));
        gate.hold(x.stream);
        gate.hold(y.stream);
        captured.poison_output();  // on x, before the gate opens; the replays on y wait for it below
        eager.poison_output();
        CUevent poisoned;
        cuda::check(d.cuEventCreate(&poisoned, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
        cuda::check(d.cuEventRecord(poisoned, x.stream), "cuEventRecord");
        cuda::check(d.cuStreamWaitEvent(y.stream, poisoned, 0), "cuStreamWaitEvent");
        d.cuEventDestroy(poisoned);
        for (int call = 0; call < 3; ++call) {
          cuda::check(d.cuGraphLaunch(exec, y.stream), "cuGraphLaunch");
          eager.run(0, config, TuningPolicy::kHeuristic);
        }
      }
      cuda::check(d.cuStreamSynchronize(y.stream), "sync");
      const double err_captured = captured.relative_error(0), err_eager = eager.relative_error(0);
      if (!(err_captured <= tolerance_for(DType::kBF16)) || !(err_eager <= tolerance_for(DType::kBF16))) {
        ++wrong;
        MESSAGE("round " << round << ": relative errors " << err_captured << " (graph) and " << err_eager << " (eager)");
      }
    }
    CHECK(wrong == 0);
    d.cuGraphExecDestroy(exec);
    d.cuGraphDestroy(graph);
  }
}

TEST_CASE("concurrent threads: first calls that compile at the same time, each on its own stream, are correct") {
  // Specs no other test uses (page sizes 7 and 11), so each thread's first call generates and compiles its kernel
  // while the other does the same.
  std::vector<DecodeShape> shapes(4, split_kv_shape(1, 2));
  shapes[0].page_size = 7;
  shapes[1].page_size = 11;
  shapes[2].page_size = 7;  // the same new kernel as thread 0: compiled once, used by both
  shapes[3].page_size = 11;
  shapes[3].q_seqlen = 3;
  std::vector<double> errors(shapes.size(), -1);
  const std::vector<std::string> failures = run_on_threads(shapes.size(), [&](size_t t) {
    cuda::ScopedDeviceContext scope(kDevice);
    OwnedStream own;
    DecodeWorkload w(shapes[t], {kDLCUDA, kDevice}, own.stream);
    for (int call = 0; call < 8; ++call) w.run(0, std::nullopt, TuningPolicy::kHeuristic);
    errors[t] = w.relative_error(0);
  });
  for (size_t t = 0; t < shapes.size(); ++t) {
    INFO("thread " << t << ": " << failures[t]);
    CHECK(failures[t].empty());
    CHECK(errors[t] >= 0);
    CHECK(errors[t] <= tolerance_for(DType::kBF16));
  }
}

TEST_CASE("concurrent streams: decode and prefill mixed across streams and threads are each correct") {
  std::atomic<int> wrong{0};
  std::vector<std::string> failures(3);
  const auto decode_thread = [&](int index, DecodeShape shape) {
    try {
      cuda::ScopedDeviceContext scope(kDevice);
      OwnedStream own;
      DecodeWorkload w(shape, {kDLCUDA, kDevice}, own.stream);
      for (int round = 0; round < 10; ++round) {
        w.poison_output();
        for (int call = 0; call < 3; ++call) w.run(0, std::nullopt, TuningPolicy::kHeuristic);
        if (!(w.relative_error(0) <= tolerance_for(shape.dtype))) ++wrong;
      }
    } catch (const std::exception& e) {
      failures[index] = e.what();
    }
  };
  std::thread d1(decode_thread, 0, split_kv_shape(1, 1)), d2(decode_thread, 1, split_kv_shape(2, 4));
  std::thread prefill_thread([&] {
    try {
      cuda::ScopedDeviceContext scope(kDevice);
      OwnedStream own;
      PrefillShape shape;
      shape.seq_len = 2048;
      shape.num_q_heads = 8;
      shape.num_kv_heads = 2;
      shape.local_window = 512;
      PrefillWorkload w(shape, kDevice, own.stream);
      for (int round = 0; round < 10; ++round) {
        w.run(std::nullopt, TuningPolicy::kHeuristic, /*poison=*/true);
        if (!(w.sampled_relative_error() <= tolerance_for(shape.dtype))) ++wrong;
      }
    } catch (const std::exception& e) {
      failures[2] = e.what();
    }
  });
  d1.join();
  d2.join();
  prefill_thread.join();
  for (const std::string& f : failures) CHECK_MESSAGE(f.empty(), f);
  CHECK(wrong == 0);
}

TEST_CASE("device-side argument errors are reported on the stream whose kernel found them") {
  cuda::ScopedDeviceContext scope(kDevice);
  OwnedStream bad_stream, good_stream;
  SmallProblem bad({20, 65}), good({20, 17});  // 65 > max_pages_per_seq * page_size = 64
  DecodeOptions o;
  bad.run(bad_stream.stream, o);
  good.run(good_stream.stream, o);
  CHECK_NOTHROW(check_device_errors(kDevice, good_stream.stream));
  try {
    check_device_errors(kDevice, bad_stream.stream);
    FAIL("the bad stream's error was not reported");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kDeviceArgument);
  }
  CHECK_NOTHROW(check_device_errors(kDevice, bad_stream.stream));  // reported once, then cleared
}

TEST_CASE("tuning a shape stores a verified winner the runtime then uses, never slower than the heuristic") {
  TuningFixture fixture("swajit_gpu_tune");
  const DeviceInfo& device = fixture.device;
  CUstream stream = fixture.stream;
  cuda::ScopedDeviceContext& scope = fixture.scope;
  DecodeShape shape;
  shape.batch = 2; shape.kv_len = 700; shape.num_q_heads = 8; shape.num_kv_heads = 2; shape.head_dim = 64;
  shape.local_window = 256; shape.sink_logits = true;
  TuneOptions options;
  options.quick_reps = 5;
  options.final_reps = 20;
  const DecodeTuneReport report = tune_decode_shape(shape, device, stream, options);
  CHECK(report.timed > 0);
  CHECK(report.rejected_wrong == 0);
  CHECK(report.best_us <= report.heuristic_us);
  // The lengths the tuner timed, known equal on the host: the winner runs as tuned, its split count included (with
  // lengths only on the device a num_splits 1 winner takes the capacity rule: paged_decode.cpp tuned_for_lengths).
  DecodeShape equal_lengths = shape;
  equal_lengths.host_lengths = true;
  DecodeWorkload workload(equal_lengths, DLDevice{kDLCUDA, device.ordinal}, stream);
  const DecodeProblem problem = workload.problem(0);
  const DecodePlan plan = plan_decode(problem, DecodeOptions{}, device, scope.context(), stream);
  CHECK(plan.origin == DecodePlan::Origin::kTuned);
  DecodeConfig as_tuned = plan.config;
  as_tuned.direct_grid = false;  // not tuned: the call's grid (paged_decode.cpp with_call_grid)
  CHECK(as_tuned == report.best);
  DecodeOptions heuristic_only;
  heuristic_only.tuning = TuningPolicy::kHeuristic;
  CHECK(plan_decode(problem, heuristic_only, device, scope.context(), stream).origin == DecodePlan::Origin::kHeuristic);
  workload.run(0, std::nullopt);  // the tuned config, end to end
  CHECK(workload.relative_error(0) <= tolerance_for(shape.dtype));

  // Tune on a miss: a shape the database has never seen is tuned by the call itself, then found there.
  DecodeShape fresh = shape;
  fresh.batch = 3;
  DecodeWorkload miss(fresh, DLDevice{kDLCUDA, device.ordinal}, stream);
  const DecodeProblem miss_problem = miss.problem(0);
  const std::string fresh_bucket = decode_bucket_of(miss_problem).key();
  CHECK_FALSE(TuningStore::instance().decode_winner(device.sku(), miss_problem.spec.key(), fresh_bucket));
  DecodeOptions tune_on_miss;
  tune_on_miss.tuning = TuningPolicy::kTuneOnMiss;
  CHECK(plan_decode(miss_problem, tune_on_miss, device, scope.context(), stream).origin == DecodePlan::Origin::kTuned);
  CHECK(TuningStore::instance().decode_winner(device.sku(), miss_problem.spec.key(), fresh_bucket).has_value());
  miss.run(0, std::nullopt);
  CHECK(miss.relative_error(0) <= tolerance_for(fresh.dtype));

  // The next step's batch is ragged (same batch, same table bound, other lengths): the same bucket, so tune-on-miss
  // finds the winner instead of tuning again (a lookup, not seconds of timing), and its schedule fits the lengths.
  DecodeShape ragged = fresh;
  ragged.seq_lens = {1, fresh.kv_len, 40};
  DecodeWorkload next_step(ragged, DLDevice{kDLCUDA, device.ordinal}, stream);
  const DecodeProblem ragged_problem = next_step.problem(0);
  CHECK(decode_bucket_of(ragged_problem).key() == fresh_bucket);
  const auto lookup_start = std::chrono::steady_clock::now();
  CHECK(plan_decode(ragged_problem, tune_on_miss, device, scope.context(), stream).origin == DecodePlan::Origin::kTuned);
  CHECK(std::chrono::steady_clock::now() - lookup_start < std::chrono::milliseconds(500));
  next_step.run(0, std::nullopt, TuningPolicy::kTuneOnMiss);
  for (int b = 0; b < ragged.batch; ++b) CHECK(next_step.relative_error(b) <= tolerance_for(ragged.dtype));
}

int main(int argc, char** argv) {
  // Never touch the user's tuning database from the tests.
  set_tuning_db_path((std::filesystem::temp_directory_path() / ("swajit_gpu_tests_" + std::to_string(::getpid()) + ".db")).string());
  std::string why;
  if (cuda_devices(&why).empty()) {
    std::printf("SKIPPED: no GPU (%s)\n", why.c_str());
    return kSkipReturnCode;
  }
  doctest::Context context(argc, argv);
  return context.run();
}

TEST_CASE("prefill: tuning a shape stores a verified winner the runtime then uses") {
  TuningFixture fixture("swajit_gpu_prefill_tune");
  const DeviceInfo& device = fixture.device;
  CUstream stream = fixture.stream;
  PrefillShape shape;
  shape.seq_len = 700; shape.num_q_heads = 8; shape.num_kv_heads = 2; shape.head_dim = 64; shape.local_window = 256;
  TuneOptions options;
  options.quick_reps = 3;
  options.final_reps = 10;
  const PrefillTuneReport report = tune_prefill_shape(shape, device, stream, options);
  CHECK(report.timed > 0);
  CHECK(report.rejected_wrong == 0);
  CHECK(report.best_us <= report.heuristic_us);
  PrefillWorkload workload(shape, kDevice, stream);
  const PrefillProblem problem = workload.problem();
  CHECK(choose_prefill_config(problem, PrefillOptions{}, device, stream) == report.best);
  PrefillOptions heuristic_only;
  heuristic_only.tuning = TuningPolicy::kHeuristic;
  CHECK(choose_prefill_config(problem, heuristic_only, device, stream) ==
        with_item_order(problem, heuristic_prefill_config(problem.spec, device)));
  workload.run(std::nullopt, TuningPolicy::kDefault, /*poison=*/true);  // the tuned config, end to end
  CHECK(workload.sampled_relative_error() <= tolerance_for(shape.dtype));
}
