#include "cpu_backend.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "decode_schedule.h"
#include "kernel_cache.hpp"
#include "swajit/generator.hpp"
#include "tuning_store.hpp"

namespace swajit {
namespace {

constexpr int kCpuDriverVersion = 0;  // CPU objects depend on the compiler (in the hash), not on a driver

// A fixed set of workers that sleep between calls. One call at a time: callers queue on `call_mutex_`.
class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }
  void run(int items, int threads, const std::function<void(int, int, int)>& fn) {
    std::lock_guard<std::mutex> call(call_mutex_);
    grow(threads - 1);
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = &fn;
    items_ = items;
    next_.store(0);
    active_workers_ = threads - 1;
    pending_ = threads - 1;
    ++generation_;
    lock.unlock();
    wake_.notify_all();
    work(0);  // the calling thread is worker 0
    lock.lock();
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));  // a worker's error, on the caller's thread
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void grow(int count) {
    while (int(workers_.size()) < count) {
      const int index = int(workers_.size()) + 1;
      workers_.emplace_back([this, index] { loop(index); });
    }
  }
  void loop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index > active_workers_) continue;  // not part of this call
      lock.unlock();
      work(index);
      lock.lock();
      if (--pending_ == 0) done_.notify_all();
    }
  }
  // No exception may leave a worker thread (std::terminate): the first one is kept for run() to rethrow.
  void work(int worker) noexcept {
    try {
      for (int item = next_++; item < items_; item = next_++) (*job_)(item, item + 1, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  std::mutex call_mutex_, mutex_, error_mutex_;
  std::exception_ptr error_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int, int)>* job_ = nullptr;
  int items_ = 0, active_workers_ = 0, pending_ = 0;
  std::atomic<int> next_{0};
  uint64_t generation_ = 0;
  bool stop_ = false;
};

using CpuKernelFuture = std::shared_future<std::shared_ptr<const LoadedCpuKernel>>;

std::shared_ptr<const LoadedCpuKernel> build_cpu_kernel(const GeneratedKernel& g, const KernelSpec& spec,
                                                        const CpuDecodeConfig& config, const std::string& hash) {
  auto kernel = std::make_shared<LoadedCpuKernel>();
  kernel->scratch_floats = cpu_scratch_floats(spec, config);
  if (auto stored = TuningStore::instance().binary(hash)) {  // the hash holds Clang's version: no driver to judge
    try {
      kernel->module = cpu::load_object(stored->bytes, g.cache_key);
      kernel->from_database = true;
    } catch (const Error&) {
      kernel->module.reset();  // unusable object: compile afresh below
    }
  }
  if (!kernel->module) {
    const cpu::CompiledObject object = cpu::compile_to_object(g.source, g.cache_key + ".cpp");
    kernel->compile_ms = object.compile_ms;
    kernel->module = cpu::load_object(object.object, g.cache_key);
    TuningStore::instance().put_binary(hash, cpu::host_cpu().identity(), cpu::clang_version(), kCpuDriverVersion, object.object);
  }
  kernel->main = reinterpret_cast<CpuKernelFn>(kernel->module->lookup(g.kernel_symbol));
  kernel->merge = reinterpret_cast<CpuKernelFn>(kernel->module->lookup(g.merge_symbol));
  return kernel;
}

}  // namespace

int hardware_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

void parallel_for(int items, int threads, const std::function<void(int, int, int)>& fn) {
  threads = std::clamp(threads, 1, std::max(1, items));
  if (threads == 1) return fn(0, items, 0);
  ThreadPool::instance().run(items, threads, fn);
}

namespace {
std::mutex cache_mutex;
KernelCacheStats cache_stats;
}  // namespace

KernelCacheStats cpu_kernel_cache_stats() {
  std::lock_guard<std::mutex> lock(cache_mutex);
  return cache_stats;
}

const LoadedCpuKernel& cpu_decode_kernel(const KernelSpec& spec, const CpuDecodeConfig& config) {
  static std::mutex& mutex = cache_mutex;
  static std::map<std::string, CpuKernelFuture> cache;
  // By name (spec key, config key) in front of the source hash, as in kernel_cache.cpp: a call that finds its kernel
  // neither generates nor hashes the source.
  static std::map<std::string, CpuKernelFuture> by_name;
  const std::string name = spec.key() + "|" + config.key();
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = by_name.find(name);
    if (it != by_name.end()) {
      ++cache_stats.hits;
      CpuKernelFuture known = it->second;
      return *known.get();  // ready: names are added only once built
    }
  }
  const GeneratedKernel g = generate_cpu_kernel(spec, config);
  const std::string hash = stable_hash({g.source, "clang", std::to_string(cpu::clang_version()), cpu::host_cpu().identity()});
  std::promise<std::shared_ptr<const LoadedCpuKernel>> promise;
  CpuKernelFuture future;
  bool builder = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(hash);
    if (it != cache.end()) {
      ++cache_stats.hits;
      future = it->second;
    } else {
      ++cache_stats.builds;
      future = promise.get_future().share();
      cache.emplace(hash, future);
      builder = true;
    }
  }
  if (builder) {
    try {
      const auto start = std::chrono::steady_clock::now();
      auto kernel = build_cpu_kernel(g, spec, config, hash);
      {
        std::lock_guard<std::mutex> lock(mutex);
        cache_stats.first_use_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        if (!kernel->from_database) ++cache_stats.nvrtc_compiles;
      }
      promise.set_value(std::move(kernel));
    } catch (...) {
      promise.set_exception(std::current_exception());
      std::lock_guard<std::mutex> lock(mutex);
      cache.erase(hash);
    }
  }
  const LoadedCpuKernel& kernel = *future.get();  // throws the build's error
  std::lock_guard<std::mutex> lock(mutex);
  by_name.emplace(name, future);
  return kernel;
}

CpuDecodeConfig cpu_heuristic_config(const DecodeProblem& p) {
  constexpr int kItemsPerThread = 4;     // enough items to balance uneven sequence lengths across threads
  constexpr int kMinTilesPerSplit = 4;   // below this the merge costs more than the balance buys
  CpuDecodeConfig c;
  c.threads = hardware_threads();
  const int pairs = std::max(1, p.batch * p.num_kv_heads);
  const int tiles = (visible_kv_upper_bound(p) + c.block_n - 1) / c.block_n;
  const int wanted = (kItemsPerThread * c.threads + pairs - 1) / pairs;
  c.num_splits = std::clamp(wanted, 1, std::max(1, tiles / kMinTilesPerSplit));
  return c;
}

CpuDecodeConfig plan_cpu_decode(const DecodeProblem& p, const DecodeOptions& options) {
  if (options.cpu_config) {
    options.cpu_config->validate(p.spec);
    return *options.cpu_config;
  }
  if (options.tuning != TuningPolicy::kHeuristic) {
    const std::string bucket = shape_bucket(p.batch, visible_kv_upper_bound(p)).key();
    if (auto tuned = TuningStore::instance().cpu_decode_winner(cpu::host_cpu().identity(), p.spec.key(), bucket)) return *tuned;
  }
  return cpu_heuristic_config(p);
}

void run_cpu_decode(DecodeProblem& p, const CpuDecodeConfig& config) {
  const LoadedCpuKernel& kernel = cpu_decode_kernel(p.spec, config);
  const int threads = config.threads > 0 ? config.threads : hardware_threads();
  PagedDecodeParams& a = p.params;
  a.num_splits = config.num_splits;
  int status[2] = {0, 0};  // host-validated already; the kernel's guards write nowhere else
  a.status = status;
  const size_t rows = size_t(p.spec.q_seqlen) * p.spec.group;
  // The work schedule's grid (templates/decode_schedule.h): num_splits blocks a sequence, two work entries a block.
  a.schedule_slots = config.num_splits * p.batch;
  a.work_items = kEntriesPerBlock * a.schedule_slots;
  const size_t slots = size_t(a.work_items) * p.num_kv_heads * rows;
  std::vector<float> partial_out(config.num_splits > 1 ? slots * p.spec.head_dim : 0);
  std::vector<float> partial_lse(config.num_splits > 1 ? slots : 0);
  a.partial_out = partial_out.data();
  a.partial_lse = partial_lse.data();
  run_cpu_items(kernel, &a, p.batch * p.num_kv_heads, config.num_splits, config.num_splits > 1, threads);
}

void run_cpu_items(const LoadedCpuKernel& kernel, const void* params, int pairs, int items_per_pair, bool merge,
                   int threads) {
  std::vector<std::vector<float>> scratch(threads, std::vector<float>(kernel.scratch_floats));
  parallel_for(pairs * items_per_pair, threads, [&](int first, int last, int worker) {
    kernel.main(params, first, last, scratch[worker].data());
  });
  if (merge)
    parallel_for(pairs, threads, [&](int first, int last, int worker) {
      kernel.merge(params, first, last, scratch[worker].data());
    });
}

}  // namespace swajit
