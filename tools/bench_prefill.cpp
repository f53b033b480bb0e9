#include "bench_prefill.hpp"

#include <cstdio>
#include <memory>

#include "bench_family.hpp"
#include "check.hpp"
#include "checked_input.hpp"
#include "device_flag.hpp"
#include "spec_flags.hpp"
#include "cuda_driver.hpp"
#include "prefill_workload.hpp"
#include "utility_kernels.hpp"
#include "swajit/swajit.hpp"

namespace swajit::cli {

int run_prefill_bench(const PrefillBenchOptions& o) {
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  std::printf("device: %s (%s), %d SMs\n", device.name.c_str(), device.arch().c_str(), device.sm_count);
  std::printf("prefill: batch %d, %d q heads, head_dim %d, bf16, local window %d, global window %d, causal, "
              "%s %s K/V; CUDA events, L2 evicted before each of %d reps (median), host time per call apart\n",
              o.batch, o.num_q_heads, o.head_dim, o.local_window, o.global_window,
              o.page_size > 0 ? ("paged (page " + std::to_string(o.page_size) + ", NHD" +
                                 (o.shuffled_pages ? ", pages shuffled)" : ", pages in order)")).c_str()
                              : "contiguous",
              o.kv_quant == KvQuant::kNone ? "bf16"
              : o.per_tensor_scale         ? (std::string(to_string(o.kv_quant)) + " (per-tensor scale)").c_str()
                                           : std::string(to_string(o.kv_quant)).c_str(),
              o.reps);
  if (!o.q_lens.empty()) {
    std::printf("varlen: %zu sequences, each chunked after a cached prefix of %d tokens; q lengths", o.q_lens.size(),
                o.prefix_len);
    for (int len : o.q_lens) std::printf(" %d", len);
    std::printf(" (the seq column reads 0; batch ignored)\n");
  }
  if (o.matmul_tflops > 0)
    std::printf("floor = useful FLOPs / bf16 matmul rate measured in this run (%.1f TFLOP/s)\n", o.matmul_tflops);
  std::printf("\n| kv heads | seq | time (ms) | useful TFLOP/s | floor (ms) | %% of matmul rate | config | rel err (sampled rows) | host us per call |\n"
              "|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
  bool all_ok = true;
  const std::vector<int> seq_lens = o.q_lens.empty() ? o.seq_lens : std::vector<int>{0};  // varlen: one row
  for (int hkv : o.num_kv_heads)
    for (int seq : seq_lens) {
      const PrefillShape shape = o.shape(hkv, seq);
      PrefillWorkload workload(shape, o.device, nullptr);
      PrefillOptions as_called;  // what the runtime picks for this call when no config is forced
      const auto chosen = [&](const std::optional<PrefillConfig>& forced) {
        return forced ? *forced : choose_prefill_config(workload.problem(), as_called, device, nullptr);
      };
      const std::vector<std::optional<PrefillConfig>> configs =
          o.compared.empty() ? std::vector<std::optional<PrefillConfig>>{o.config} : o.compared;
      for (int round = 0; round < o.rounds; ++round)
        for (const auto& forced : configs) {
          const PrefillConfig config = chosen(forced);
          try {
            workload.run(config, TuningPolicy::kDefault, /*poison=*/true);
          } catch (const Error& e) {  // a compared config this row cannot take: say why, time the others
            std::printf("| %d | %d | - | - | - | - | %s | %s |\n", hkv, seq, config.key().c_str(), e.what());
            all_ok = false;
            continue;
          }
          const double rel_err = workload.sampled_relative_error();
          const double ms = workload.time_ms(config, o.reps);
          const bool ok = rel_err <= tolerance_for(shape.dtype);
          all_ok &= ok;
          const double flops = shape.useful_flops(), tflops = flops / (ms * 1e-3) / 1e12;
          std::printf("| %d | %d | %.3f | %.1f |", hkv, seq, ms, tflops);
          if (o.matmul_tflops > 0)
            std::printf(" %.3f | %.0f%% |", flops / (o.matmul_tflops * 1e12) * 1e3, 100 * tflops / o.matmul_tflops);
          else
            std::printf(" - | - |");
          std::printf(" %s | %.2e%s | %.1f |\n", config.key().c_str(), rel_err, ok ? "" : " FAIL",
                      workload.host_us_per_call(config, kHostTimedCalls));
        }
    }
  return all_ok ? 0 : 1;
}

BenchVerb FamilyBench<PrefillConfig>::add_to(CLI::App& bench) {
  struct Flags {
    PrefillBenchOptions options;
    ConfigFlags config;
    std::string kv_quant = "none", device = "cuda";
    std::vector<std::string> compared;
  };
  const auto flags = std::make_shared<Flags>();  // filled by the parse, read by the run
  CLI::App* verb = bench.add_subcommand("prefill", "sliding-window prefill: useful TFLOP/s beside the matmul rate");
  verb->add_option("--seq", flags->options.seq_lens, "sequence lengths")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--num-kv-heads", flags->options.num_kv_heads, "kv head counts")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--batch", flags->options.batch)->check(size_range())->capture_default_str();
  verb->add_option("--num-q-heads", flags->options.num_q_heads)->check(size_range())->capture_default_str();
  verb->add_option("--head-dim", flags->options.head_dim)->check(size_range())->capture_default_str();
  verb->add_option("--local-window", flags->options.local_window)->check(window_range())->capture_default_str();
  verb->add_option("--global-window", flags->options.global_window)->check(window_range())->capture_default_str();
  verb->add_option("--reps", flags->options.reps)->check(reps_range())->capture_default_str();
  verb->add_option("--kv-quant", flags->kv_quant, "K/V storage: none | int8 | fp8 (per-channel scales unless --per-tensor-scale; same FLOP count)")
      ->capture_default_str();
  verb->add_option("--matmul-tflops", flags->options.matmul_tflops,
                            "bf16 matmul rate measured in the same run, for the floor column")
      ->check(CLI::NonNegativeNumber);
  verb->add_option("--page-size", flags->options.page_size, "0: contiguous K/V; else a paged NHD cache of this page size")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  verb->add_flag("--per-tensor-scale", flags->options.per_tensor_scale,
                 "8-bit K/V: one dequant scale per tensor (default: one per kv head and channel)");
  verb->add_flag("--shuffle-pages", flags->options.shuffled_pages,
                 "paged: each sequence's pages at random places of the cache (default: one after another)");
  verb->add_option("--q-lens", flags->options.q_lens, "varlen: query lengths of the sequences (replaces --seq and --batch)")
      ->delimiter(',')->check(size_range());
  verb->add_option("--prefix-len", flags->options.prefix_len, "varlen: cached tokens before each sequence's queries")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  verb->add_option("--configs", flags->compared,
                   "compare configs on each row's workload, alternated over --rounds: config keys "
                   "(e.g. bm192_bn64_st3_mt1_wg_ws1_tma) or 'default' (the runtime's choice)")
      ->delimiter(',');
  verb->add_option("--rounds", flags->options.rounds, "with --configs: passes over the configs")
      ->check(CLI::Range(1, 100))->capture_default_str();
  verb->add_option("--device", flags->device, "cuda | cuda:N (prefill runs on CUDA)")->capture_default_str();
  flags->config.add_to(*verb);
  return {verb, [flags] {
            flags->options.device = cuda_ordinal(parse_device(flags->device), "bench prefill");
            flags->options.kv_quant = parse_kv_quant(flags->kv_quant);
            if (flags->config.any()) flags->options.config = flags->config.apply(PrefillConfig{});
            for (const std::string& key : flags->compared)
              flags->options.compared.push_back(key == "default" ? std::nullopt
                                                                 : std::optional(PrefillConfig::from_key(key)));
            return run_prefill_bench(flags->options);
          }};
}

}  // namespace swajit::cli
