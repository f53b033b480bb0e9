// The CPU backend end to end, on any machine: the whole correctness matrix against the reference (the same cases
// as the GPU suite), then the pipeline generate -> compile -> tune -> store -> reload in a new process.
#include <doctest/doctest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "cpu_backend.hpp"
#include "decode_plan.hpp"
#include "run_on_threads.hpp"
#include "tensor_checks.hpp"
#include "swajit/swajit.hpp"
#include "tuner.hpp"

using namespace swajit;

namespace {
constexpr DLDevice kCpu{kDLCPU, 0};

std::filesystem::path temp_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("swajit_cpu_test_" + std::to_string(::getpid()) + "_" + name);
}

// Runs a command, returns its standard output (and fails the test on a non-zero exit).
std::string run(const std::string& command) {
  std::string output;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  REQUIRE(pipe);
  std::array<char, 512> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe.get())) output += buffer.data();
  const int status = pclose(pipe.release());
  INFO(command << "\n" << output);
  CHECK(status == 0);
  return output;
}
}  // namespace

TEST_CASE("CPU: correctness matrix against the reference") {
  set_tuning_db_path(temp_path("matrix.db").string());
  const auto cases = decode_check_matrix();
  precompile_cases(cases, kCpu, hardware_threads());
  for (size_t i = 0; i < cases.size(); ++i) {
    const DecodeCase& c = cases[i];
    INFO(c.name << " (" << c.spec().key() << ")");
    const CaseResult r = run_decode_case(c, kCpu, 3000 + i);
    INFO(r.detail);
    CHECK(r.passed);
    CHECK(r.rel_err <= r.tolerance);
  }
  const KernelCacheStats stats = cpu_kernel_cache_stats();
  CHECK(stats.builds > 40);
  std::filesystem::remove(temp_path("matrix.db"));
}

TEST_CASE("CPU: bad input is rejected before anything runs") {
  std::vector<uint16_t> q(2 * 8 * 64), out(q.size()), k(4 * 16 * 2 * 64), v(k.size());
  std::vector<int> table = {0, 1, 2, 3}, lens = {20, 5};
  std::vector<int64_t> q_shape = {2, 8, 64}, k_shape = {4, 16, 2, 64}, t_shape = {2, 2}, l_shape = {2};
  const auto view = [](void* data, DLDataType type, std::vector<int64_t>& shape) { return dl_tensor(data, type, kCpu, shape); };
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
  DLTensor tq = view(q.data(), bf16, q_shape), tk = view(k.data(), bf16, k_shape), tv = view(v.data(), bf16, k_shape);
  DLTensor tt = view(table.data(), i32, t_shape), tl = view(lens.data(), i32, l_shape), to = view(out.data(), bf16, q_shape);
  CHECK_NOTHROW(paged_decode(tq, tk, tv, tt, tl, to, nullptr));
  lens[0] = 40;  // beyond 2 pages of 16
  try {
    paged_decode(tq, tk, tv, tt, tl, to, nullptr);
    FAIL("accepted a sequence longer than its block table");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("seq_lens[0] = 40 exceeds block_table capacity 32") != std::string::npos);
  }
  lens[0] = 20;
  tk.device = {kDLCUDA, 0};
  CHECK_THROWS_WITH_AS(paged_decode(tq, tk, tv, tt, tl, to, nullptr),
                       doctest::Contains("k_cache is on device type 'cuda' but q is on 'cpu'"), Error);
}

TEST_CASE("a shape and the problem its workload describes give one spec: shape_of(problem) is the shape again") {
  DecodeShape shape;
  shape.batch = 2; shape.kv_len = 320; shape.num_q_heads = 8; shape.num_kv_heads = 2; shape.head_dim = 64;
  shape.page_size = 32; shape.q_seqlen = 3; shape.local_window = 100; shape.global_window = 4;
  shape.sink_logits = true; shape.kv_quant = KvQuant::kInt8;
  const DecodeWorkload workload(shape, kCpu, nullptr);
  const DecodeProblem problem = workload.problem(0);
  CHECK(problem.spec.key() == shape.spec().key());
  CHECK(problem.spec.group == 4);
  const DecodeShape again = shape_of(problem);
  CHECK(again.spec().key() == shape.spec().key());
  CHECK(again.batch == 2);
  CHECK(again.kv_len == 320);  // max_pages * page_size: the table addresses exactly kv_len here
  CHECK(again.num_q_heads == 8);
  CHECK(again.num_kv_heads == 2);
  CHECK(again.local_window == 100);
  CHECK(again.global_window == 4);
  CHECK(again.q_seqlen == 3);
}

TEST_CASE("CPU: tune, store, and reload in a new process without compiling") {
  const auto db = temp_path("pipeline.db");
  set_tuning_db_path(db.string());
  DecodeShape shape;
  shape.batch = 3; shape.kv_len = 600; shape.num_q_heads = 8; shape.num_kv_heads = 2; shape.head_dim = 64;
  shape.local_window = 256; shape.q_seqlen = 2;
  TuneOptions options;
  options.quick_reps = 3;
  options.final_reps = 5;
  const CpuDecodeTuneReport report = tune_cpu_decode_shape(shape, options);
  CHECK(report.timed > 0);
  CHECK(report.rejected_wrong == 0);
  CHECK(report.best_us <= report.heuristic_us);
  DecodeWorkload workload(shape, kCpu, nullptr);
  const DecodeProblem problem = workload.problem(0);
  CHECK(plan_cpu_decode(problem, DecodeOptions{}) == report.best);
  workload.run(0, std::nullopt);  // the tuned config, end to end
  CHECK(workload.relative_error(0) <= tolerance_for(shape.dtype));
  // A new process finds the winner and its compiled object in the database: no Clang compile.
  const std::string output = run(std::string(SWAJIT_CLI_PATH) + " bench load --device cpu --db " + db.string());
  CHECK(output.find("1 tuned winners") != std::string::npos);
  CHECK(output.find("loaded from the database (no Clang): 1 kernels") != std::string::npos);
  CHECK(output.find("Clang compiles in this process: 0") != std::string::npos);
  CHECK(output.find("first tuned kernel in this process (loaded from the database)") != std::string::npos);
  CHECK(output.find("Clang opened in this process: no") != std::string::npos);  // libclang-cpp never loaded
  set_tuning_db_path(temp_path("unused.db").string());
  std::filesystem::remove(db);
}

TEST_CASE("CPU backend: calls from several host threads at once, first uses compiling together, are each correct") {
  // Four threads, three different specs (two threads share one), each compiling its first call while the others
  // run theirs; every output is checked against the reference after every round.
  std::vector<DecodeShape> shapes(4);
  for (DecodeShape& s : shapes) {
    s.batch = 2; s.kv_len = 300; s.num_q_heads = 4; s.num_kv_heads = 2; s.head_dim = 64; s.local_window = 128;
  }
  shapes[1].page_size = 5;
  shapes[2].q_seqlen = 3;
  shapes[3].page_size = 5;
  std::vector<int> wrong(shapes.size(), 0);
  const std::vector<std::string> failures = run_on_threads(shapes.size(), [&](size_t t) {
    DecodeWorkload w(shapes[t], kCpu, nullptr);
    for (int round = 0; round < 5; ++round) {
      w.poison_output();
      w.run(0, std::nullopt, TuningPolicy::kHeuristic);
      if (!(w.relative_error(0) <= tolerance_for(shapes[t].dtype))) ++wrong[t];
    }
  });
  for (size_t t = 0; t < shapes.size(); ++t) {
    INFO("thread " << t << ": " << failures[t]);
    CHECK(failures[t].empty());
    CHECK(wrong[t] == 0);
  }
}
