#include "bench_prefill.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "half.hpp"
#include "prefill_problem.hpp"
#include "reference.hpp"
#include "swajit/swajit.hpp"

namespace swajit::cli {
namespace {

constexpr int kWarmup = 3;
constexpr int kSampledRows = 8;  // query rows per (shape, head pair) checked against the double reference

DLTensor view(const DeviceBuffer& b, std::vector<int64_t>& shape, DLDataType dtype, int device) {
  DLTensor t{};
  t.data = b.data();
  t.device = {kDLCUDA, device};
  t.ndim = int(shape.size());
  t.dtype = dtype;
  t.shape = shape.data();
  return t;
}

}  // namespace

int run_prefill_bench(const PrefillBenchOptions& o) {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  std::printf("device: %s (%s), %d SMs\n", device.name.c_str(), device.arch().c_str(), device.sm_count);
  std::printf("prefill: batch %d, %d q heads, head_dim %d, bf16, local window %d, global window %d, causal, "
              "contiguous K/V; CUDA events, median of %d after %d warm-up runs\n",
              o.batch, o.num_q_heads, o.head_dim, o.local_window, o.global_window, o.reps, kWarmup);
  if (o.matmul_tflops > 0)
    std::printf("floor = useful FLOPs / bf16 matmul rate measured in this run (%.1f TFLOP/s)\n", o.matmul_tflops);
  std::printf("\n| kv heads | seq | time (ms) | useful TFLOP/s | floor (ms) | %% of matmul rate | rel err (sampled rows) |\n"
              "|---:|---:|---:|---:|---:|---:|---:|\n");
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  bool all_ok = true;
  CUevent start, stop;
  cuda::check(d.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  cuda::check(d.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  for (int hkv : o.num_kv_heads)
    for (int seq : o.seq_lens) {
      const int hq = o.num_q_heads, D = o.head_dim, total = o.batch * seq;
      std::vector<int64_t> q_shape = {total, hq, D}, k_shape = {total, hkv, D}, cu_shape = {o.batch + 1};
      // Host data, rounded to bf16 exactly (the reference reads the same values).
      const auto random_bf16 = [&](size_t n, std::vector<uint16_t>& bits) {
        bits.resize(n);
        for (auto& b : bits) b = half::float_to_bf16(dist(rng));
      };
      std::vector<uint16_t> q_bits, k_bits, v_bits;
      random_bf16(size_t(total) * hq * D, q_bits);
      random_bf16(size_t(total) * hkv * D, k_bits);
      random_bf16(size_t(total) * hkv * D, v_bits);
      std::vector<int> cu(o.batch + 1);
      for (int b = 0; b <= o.batch; ++b) cu[b] = b * seq;
      DeviceBuffer q(q_bits), k(k_bits), v(v_bits), cu_d(cu), out(q_bits.size() * 2);
      cuda::check(d.cuMemsetD8(out.ptr(), 0xff, out.bytes()), "memset(out poison)");
      PrefillOptions options;
      options.local_window = o.local_window;
      options.global_window = o.global_window;
      options.max_q_len = seq;
      options.config = o.config;
      const auto run = [&] {
        prefill(view(q, q_shape, bf16, o.device), view(k, k_shape, bf16, o.device), view(v, k_shape, bf16, o.device),
                view(cu_d, cu_shape, i32, o.device), view(cu_d, cu_shape, i32, o.device), view(out, q_shape, bf16, o.device),
                nullptr, options);
      };
      for (int i = 0; i < kWarmup; ++i) run();
      std::vector<float> times;
      for (int i = 0; i < o.reps; ++i) {
        cuda::check(d.cuEventRecord(start, nullptr), "cuEventRecord");
        run();
        cuda::check(d.cuEventRecord(stop, nullptr), "cuEventRecord");
        cuda::check(d.cuEventSynchronize(stop), "cuEventSynchronize");
        float ms = 0;
        cuda::check(d.cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
        times.push_back(ms);
      }
      std::sort(times.begin(), times.end());
      const double ms = times[times.size() / 2];
      const double flops = prefill_flops(std::vector<int>(o.batch, seq), std::vector<int>(o.batch, seq), hq, D,
                                         o.local_window, o.global_window, true);

      // Sampled rows of sequence 0 against the double-precision reference (heads 0 and hq - 1).
      const std::vector<uint16_t> got = out.download<uint16_t>();
      double err2 = 0, ref2 = 0;
      for (int s = 0; s < kSampledRows; ++s) {
        const int row = s == 0 ? 0 : s == 1 ? seq - 1 : int(rng() % seq);
        HostPrefill host;
        host.num_q_heads = hq;
        host.num_kv_heads = hkv;
        host.head_dim = D;
        host.local_window = o.local_window;
        host.global_window = o.global_window;
        host.scale = 1.0 / std::sqrt(double(D));
        // The row as the last query of the keys it can reach (shifted to start at 0 when only a window matters).
        const bool window_only = o.global_window == 0 && o.local_window > 0;
        const int first_key = window_only ? std::max(0, row - o.local_window + 1) : 0, kv_len = row - first_key + 1;
        host.cu_seqlens_q = {0, 1};
        host.cu_seqlens_k = {0, kv_len};
        host.q.resize(size_t(hq) * D);
        for (size_t i = 0; i < host.q.size(); ++i) host.q[i] = half::bf16_to_float(q_bits[size_t(row) * hq * D + i]);
        host.k.resize(size_t(kv_len) * hkv * D);
        host.v.resize(host.k.size());
        for (size_t i = 0; i < host.k.size(); ++i) {
          host.k[i] = half::bf16_to_float(k_bits[size_t(first_key) * hkv * D + i]);
          host.v[i] = half::bf16_to_float(v_bits[size_t(first_key) * hkv * D + i]);
        }
        const std::vector<double> ref = reference_prefill(host);
        for (int h : {0, hq - 1})
          for (int e = 0; e < D; ++e) {
            const double want = ref[size_t(h) * D + e];
            const double have = half::bf16_to_float(got[(size_t(row) * hq + h) * D + e]);
            err2 += std::isfinite(have) ? (have - want) * (have - want) : INFINITY;
            ref2 += want * want;
          }
      }
      const double rel_err = std::sqrt(err2 / std::max(ref2, 1e-30));
      const bool ok = rel_err <= 1e-2;
      all_ok &= ok;
      const double tflops = flops / (ms * 1e-3) / 1e12;
      if (o.matmul_tflops > 0) {
        const double floor_ms = flops / (o.matmul_tflops * 1e12) * 1e3;
        std::printf("| %d | %d | %.3f | %.1f | %.3f | %.0f%% | %.2e%s |\n", hkv, seq, ms, tflops, floor_ms,
                    100 * tflops / o.matmul_tflops, rel_err, ok ? "" : " FAIL");
      } else {
        std::printf("| %d | %d | %.3f | %.1f | - | - | %.2e%s |\n", hkv, seq, ms, tflops, rel_err, ok ? "" : " FAIL");
      }
    }
  d.cuEventDestroy(start);
  d.cuEventDestroy(stop);
  return all_ok ? 0 : 1;
}

}  // namespace swajit::cli
