#include "bench_decode.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "half.hpp"
#include "reference.hpp"
#include "swajit/swajit.hpp"
#include "utility_kernels.hpp"

namespace swajit::cli {
namespace {

constexpr double kL2Multiple = 4.0;     // rotate through at least this many L2s of distinct KV between calls
constexpr int kMaxReplicas = 64;
constexpr size_t kBandwidthProbeBytes = size_t(2) << 30;
constexpr int kBandwidthReps = 20;
constexpr int kElementBytes = 2;       // q, out, and unquantized K/V

struct Row {
  int batch, kv_len, q_seqlen;
  double us, floor_us, pct;
  double rel_err;
};

DLTensor tensor(void* data, DLDataType dtype, int device, std::vector<int64_t>& shape) {
  DLTensor t{};
  t.data = data;
  t.device = {kDLCUDA, device};
  t.ndim = int(shape.size());
  t.dtype = dtype;
  t.shape = shape.data();
  return t;
}

// Times one shape. Replicas (distinct q, out and KV pages) rotate so that no call finds its KV in L2.
Row bench_shape(const DecodeBenchOptions& o, const DeviceInfo& device, double read_bw, int batch, int kv_len, int qs,
                CUstream stream) {
  const cuda::Driver& d = cuda::driver();
  const DType dtype = parse_dtype(o.dtype);
  const DLDataType dl = dtype == DType::kBF16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 16, 1};
  const int P = o.page_size, hq = o.num_q_heads, hkv = o.num_kv_heads, D = o.head_dim;
  const KvQuant quant = parse_kv_quant(o.kv_quant);
  const int kv_element_bytes = quant == KvQuant::kNone ? kElementBytes : 1;
  // KV positions any query of a sequence can see: the window (plus the extra queries) and the sinks.
  const int first_visible = o.local_window > 0 ? std::max(0, kv_len - qs - o.local_window + 1) : 0;
  std::vector<int> logical_pages;
  for (int page = 0; page < (kv_len + P - 1) / P; ++page)
    if ((page + 1) * P > first_visible || page * P < o.global_window) logical_pages.push_back(page);
  const int visible_tokens = kv_len - first_visible + std::min(o.global_window, first_visible);
  const double kv_bytes = double(batch) * hkv * visible_tokens * D * kv_element_bytes * 2;
  const double qo_bytes = 2.0 * batch * qs * hq * D * kElementBytes;
  const int replicas = std::clamp(int(std::ceil(kL2Multiple * device.l2_bytes / kv_bytes)), 1, kMaxReplicas);

  const int max_pages = (kv_len + P - 1) / P;
  const int pages_per_replica = batch * int(logical_pages.size());
  const int64_t num_pages = int64_t(replicas) * pages_per_replica + 1;
  std::vector<int> physical(num_pages - 1);
  std::iota(physical.begin(), physical.end(), 1);
  std::mt19937_64 rng(kv_len * 131 + batch * 7 + qs);
  std::shuffle(physical.begin(), physical.end(), rng);  // scattered pages, as in a real cache
  // Pages outside the window are never read: they point at page 0.
  std::vector<int> tables(size_t(replicas) * batch * max_pages, 0);
  size_t next = 0;
  for (int r = 0; r < replicas; ++r)
    for (int b = 0; b < batch; ++b)
      for (int page : logical_pages) tables[(size_t(r) * batch + b) * max_pages + page] = physical[next++];

  const size_t page_elems = size_t(P) * hkv * D, qo_elems = size_t(batch) * qs * hq * D;
  DeviceBuffer k(num_pages * page_elems * kv_element_bytes), v(num_pages * page_elems * kv_element_bytes);
  DeviceBuffer q(replicas * qo_elems * kElementBytes), out(replicas * qo_elems * kElementBytes);
  DeviceBuffer table_d(tables), lens_d(std::vector<int>(batch, kv_len));
  // Per-channel dequant scales, different for every channel and head (8-bit caches only).
  std::vector<float> scales(size_t(hkv) * D);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = (1.f + float(i % 7) / 7.f) / (quant == KvQuant::kInt8 ? 127.f : 448.f);
  DeviceBuffer scale_d(scales);
  std::vector<int64_t> scale_shape = {hkv, D};
  DLTensor scale_view = tensor(scale_d.data(), {kDLFloat, 32, 1}, device.ordinal, scale_shape);
  if (quant == KvQuant::kNone) {
    fill_uniform(device, k.ptr(), num_pages * page_elems, 11, dtype, stream);
    fill_uniform(device, v.ptr(), num_pages * page_elems, 12, dtype, stream);
  } else {
    fill_random_bytes(device, k.ptr(), num_pages * page_elems, 11, quant == KvQuant::kFp8E4M3, stream);
    fill_random_bytes(device, v.ptr(), num_pages * page_elems, 12, quant == KvQuant::kFp8E4M3, stream);
  }
  const DLDataType kv_dl = quant == KvQuant::kNone ? dl : quant == KvQuant::kInt8 ? DLDataType{kDLInt, 8, 1} : DLDataType{kDLUInt, 8, 1};
  fill_uniform(device, q.ptr(), replicas * qo_elems, 13, dtype, stream);
  cuda::check(d.cuMemsetD8Async(out.ptr(), 0xff, out.bytes(), stream), "cuMemsetD8Async(poison out)");

  std::vector<int64_t> q_shape = {batch, qs, hq, D}, cache_shape = {num_pages, P, hkv, D};
  std::vector<int64_t> table_shape = {batch, max_pages}, lens_shape = {batch};
  DecodeOptions options;
  options.local_window = o.local_window;
  options.global_window = o.global_window;
  options.config = o.config;
  options.kv_quant = quant;
  if (quant != KvQuant::kNone) options.k_scale = options.v_scale = &scale_view;
  const auto call = [&](int r) {
    char* q_r = static_cast<char*>(q.data()) + r * qo_elems * kElementBytes;
    char* out_r = static_cast<char*>(out.data()) + r * qo_elems * kElementBytes;
    int* table_r = static_cast<int*>(table_d.data()) + size_t(r) * batch * max_pages;
    paged_decode(tensor(q_r, dl, device.ordinal, q_shape), tensor(k.data(), kv_dl, device.ordinal, cache_shape),
                 tensor(v.data(), kv_dl, device.ordinal, cache_shape), tensor(table_r, {kDLInt, 32, 1}, device.ordinal, table_shape),
                 tensor(lens_d.data(), {kDLInt, 32, 1}, device.ordinal, lens_shape), tensor(out_r, dl, device.ordinal, q_shape),
                 stream, options);
  };
  for (int r = 0; r < replicas; ++r) call(r);  // compile, allocate scratch, write every output once
  check_device_errors(device.ordinal, stream);

  CUgraph graph;
  CUgraphExec exec;
  cuda::check(d.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  for (int r = 0; r < replicas; ++r) call(r);
  cuda::check(d.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture");
  cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiate");
  const double ms = median_ms([&] { cuda::check(d.cuGraphLaunch(exec, stream), "cuGraphLaunch"); }, 5, o.reps, stream);
  d.cuGraphExecDestroy(exec);
  d.cuGraphDestroy(graph);

  Row row{batch, kv_len, qs, 0, 0, 0, -1};
  row.us = ms * 1e3 / replicas;
  row.floor_us = (kv_bytes + qo_bytes) / read_bw * 1e6;
  row.pct = 100.0 * row.floor_us / row.us;

  if (o.verify) {  // sequence 0 of replica 0 against the reference, on the same data
    const std::vector<uint16_t> q_host = q.download<uint16_t>(), out_host = out.download<uint16_t>();
    HostPagedDecode h;
    h.batch = 1; h.q_seqlen = qs; h.num_q_heads = hq; h.num_kv_heads = hkv; h.head_dim = D; h.page_size = P;
    h.layout = KvLayout::kNHD; h.local_window = o.local_window; h.global_window = o.global_window;
    h.scale = 1.0 / std::sqrt(double(D)); h.seq_lens = {kv_len}; h.max_pages_per_seq = max_pages;
    h.num_pages = int(logical_pages.size());
    h.block_table.assign(max_pages, 0);
    std::vector<uint8_t> page_buffer(page_elems * kv_element_bytes);
    // What element e of a stored page stands for.
    const auto stored_value = [&](size_t e) -> float {
      if (quant == KvQuant::kNone) {
        uint16_t bits;
        std::memcpy(&bits, &page_buffer[e * 2], 2);
        return half::to_float(bits, dtype);
      }
      const float scale = scales[e % (size_t(hkv) * D)];  // NHD: e = (slot * hkv + head) * D + d
      const uint8_t code = page_buffer[e];
      return scale * (quant == KvQuant::kInt8 ? float(int8_t(code)) : half::fp8_e4m3_to_float(code));
    };
    h.k.resize(h.num_pages * page_elems);
    h.v.resize(h.num_pages * page_elems);
    for (size_t i = 0; i < logical_pages.size(); ++i) {
      const int phys = tables[logical_pages[i]];
      h.block_table[logical_pages[i]] = int(i);
      for (auto [src, dst] : {std::pair{&k, &h.k}, std::pair{&v, &h.v}}) {
        cuda::check(d.cuMemcpyDtoH(page_buffer.data(), src->ptr() + size_t(phys) * page_elems * kv_element_bytes,
                                   page_elems * kv_element_bytes), "cuMemcpyDtoH(page)");
        for (size_t e = 0; e < page_elems; ++e) (*dst)[i * page_elems + e] = stored_value(e);
      }
    }
    const size_t seq_elems = size_t(qs) * hq * D;
    h.q.resize(seq_elems);
    for (size_t e = 0; e < seq_elems; ++e) h.q[e] = half::to_float(q_host[e], dtype);
    const std::vector<double> ref = reference_paged_decode(h);
    double err2 = 0, ref2 = 0;
    for (size_t e = 0; e < seq_elems; ++e) {
      const double got = half::to_float(out_host[e], dtype);
      err2 += (got - ref[e]) * (got - ref[e]);
      ref2 += ref[e] * ref[e];
    }
    row.rel_err = std::isfinite(err2) ? std::sqrt(err2 / ref2) : INFINITY;
  }
  return row;
}

}  // namespace

int run_decode_bench(const DecodeBenchOptions& o) {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  CUstream stream;
  cuda::check(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const double read_bw = measure_read_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  const double copy_bw = measure_copy_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  std::printf("device: %s (%s), %d SMs, L2 %d MiB\n", device.name.c_str(), device.arch().c_str(), device.sm_count,
              device.l2_bytes >> 20);
  std::printf("measured: read %.0f GB/s, copy (read+write) %.0f GB/s; floor = (KV bytes in window + q + out) / read bandwidth\n",
              read_bw / 1e9, copy_bw / 1e9);
  std::printf("paged decode: %d q heads, %d kv heads, head_dim %d, page %d, %s, KV %s, local window %d, global "
              "window %d, CUDA graph replay, median of %d\n\n", o.num_q_heads, o.num_kv_heads, o.head_dim, o.page_size,
              o.dtype.c_str(), o.kv_quant == "none" ? o.dtype.c_str() : o.kv_quant.c_str(), o.local_window,
              o.global_window, o.reps);
  std::printf("| batch | kv_len | q_seqlen | time (us) | floor (us) | %% of floor | rel err (seq 0) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  bool ok = true;
  for (int batch : o.batches)
    for (int kv_len : o.kv_lens)
      for (int qs : o.q_seqlens) {
        try {
          const Row r = bench_shape(o, device, read_bw, batch, kv_len, qs, stream);
          const bool verified = !o.verify || r.rel_err <= 1e-2;
          ok = ok && verified;
          std::printf("| %d | %d | %d | %.1f | %.1f | %.0f%% | %s |\n", r.batch, r.kv_len, r.q_seqlen, r.us,
                      r.floor_us, r.pct, o.verify ? (std::to_string(r.rel_err).substr(0, 8) + (verified ? "" : " FAIL")).c_str() : "-");
        } catch (const std::exception& e) {
          ok = false;
          std::printf("| %d | %d | %d | error: %s |\n", batch, kv_len, qs, e.what());
        }
        std::fflush(stdout);
      }
  d.cuStreamDestroy(stream);
  return ok ? 0 : 1;
}

}  // namespace swajit::cli
