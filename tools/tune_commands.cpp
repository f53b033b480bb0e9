#include "tune_commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "checked_input.hpp"
#include "cuda_driver.hpp"
#include "family.hpp"
#include "kernel_cache.hpp"
#include "nvrtc_compiler.hpp"
#include "shipped_tuning.hpp"
#include "swajit/error.hpp"
#include "swajit/json_input.hpp"
#include "tuner.hpp"
#include "tuning_store.hpp"

namespace swajit::cli {
namespace {

struct ModelAttention {
  const char* name;
  int num_q_heads, num_kv_heads, head_dim, local_window;
  bool sink_logits;
};
// Attention shapes of the sliding-window layers, from the models' published configs.
constexpr ModelAttention kPresets[] = {
    {"mistral-7b", 32, 8, 128, 4096, false},   // sliding_window 4096
    {"gemma-3-27b", 32, 16, 128, 1024, false}, // local layers: sliding_window 1024
    {"gpt-oss-20b", 64, 8, 64, 128, true},     // sliding_window 128, learned attention sinks
};

std::string shape_label(const DecodeShape& s) {
  return "b" + std::to_string(s.batch) + " kv" + std::to_string(s.kv_len) + " q" + std::to_string(s.q_seqlen) + " h" +
         std::to_string(s.num_q_heads) + "/" + std::to_string(s.num_kv_heads) + " d" + std::to_string(s.head_dim) +
         " w" + std::to_string(s.local_window) + (s.sink_logits ? " sinks" : "") +
         (s.kv_quant != KvQuant::kNone ? " kv" + std::string(to_string(s.kv_quant)) : "");
}

nlohmann::json shape_to_json(const DecodeShape& s) {
  return {{"batch", s.batch}, {"kv_len", s.kv_len}, {"q_seqlen", s.q_seqlen}, {"num_q_heads", s.num_q_heads},
          {"num_kv_heads", s.num_kv_heads}, {"head_dim", s.head_dim}, {"page_size", s.page_size},
          {"dtype", to_string(s.dtype)}, {"kv_quant", to_string(s.kv_quant)}, {"local_window", s.local_window},
          {"global_window", s.global_window}, {"sink_logits", s.sink_logits}};
}

std::string format_seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%dm%02ds", int(s) / 60, int(s) % 60);
  return text;
}

void draw_progress(size_t done, size_t total, double elapsed_s, const std::string& last) {
  constexpr int kWidth = 30;
  const int filled = total ? int(kWidth * done / total) : kWidth;
  const double eta = done ? elapsed_s / done * (total - done) : 0;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu  elapsed %s  ETA %s  %s\033[K", std::string(filled, '#').c_str(),
               std::string(kWidth - filled, '.').c_str(), done, total, format_seconds(elapsed_s).c_str(),
               done ? format_seconds(eta).c_str() : "?", last.c_str());
  if (done == total) std::fprintf(stderr, "\n");
}

// The CPU's tuning identity (needs the CPU backend).
std::string host_sku() {
#ifdef SWAJIT_HAVE_CPU_BACKEND
  return cpu::host_cpu().identity();
#else
  throw Error(ErrorCode::kUnsupported, "this build has no CPU backend (-DSWAJIT_CPU_BACKEND=ON)");
#endif
}

std::string hostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.push_back(p.name);
  return names;
}

std::vector<DecodeShape> preset_shapes(const std::string& preset, const TuneCommand& grid) {
  for (const auto& p : kPresets) {
    if (preset != p.name) continue;
    std::vector<DecodeShape> shapes;
    for (int batch : grid.batches)
      for (int kv_len : grid.kv_lens)
        for (int qs : grid.q_seqlens) {
          DecodeShape s;
          s.batch = batch; s.kv_len = kv_len; s.q_seqlen = qs;
          s.num_q_heads = p.num_q_heads; s.num_kv_heads = p.num_kv_heads; s.head_dim = p.head_dim;
          s.local_window = p.local_window; s.sink_logits = p.sink_logits;
          shapes.push_back(s);
        }
    return shapes;
  }
  std::string names;
  for (const auto& n : preset_names()) names += " " + n;
  throw Error(ErrorCode::kInvalidArgument, "--preset '" + preset + "' is unknown; presets:" + names);
}

std::vector<DecodeShape> workload_shapes(const std::string& path) {
  const std::string where = "workload file '" + path + "'";
  return decode_shapes_from_json(read_json_file(path, where), where);
}

int run_tune(const TuneCommand& c) {
  if (c.preset.empty() == c.workload_file.empty())
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --preset and --workload");
  const std::vector<DecodeShape> all = c.preset.empty() ? workload_shapes(c.workload_file) : preset_shapes(c.preset, c);
  for (size_t i = 0; i < all.size(); ++i) check_decode_shape(all[i], "shape " + std::to_string(i), c.device);
  const auto [shard, shards] = parse_shard(c.shard);
  std::vector<DecodeShape> mine;
  for (size_t i = shard; i < all.size(); i += shards) mine.push_back(all[i]);

  const bool on_cpu = c.device.device_type == kDLCPU;
  std::optional<cuda::ScopedDeviceContext> scope;
  if (!on_cpu) scope.emplace(c.device.device_id);
  const DeviceInfo* gpu = on_cpu ? nullptr : &cuda_device(c.device.device_id);
  const std::string sku = on_cpu ? host_sku() : gpu->sku();
  const std::string device_name = on_cpu ? "the CPU" : gpu->name;
  TuningStore& store = TuningStore::instance();
  if (!store.available()) throw Error(ErrorCode::kDatabaseError, "the tuning database " + store.path() + " cannot be opened");
  // The job is its items and shard: rerunning the same command resumes where an interruption left it.
  nlohmann::json job_items = nlohmann::json::array();
  for (const auto& s : mine) job_items.push_back(shape_to_json(s));
  const std::string job = "tune:" + sku + ":" + stable_hash({job_items.dump(), c.shard});
  std::vector<DecodeShape> todo;
  store.with_db([&](db::TuningDb& db) {
    if (c.restart) db.clear_progress(job);
    for (const auto& s : mine)
      if (!db.is_done(job, shape_to_json(s).dump())) todo.push_back(s);
  });
  std::printf("tuning %zu shapes on %s (shard %s of %zu shapes; %zu already done), database %s\n", todo.size(),
              device_name.c_str(), c.shard.c_str(), all.size(), mine.size() - todo.size(), store.path().c_str());
  std::printf("| shape | spec | bucket | heuristic (us) | tuned (us) | speedup | winner | timed | rejected (wrong/resources/compile) | s |\n");
  std::printf("|---|---|---|---:|---:|---:|---|---:|---|---:|\n");

  CUstream stream = nullptr;
  if (!on_cpu) cuda::check(cuda::driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  TuneOptions options;
  options.quick_reps = c.quick_reps;
  options.final_reps = c.final_reps;
  options.origin = "tuned on " + hostname();
  const auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (size_t i = 0; i < todo.size(); ++i) {
    const DecodeShape& s = todo[i];
    std::string last;
    try {
      double heuristic_us = 0, best_us = 0;
      if (on_cpu) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
        const CpuDecodeTuneReport r = Family<CpuDecodeConfig>::tune(s, options);
        heuristic_us = r.heuristic_us;
        best_us = r.best_us;
        std::printf("| %s | %s | %s | %.1f | %.1f | %.2fx | %s | %d | %d/0/%d | %.1f |\n", shape_label(s).c_str(),
                    r.spec_key.c_str(), r.bucket.c_str(), r.heuristic_us, r.best_us, r.heuristic_us / r.best_us,
                    r.best.key().c_str(), r.timed, r.rejected_wrong, r.compile_failed, r.wall_s);
#endif
      } else {
        const DecodeTuneReport r = Family<DecodeConfig>::tune(s, *gpu, stream, options);
        heuristic_us = r.heuristic_us;
        best_us = r.best_us;
        std::printf("| %s | %s | %s | %.1f | %.1f | %.2fx | %s | %d | %d/%d/%d | %.1f |\n", shape_label(s).c_str(),
                    r.spec_key.c_str(), r.bucket.c_str(), r.heuristic_us, r.best_us, r.heuristic_us / r.best_us,
                    r.best.key().c_str(), r.timed, r.rejected_wrong, r.rejected_resources, r.compile_failed, r.wall_s);
      }
      store.with_db([&](db::TuningDb& db) { db.mark_progress(job, shape_to_json(s).dump()); });
      char note[64];
      std::snprintf(note, sizeof(note), "%.2fx", heuristic_us / best_us);
      last = shape_label(s) + " " + note;
    } catch (const std::exception& e) {
      ++failures;
      std::printf("| %s | error: %s |\n", shape_label(s).c_str(), e.what());
      last = shape_label(s) + " failed";
    }
    std::fflush(stdout);
    draw_progress(i + 1, todo.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), last);
  }
  if (stream) cuda::driver().cuStreamDestroy(stream);
  std::printf("tuning wall time: %.1f s for %zu shapes\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), todo.size());
  return failures ? 1 : 0;
}

int run_db(const std::string& verb, const std::string& argument) {
  TuningStore& store = TuningStore::instance();
  const std::string path = store.path();
  const auto needs_argument = [&](const char* what) {
    if (argument.empty()) throw Error(ErrorCode::kInvalidArgument, "swajit db " + verb + " needs " + what);
  };
  constexpr const char* kVerbs[] = {"list", "show", "export", "import", "merge", "verify", "vacuum"};
  if (std::find(std::begin(kVerbs), std::end(kVerbs), verb) == std::end(kVerbs))  // before the file is created
    throw Error(ErrorCode::kInvalidArgument, "swajit db: unknown verb '" + verb + "'; verbs are list, show, export, "
                                             "import, merge, verify, vacuum");
  db::TuningDb db(path);
  if (db.moved_aside()) std::fprintf(stderr, "swajit: NOTE: %s\n", db.moved_aside()->c_str());
  if (verb == "list") {
    // Each winner a call would use, with its source: "user" (this database) or "shipped:<file>" (beneath it).
    std::printf("| device | spec | bucket | config | time (us) | samples | source | origin | when |\n"
                "|---|---|---|---|---:|---:|---|---|---|\n");
    for (const auto& [w, source] : shipped::winners_beneath(db.list_winners()))
      std::printf("| %s | %s | %s | %s | %.1f | %lld | %s | %s | %s |\n", w.device_sku.c_str(), w.spec_key.c_str(),
                  w.bucket.c_str(), w.config.dump().c_str(), w.time_us, static_cast<long long>(w.samples),
                  source.c_str(), w.origin.c_str(), w.created_at.c_str());
  } else if (verb == "show") {
    const db::DbStats s = db.stats();
    std::printf("database: %s\nschema version: %d\nfile bytes: %ju\ndevices: %lld, winners: %lld, trials: %lld, "
                "binaries: %lld, progress items: %lld\nshape buckets: %s\n", path.c_str(), s.schema_version,
                s.file_bytes, (long long)s.devices, (long long)s.winners, (long long)s.trials, (long long)s.binaries,
                (long long)s.progress_items, bucket_rule_text());
    for (const auto& d : db.list_devices())
      std::printf("device %s: %s sm_%d%d, %d SMs, driver %lld, compiler %lld\n", d.sku.c_str(), d.backend.c_str(),
                  d.cc_major, d.cc_minor, d.sm_count, (long long)d.driver_version, (long long)d.compiler_version);
  } else if (verb == "export") {
    needs_argument("an output file");
    write_file_atomically(argument, db.export_json().dump(1) + "\n");
    std::printf("exported %zu winners to %s\n", db.list_winners().size(), argument.c_str());
  } else if (verb == "import") {
    needs_argument("a JSON file");
    const nlohmann::json doc = read_json_file(argument, "import file '" + argument + "'");
    const db::ImportStats s = db.import_json(doc, "imported from " + argument, db::WinnerPolicy::kKeepFaster);
    std::printf("imported %lld devices, %lld winners (%lld kept: the stored one was faster)\n", (long long)s.devices,
                (long long)s.winners_added, (long long)s.winners_kept_existing);
  } else if (verb == "merge") {
    needs_argument("another database file");
    const db::ImportStats s = db.merge_from(argument);
    std::printf("merged %lld winners (%lld kept: the stored one was faster), %lld new devices\n",
                (long long)s.winners_added, (long long)s.winners_kept_existing, (long long)s.devices);
  } else if (verb == "verify") {
    std::vector<std::string> problems = db.verify();
    if (db.moved_aside()) problems.insert(problems.begin(), *db.moved_aside());
    for (const auto& p : problems) std::printf("problem: %s\n", p.c_str());
    std::printf("%zu problems\n", problems.size());
    return problems.empty() ? 0 : 1;
  } else if (verb == "vacuum") {
    db.vacuum();
    std::printf("vacuumed %s\n", path.c_str());
  }
  return 0;
}

namespace {
// What the per-family GPU tuning commands open first: the database (it must open), a stream of their own and the
// options of their runs.
struct GpuTuning {
  TuningStore& store = TuningStore::instance();
  cuda::OwnedStream stream;
  TuneOptions options;
  GpuTuning(int quick_reps, int final_reps) {
    if (!store.available()) throw Error(ErrorCode::kDatabaseError, "the tuning database " + store.path() + " cannot be opened");
    stream = cuda::create_stream();
    options.quick_reps = quick_reps;
    options.final_reps = final_reps;
    options.origin = "tuned on " + hostname();
  }
};
}  // namespace

int run_prefill_tune(const PrefillTuneCommand& c) {
  cuda::ScopedDeviceContext scope(c.device);
  const DeviceInfo& device = cuda_device(c.device);
  GpuTuning tuning(c.quick_reps, c.final_reps);
  const TuningStore& store = tuning.store;
  std::printf("tuning prefill on %s, database %s\n", device.name.c_str(), store.path().c_str());
  std::printf("| kv heads | seq | spec | bucket | heuristic (ms) | tuned (ms) | speedup | winner | timed | rejected (wrong/resources/compile) | s |\n");
  std::printf("|---:|---:|---|---|---:|---:|---:|---|---:|---|---:|\n");
  const auto start = std::chrono::steady_clock::now();
  const auto [shard, shards] = parse_shard(c.shard);
  int item = 0;
  for (int hkv : c.num_kv_heads)
    for (int seq : c.seq_lens) {
      if (item++ % shards != shard) continue;
      const PrefillTuneReport r = Family<PrefillConfig>::tune(c.shape(hkv, seq), device, tuning.stream.get(), tuning.options);
      std::printf("| %d | %d | %s | %s | %.3f | %.3f | %.2fx | %s | %d/%d | %d/%d/%d | %.1f |\n", hkv, seq,
                  r.spec_key.c_str(), r.bucket.c_str(), r.heuristic_us * 1e-3, r.best_us * 1e-3,
                  r.best_us > 0 ? r.heuristic_us / r.best_us : 0.0, r.best.key().c_str(), r.timed, r.candidates,
                  r.rejected_wrong, r.rejected_resources, r.compile_failed, r.wall_s);
      std::fflush(stdout);
    }
  std::printf("tuned in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

int run_sparse_tune(const SparseTuneCommand& c) {
  cuda::ScopedDeviceContext scope(c.device);
  const DeviceInfo& device = cuda_device(c.device);
  GpuTuning tuning(c.quick_reps, c.final_reps);
  const TuningStore& store = tuning.store;
  std::vector<SparseShape> shapes;
  for (const std::string& preset : c.presets)
    for (int batch : c.batches)
      for (const SparseShape& s : sparse_preset(preset, batch)) shapes.push_back(s);
  std::printf("tuning sparse_decode on %s, database %s\n", device.name.c_str(), store.path().c_str());
  std::printf("| shape | batch | kv_len | topk | window | spec | bucket | heuristic (us) | tuned (us) | speedup | winner | timed | rejected (wrong/resources/compile) | s |\n");
  std::printf("|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|---|---:|\n");
  const auto start = std::chrono::steady_clock::now();
  const auto [shard, shards] = parse_shard(c.shard);
  for (size_t item = 0; item < shapes.size(); ++item) {
    if (int(item) % shards != shard) continue;
    const SparseShape& s = shapes[item];
    const SparseTuneReport r = Family<SparseDecodeConfig>::tune(s, device, tuning.stream.get(), tuning.options);
    std::printf("| %s | %d | %d | %d | %d | %s | %s | %.1f | %.1f | %.2fx | %s | %d/%d | %d/%d/%d | %.1f |\n", s.name.c_str(),
                s.batch, s.kv_len, s.topk, s.local_window, r.spec_key.c_str(), r.bucket.c_str(), r.heuristic_us, r.best_us,
                r.best_us > 0 ? r.heuristic_us / r.best_us : 0.0, r.best.key().c_str(), r.timed, r.candidates,
                r.rejected_wrong, r.rejected_resources, r.compile_failed, r.wall_s);
    std::fflush(stdout);
  }
  std::printf("tuned in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

int run_load_bench(DLDevice where) {
  const bool on_cpu = where.device_type == kDLCPU;
  std::optional<cuda::ScopedDeviceContext> scope;
  if (!on_cpu) scope.emplace(where.device_id);
  const std::string sku = on_cpu ? host_sku() : cuda_device(where.device_id).sku();
  // The kernels to build: this device's winners, the user's and the shipped ones beneath them, listed through a
  // connection of their own so that the timed part below is what a serving process does.
  TuningStore& store = TuningStore::instance();
  std::vector<shipped::SourcedWinner> winners;
  for (auto& row : shipped::winners_beneath(db::TuningDb(store.path(), db::TuningDb::OpenCheck::kHeader).list_winners(sku)))
    if (row.winner.device_sku == sku) winners.push_back(std::move(row));
  // The warm start: from before the runtime opens the database (the CUDA context exists, as in a serving process)
  // to the first tuned kernel ready to launch: open, look its config up, read and load its binary (no compiler).
  const auto open_start = std::chrono::steady_clock::now();
  if (!store.available()) throw Error(ErrorCode::kDatabaseError, "the tuning database cannot be opened");
  if (!winners.empty()) {
    const db::WinnerRecord& first = winners.front().winner;
    if (!store.winner_config(sku, first.spec_key, first.bucket))
      throw Error(ErrorCode::kDatabaseError, "the runtime did not find the listed winner " + first.spec_key + " " + first.bucket);
  }
  const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - open_start).count();
  std::vector<double> load_ms, compile_ms;
  size_t shipped_count = 0;
  for (const auto& [w, source] : winners) {
    shipped_count += source != "user";
    const auto start = std::chrono::steady_clock::now();
    bool from_database = false;
    if (on_cpu) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
      from_database = cpu_decode_kernel(KernelSpec::from_key(w.spec_key), cpu_decode_config_from_json(w.config)).from_database;
#endif
    } else {
      const KernelSpec spec = KernelSpec::from_key(w.spec_key);
      const DeviceInfo& device = cuda_device(where.device_id);
      from_database = with_cuda_family(spec.family, [&](auto family) {
        return cuda_kernel(spec, decltype(family)::from_json(w.config), device, scope->context()).from_database;
      });
    }
    const auto end = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(end - start).count();
    if (load_ms.empty() && compile_ms.empty())
      std::printf("first tuned kernel in this process (%s): %.2f ms from before opening the database (open and look "
                  "its config up %.2f ms, then generate, read and load %.2f ms); goal: at most 5 ms\n",
                  from_database ? "loaded from the database" : "compiled: not in the database",
                  std::chrono::duration<double, std::milli>(end - open_start).count(), open_ms, ms);
    (from_database ? load_ms : compile_ms).push_back(ms);
  }
  const auto summary = [](std::vector<double> v, const char* what) {
    if (v.empty()) return std::printf("%s: none\n", what), void();
    std::sort(v.begin(), v.end());
    std::printf("%s: %zu kernels, median %.2f ms, worst %.2f ms\n", what, v.size(), v[v.size() / 2], v.back());
  };
  const char* compiler = on_cpu ? "Clang" : "NVRTC";
  std::printf("%zu tuned winners for %s (%zu from the database, %zu shipped)\n", winners.size(), sku.c_str(),
              winners.size() - shipped_count, shipped_count);
  summary(load_ms, on_cpu ? "loaded from the database (no Clang)" : "loaded from the database (no NVRTC)");
  summary(compile_ms, on_cpu ? "compiled with Clang (not in the database)" : "compiled with NVRTC (not in the database)");
  unsigned long long compiles = kernel_cache_stats().nvrtc_compiles;
#ifdef SWAJIT_HAVE_CPU_BACKEND
  if (on_cpu) compiles = cpu_kernel_cache_stats().nvrtc_compiles;
#endif
  std::printf("%s compiles in this process: %llu\n", compiler, compiles);
  bool compiler_loaded = on_cpu ? false : nvrtc::loaded();
#ifdef SWAJIT_HAVE_CPU_BACKEND
  if (on_cpu) compiler_loaded = cpu::clang_loaded();
#endif
  std::printf("%s opened in this process: %s\n", compiler, compiler_loaded ? "yes" : "no");
  return 0;
}

}  // namespace swajit::cli
