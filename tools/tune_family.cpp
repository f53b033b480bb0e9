#include "tune_family.hpp"

#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "checked_input.hpp"
#include "device_flag.hpp"
#include "swajit/device.hpp"
#include "swajit/error.hpp"
#include "tune_commands.hpp"
#include "tuning_store.hpp"

extern char** environ;

namespace swajit::cli {

TuneFamilyVerb FamilyTune<DecodeConfig>::add_to(CLI::App& tune) {
  auto c = std::make_shared<TuneCommand>();  // the flags land here when parsed
  tune.add_option("--preset", c->preset, "paged_decode: model preset: mistral-7b | gemma-3-27b | gpt-oss-20b");
  tune.add_option("--workload", c->workload_file, "paged_decode: JSON file {\"shapes\": [{batch, kv_len, num_q_heads, ...}]}");
  tune.add_flag("--restart", c->restart, "paged_decode: forget the progress of an interrupted run of the same job");
  tune.add_option("--batch", c->batches, "paged_decode preset grid: batch sizes")->delimiter(',')->check(size_range())->capture_default_str();
  tune.add_option("--kv-len", c->kv_lens, "paged_decode preset grid: KV lengths")->delimiter(',')->check(size_range())->capture_default_str();
  tune.add_option("--q-seqlen", c->q_seqlens, "paged_decode preset grid: query tokens")->delimiter(',')->check(size_range())->capture_default_str();
  return {std::string(to_string(KernelFamily::kPagedDecode)), [c](const TuneRun& run) {
            TuneCommand command = *c;
            command.device = run.device;
            command.shard = run.shard;
            command.quick_reps = run.quick_reps.value_or(command.quick_reps);
            command.final_reps = run.final_reps.value_or(command.final_reps);
            return run_tune(command);
          }};
}

TuneFamilyVerb FamilyTune<PrefillConfig>::add_to(CLI::App& tune) {
  auto c = std::make_shared<PrefillTuneCommand>();
  auto kv_quant = std::make_shared<std::string>("none");
  tune.add_option("--seq", c->seq_lens, "prefill: sequence lengths")->delimiter(',')->check(size_range())->capture_default_str();
  tune.add_option("--num-kv-heads", c->num_kv_heads, "prefill: kv head counts")->delimiter(',')->check(size_range())->capture_default_str();
  tune.add_option("--local-window", c->local_window, "prefill: local window")->check(window_range())->capture_default_str();
  tune.add_option("--kv-quant", *kv_quant, "prefill: K/V storage none | int8 | fp8 (per-channel scales)")->capture_default_str();
  return {std::string(to_string(KernelFamily::kPrefill)), [c, kv_quant](const TuneRun& run) {
            PrefillTuneCommand command = *c;
            command.device = cuda_ordinal(run.device, "tune --family prefill");
            command.kv_quant = parse_kv_quant(*kv_quant);
            command.shard = run.shard;
            command.quick_reps = run.quick_reps.value_or(command.quick_reps);
            command.final_reps = run.final_reps.value_or(command.final_reps);
            return run_prefill_tune(command);
          }};
}

TuneFamilyVerb FamilyTune<SparseDecodeConfig>::add_to(CLI::App& tune) {
  auto c = std::make_shared<SparseTuneCommand>();
  auto sparse_batches = std::make_shared<std::vector<int>>(c->batches);
  tune.add_option("--sparse-preset", c->presets, "sparse_decode: issue 16's bench shapes a (64/8 heads, d128) | b (MLA 576/512)")
      ->delimiter(',')->check(CLI::IsMember({"a", "b"}))->capture_default_str();
  tune.add_option("--sparse-batch", *sparse_batches, "sparse_decode: batch sizes")->delimiter(',')->check(size_range())->capture_default_str();
  return {std::string(to_string(KernelFamily::kSparseDecode)), [c, sparse_batches](const TuneRun& run) {
            SparseTuneCommand command = *c;
            command.batches = *sparse_batches;
            command.device = cuda_ordinal(run.device, "tune --family sparse_decode");
            command.shard = run.shard;
            command.quick_reps = run.quick_reps.value_or(command.quick_reps);
            command.final_reps = run.final_reps.value_or(command.final_reps);
            return run_sparse_tune(command);
          }};
}

std::string worker_shard(const std::string& shard, int worker, int workers) {
  const auto [index, count] = parse_shard(shard);
  return std::to_string(index + count * worker) + "/" + std::to_string(count * workers);
}

std::vector<std::string> worker_arguments(int argc, char** argv, int worker, const std::string& shard) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--device" || arg == "--shard") {
      ++i;  // and its value
      continue;
    }
    if (arg.starts_with("--device=") || arg.starts_with("--shard=")) continue;
    args.push_back(arg);
  }
  for (const std::string& extra : {std::string("--device"), "cuda:" + std::to_string(worker), std::string("--shard"), shard})
    args.push_back(extra);
  return args;
}

int tune_on_every_gpu(int argc, char** argv, const TuneRun& flags, const std::function<int(const TuneRun&)>& run_here) {
  std::string why;
  const int gpus = int(cuda_devices(&why).size());
  if (gpus == 0) throw Error(ErrorCode::kNoDevice, "--device cuda:all: no GPU (" + why + ")");
  if (gpus == 1) {
    TuneRun one = flags;
    one.device = {kDLCUDA, 0};
    return run_here(one);
  }
  // Created here once, so that the workers' first opens find it (creation is serialized by a lock either way).
  TuningStore& store = TuningStore::instance();
  if (!store.available()) throw Error(ErrorCode::kDatabaseError, "the tuning database " + store.path() + " cannot be opened");
  std::printf("tuning on %d GPUs, one worker process each, into %s\n", gpus, store.path().c_str());
  std::fflush(stdout);  // before the workers write into the same stdout
  std::vector<std::pair<int, pid_t>> workers;  // GPU, process
  for (int g = 0; g < gpus; ++g) {
    std::vector<std::string> args = worker_arguments(argc, argv, g, worker_shard(flags.shard, g, gpus));
    args.insert(args.begin(), argv[0]);
    std::vector<char*> c_args;
    for (auto& a : args) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    pid_t pid = 0;
    if (const int rc = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, c_args.data(), environ); rc != 0) {
      std::fprintf(stderr, "swajit: starting the worker for cuda:%d failed: %s\n", g, std::strerror(rc));
      continue;
    }
    workers.emplace_back(g, pid);
  }
  int worst = int(workers.size()) == gpus ? 0 : 1;
  for (const auto& [g, pid] : workers) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::printf("worker for cuda:%d: exit status %d\n", g, rc);
    worst = std::max(worst, rc);
  }
  return worst;
}

}  // namespace swajit::cli
