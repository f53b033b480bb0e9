// Argument validation of paged_decode: every bad input gets a typed error naming the argument. Runs without a GPU
// (validation happens before the driver is touched).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "decode_plan.hpp"
#include "decode_schedule.h"
#include "check.hpp"
#include "heuristic.hpp"
#include "hopper_devices.hpp"
#include "kv_tensor_map.hpp"
#include "paged_decode_problem.hpp"
#include "prefill_problem.hpp"
#include "swajit/generator.hpp"
#include "swajit/swajit.hpp"

using namespace swajit;

namespace {

// Host-side stand-ins for device tensors: validation only looks at metadata (and at host-mapped seq_lens/tables).
struct Tensors {
  using Options = DecodeOptions;
  int batch = 2, qs = 2, hq = 8, hkv = 2, d = 128, pages = 10, page = 16, max_pages = 4;
  std::vector<uint16_t> q_mem, out_mem, k_mem, v_mem;
  std::vector<int> table_mem, lens_mem;
  std::vector<int64_t> q_shape, out_shape, k_shape, table_shape, lens_shape;
  DLTensor q{}, out{}, k{}, v{}, table{}, lens{};

  Tensors() {
    q_shape = {batch, qs, hq, d};
    out_shape = q_shape;
    k_shape = {pages, page, hkv, d};
    table_shape = {batch, max_pages};
    lens_shape = {batch};
    q_mem.resize(batch * qs * hq * d + 64);
    out_mem.resize(q_mem.size());
    k_mem.resize(size_t(pages) * page * hkv * d + 64);
    v_mem.resize(k_mem.size());
    table_mem = {0, 1, 2, 3, 4, 5, 6, 7};
    lens_mem = {40, 2};
    q = make(aligned(q_mem), {kDLBfloat, 16, 1}, q_shape);
    out = make(aligned(out_mem), {kDLBfloat, 16, 1}, out_shape);
    k = make(aligned(k_mem), {kDLBfloat, 16, 1}, k_shape);
    v = make(aligned(v_mem), {kDLBfloat, 16, 1}, k_shape);
    table = make(table_mem.data(), {kDLInt, 32, 1}, table_shape);
    lens = make(lens_mem.data(), {kDLInt, 32, 1}, lens_shape);
  }
  static void* aligned(std::vector<uint16_t>& mem) {
    auto address = reinterpret_cast<uintptr_t>(mem.data());
    return reinterpret_cast<void*>((address + 15) / 16 * 16);
  }
  static DLTensor make(void* data, DLDataType dtype, std::vector<int64_t>& shape) {
    DLTensor t{};
    t.data = data;
    t.device = {kDLCUDA, 0};
    t.ndim = int(shape.size());
    t.dtype = dtype;
    t.shape = shape.data();
    return t;
  }
  DecodeProblem describe(const DecodeOptions& o = {}) { return describe_paged_decode(q, k, v, table, lens, out, o); }
};

// Dequant scales for 8-bit KV tests: float32 per channel [num_kv_heads, head_dim], per tensor [1], and a wrong shape
// [num_kv_heads, wrong_head_dim].
struct ScaleTensors {
  std::vector<float> mem;
  std::vector<int64_t> channel_shape, tensor_shape = {1}, bad_shape;
  DLTensor per_channel{}, per_tensor{}, wrong{};
  ScaleTensors(int num_kv_heads, int head_dim, int wrong_head_dim)
      : mem(size_t(num_kv_heads) * head_dim, 0.01f), channel_shape{num_kv_heads, head_dim},
        bad_shape{num_kv_heads, wrong_head_dim} {
    per_channel = Tensors::make(mem.data(), {kDLFloat, 32, 1}, channel_shape);
    per_tensor = Tensors::make(mem.data(), {kDLFloat, 32, 1}, tensor_shape);
    wrong = Tensors::make(mem.data(), {kDLFloat, 32, 1}, bad_shape);
  }
};

// The error's code, and that its message contains `needle`.
// `t.describe(options)` fails with `code` and a message containing `needle` (decode and prefill fixtures alike).
template <class Fixture>
void expect_error(Fixture& t, const std::string& needle, ErrorCode code = ErrorCode::kInvalidArgument,
                  const typename Fixture::Options& options = {}) {
  try {
    t.describe(options);
    FAIL("accepted invalid input; expected an error mentioning: " << needle);
  } catch (const Error& e) {
    CHECK(e.code() == code);
    const std::string message = e.what();
    INFO("message: " << message);
    CHECK(message.find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("a valid call derives the spec") {
  Tensors t;
  DecodeOptions o;
  o.local_window = 4096;
  o.global_window = 4;
  const DecodeProblem p = t.describe(o);
  CHECK(p.spec.key() == "paged_decode_bf16_d128_p16_nhd_q2_g4_local_global");
  CHECK(p.batch == 2);
  CHECK(p.num_kv_heads == 2);
  CHECK(p.max_kv_len == 64);
  CHECK(p.params.k_stride_page == 16 * 2 * 128);
  CHECK(p.params.k_stride_token == 2 * 128);
  CHECK(p.params.k_stride_head == 128);
  CHECK(p.params.scale_log2 == doctest::Approx(1.4426950408889634 / std::sqrt(128.0)));
  o.kv_layout = KvLayout::kHND;
  t.k_shape = {t.pages, t.hkv, t.page, t.d};
  const DecodeProblem h = t.describe(o);
  CHECK(h.spec.kv_layout == KvLayout::kHND);
  CHECK(h.params.k_stride_token == 128);
  CHECK(h.params.k_stride_head == 16 * 128);
}

// What plans the grid (paged_decode.cpp lengths_uniform: equal lengths take the direct kernel): host-readable seq_lens,
// else DecodeOptions::host_seq_lens, else nothing (device lengths).
TEST_CASE("the lengths the host knows: host-readable seq_lens, else DecodeOptions::host_seq_lens") {
  Tensors t;
  CHECK(t.describe().host_seq_lens.empty());
  const std::vector<int> told = {40, 2};
  DecodeOptions o;
  o.host_seq_lens = told.data();
  CHECK(t.describe(o).host_seq_lens == told);
  t.lens.device = t.table.device = {kDLCUDAHost, 0};  // mapped host memory: read on the host, validated there
  t.lens_mem = {33, 0};
  CHECK(t.describe().host_seq_lens == t.lens_mem);
  CHECK(t.describe(o).host_seq_lens == t.lens_mem);  // the tensor itself, not what the options say
}

TEST_CASE("3-D q means q_seqlen 1; fp16 is accepted") {
  Tensors t;
  t.q_shape = {2, 8, 128};
  t.out_shape = {2, 8, 128};
  t.q.ndim = t.out.ndim = 3;
  for (DLTensor* x : {&t.q, &t.out, &t.k, &t.v}) x->dtype = {kDLFloat, 16, 1};
  const DecodeProblem p = t.describe();
  CHECK(p.spec.q_seqlen == 1);
  CHECK(p.spec.dtype == DType::kFP16);
}

TEST_CASE("shapes, dtypes and ranges are checked with the argument named") {
  { Tensors t; t.q.ndim = 2; expect_error(t, "q must be 4-D"); }
  { Tensors t; t.q.dtype = {kDLFloat, 32, 1}; expect_error(t, "q must have dtype bf16 or fp16"); }
  { Tensors t; t.k.dtype = {kDLFloat, 16, 1}; expect_error(t, "k_cache must have dtype bf16"); }
  { Tensors t; t.q_shape[3] = t.out_shape[3] = 96; t.k_shape[3] = 96; expect_error(t, "head_dim = 96", ErrorCode::kUnsupported); }
  { Tensors t; t.out_shape[2] = 4; expect_error(t, "out must have the shape of q"); }
  { Tensors t; t.k_shape[1] = 300; expect_error(t, "page_size (dimension 1) = 300 is outside [1, 256]"); }
  { Tensors t; t.k_shape[1] = 0; expect_error(t, "page_size (dimension 1) = 0"); }
  { Tensors t; t.k_shape[2] = 3; expect_error(t, "num_q_heads = 8 must be a multiple of num_kv_heads = 3"); }
  { Tensors t; t.q_shape[2] = t.out_shape[2] = 64; t.k_shape[2] = 2; expect_error(t, "GQA group num_q_heads / num_kv_heads = 32 is outside [1, 16]"); }
  { Tensors t; t.q_shape[1] = t.out_shape[1] = 9; expect_error(t, "q dimension 1 (q_seqlen) = 9 is outside [1, 8]"); }
  { Tensors t; t.k_shape[3] = 64; expect_error(t, "k_cache head_dim (dimension 3) = 64 must equal"); }
  { Tensors t; std::vector<int64_t> other = {10, 16, 2, 64}; t.v.shape = other.data(); expect_error(t, "v_cache must have the shape of k_cache"); }
  { Tensors t; t.table.dtype = {kDLInt, 64, 1}; expect_error(t, "block_table must have dtype int32"); }
  { Tensors t; t.table_shape[0] = 3; expect_error(t, "block_table dimension 0 = 3 must equal batch = 2"); }
  { Tensors t; t.lens_shape[0] = 1; expect_error(t, "seq_lens dimension 0 = 1 must equal batch = 2"); }
  {
    Tensors t;
    t.lens_shape = {2, 1};  // a 2-D shape array: the tensor's ndim never claims more entries than it has
    t.lens.shape = t.lens_shape.data();
    t.lens.ndim = 2;
    expect_error(t, "seq_lens must be 1-D");
  }
}

TEST_CASE("devices, strides and alignment are checked") {
  { Tensors t; t.q.device = {kDLCPU, 0}; expect_error(t, "out is on device type 'cuda' but q is on 'cpu'"); }
  { Tensors t; t.q.device = {kDLROCM, 0}; expect_error(t, "q is on device type 'DLDeviceType 10'; supported: 'cpu', 'cuda', 'cuda_managed'"); }
  { Tensors t; t.k.device = {kDLCUDA, 1}; expect_error(t, "k_cache is on cuda:1 but q is on cuda:0"); }
  { Tensors t; t.table.device = {kDLCPU, 0}; expect_error(t, "block_table is on device type 'cpu'"); }
  {
    Tensors t;
    std::vector<int64_t> strides = {2 * 8 * 256, 8 * 256, 256, 2};
    t.q.strides = strides.data();
    expect_error(t, "q must be contiguous in its last dimension");
  }
  {
    Tensors t;
    std::vector<int64_t> strides = {2 * 8 * 132, 8 * 132, 132, 1};
    t.out.strides = strides.data();
    expect_error(t, "out stride[2] = 132 elements must be a multiple of 8");
  }
  {
    Tensors t;
    std::vector<int64_t> strides = {-4096, 256, 128, 1};
    t.k.strides = strides.data();
    expect_error(t, "k_cache stride[0] = -4096 is negative");
  }
  { Tensors t; t.v.byte_offset = 2; expect_error(t, "v_cache data + byte_offset must be 16-byte aligned"); }
  {
    Tensors t;  // padded, permuted strides are fine
    std::vector<int64_t> q_strides = {2 * 8 * 136 + 8, 8 * 136, 136, 1}, out_strides = {8 * 128, 2 * 8 * 128, 128, 1};
    t.q.strides = q_strides.data();
    t.out.strides = out_strides.data();
    const DecodeProblem p = t.describe();
    CHECK(p.params.q_stride_head == 136);
    CHECK(p.params.out_stride_batch == 8 * 128);
    CHECK(p.params.out_stride_token == 2 * 8 * 128);
  }
}

TEST_CASE("options are checked") {
  { Tensors t; DecodeOptions o; o.global_window = -1; expect_error(t, "global_window = -1 must be >= 0", ErrorCode::kInvalidArgument, o); }
  { Tensors t; DecodeOptions o; o.softmax_scale = NAN; expect_error(t, "softmax_scale", ErrorCode::kInvalidArgument, o); }
  { Tensors t; DecodeOptions o; o.softmax_scale = -0.5f; expect_error(t, "must be finite and > 0", ErrorCode::kInvalidArgument, o); }
  { Tensors t; DecodeOptions o; o.local_window = -5; CHECK(t.describe(o).spec.local_window == false); }
  std::vector<float> sinks(16);
  std::vector<int64_t> sink_shape = {8};
  DLTensor sink = Tensors::make(sinks.data(), {kDLFloat, 32, 1}, sink_shape);
  {
    Tensors t; DecodeOptions o; o.sink_logits = &sink; o.gqa = GqaMapping::kInterleaved;
    const DecodeProblem p = t.describe(o);
    CHECK(p.spec.key() == "paged_decode_bf16_d128_p16_nhd_q2_g4_full_attnsink_gqai");
    CHECK(p.params.sink_logits == sinks.data());
  }
  {
    Tensors t; DecodeOptions o; o.sink_logits = &sink;
    sink_shape[0] = 7;
    expect_error(t, "sink_logits has 7 entries; it needs one per q head: 8", ErrorCode::kInvalidArgument, o);
    sink_shape[0] = 8;
    sink.dtype = {kDLBfloat, 16, 1};
    expect_error(t, "sink_logits must have dtype float32", ErrorCode::kInvalidArgument, o);
    sink.dtype = {kDLFloat, 32, 1};
    sink.device = {kDLCPU, 0};
    expect_error(t, "sink_logits is on device type 'cpu'", ErrorCode::kInvalidArgument, o);
  }
}

TEST_CASE("8-bit KV caches: dtypes, scale shapes and pairing are checked") {
  ScaleTensors scales(2, 128, 64);
  DLTensor &per_channel = scales.per_channel, &per_tensor = scales.per_tensor, &wrong = scales.wrong;
  const auto int8_tensors = [](Tensors& t) { t.k.dtype = t.v.dtype = {kDLInt, 8, 1}; };
  {
    Tensors t; int8_tensors(t);
    DecodeOptions o; o.kv_quant = KvQuant::kInt8; o.k_scale = &per_channel; o.v_scale = &per_tensor;
    const DecodeProblem p = t.describe(o);
    CHECK(p.spec.key() == "paged_decode_bf16_d128_p16_nhd_q2_g4_full_kvint8");
    CHECK(p.params.k_scale_stride_head == 128);
    CHECK(p.params.k_scale_stride_channel == 1);
    CHECK(p.params.v_scale_stride_head == 0);  // per tensor: read through zero strides
    CHECK(p.params.v_scale_stride_channel == 0);
  }
  { Tensors t; DecodeOptions o; o.kv_quant = KvQuant::kInt8; o.k_scale = o.v_scale = &per_channel;
    expect_error(t, "k_cache must have dtype int8", ErrorCode::kInvalidArgument, o); }
  { Tensors t; int8_tensors(t); DecodeOptions o; o.kv_quant = KvQuant::kFp8E4M3; o.k_scale = o.v_scale = &per_channel;
    expect_error(t, "k_cache must have dtype uint8 holding fp8 e4m3 bytes", ErrorCode::kInvalidArgument, o); }
  { Tensors t; int8_tensors(t); t.v.dtype = {kDLBfloat, 16, 1}; DecodeOptions o; o.kv_quant = KvQuant::kInt8;
    o.k_scale = o.v_scale = &per_channel; expect_error(t, "v_cache must have dtype int8", ErrorCode::kInvalidArgument, o); }
  { Tensors t; int8_tensors(t); DecodeOptions o; o.kv_quant = KvQuant::kInt8; o.v_scale = &per_channel;
    expect_error(t, "k_scale is required with an 8-bit KV cache", ErrorCode::kInvalidArgument, o); }
  { Tensors t; int8_tensors(t); DecodeOptions o; o.kv_quant = KvQuant::kInt8; o.k_scale = &per_channel; o.v_scale = &wrong;
    expect_error(t, "v_scale must be float32 [num_kv_heads, head_dim] = [2, 128] or a single value, got [2, 64]",
                 ErrorCode::kInvalidArgument, o); }
  { Tensors t; DecodeOptions o; o.k_scale = &per_channel;
    expect_error(t, "only used with an 8-bit KV cache", ErrorCode::kInvalidArgument, o); }
  {
    Tensors t; int8_tensors(t);  // 8-bit rows need strides in multiples of 16 elements
    std::vector<int64_t> strides = {16 * 2 * 136, 2 * 136, 136, 1};
    t.k.strides = strides.data();
    DecodeOptions o; o.kv_quant = KvQuant::kInt8; o.k_scale = o.v_scale = &per_channel;
    expect_error(t, "k_cache stride[2] = 136 elements must be a multiple of 16", ErrorCode::kInvalidArgument, o);
  }
}

TEST_CASE("host-mapped seq_lens and block_table values are validated before launch") {
  const auto host_mapped = [](Tensors& t) {
    t.table.device = {kDLCUDAHost, 0};
    t.lens.device = {kDLCUDAHost, 0};
  };
  { Tensors t; host_mapped(t); CHECK(t.describe().host_metadata); }
  { Tensors t; host_mapped(t); t.lens_mem[1] = 1; expect_error(t, "seq_lens[1] = 1 must be 0 or >= q_seqlen = 2"); }
  { Tensors t; host_mapped(t); t.lens_mem[0] = -3; expect_error(t, "seq_lens[0] = -3"); }
  { Tensors t; host_mapped(t); t.lens_mem[0] = 65; expect_error(t, "seq_lens[0] = 65 exceeds block_table capacity 64"); }
  { Tensors t; host_mapped(t); t.table_mem[2] = 10; expect_error(t, "block_table[0, 2] = 10 is outside [0, 9]"); }
  { Tensors t; host_mapped(t); t.table_mem[3] = 99; CHECK_NOTHROW(t.describe()); }  // page 3 is past seq 0's length
  { Tensors t; host_mapped(t); t.lens_mem[1] = 0; CHECK_NOTHROW(t.describe()); }     // empty sequence: zeros
}

TEST_CASE("without a GPU a valid call reports no device instead of crashing") {
  if (!cuda_devices().empty()) return;  // the GPU suite covers launches
  Tensors t;
  try {
    paged_decode(t.q, t.k, t.v, t.table, t.lens, t.out, nullptr);
    FAIL("paged_decode returned without a GPU");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kNoDevice);
  }
}

namespace {
// A contiguous varlen prefill of two sequences (q lengths 3 and 5, KV lengths 4 and 5) with host-mapped offsets.
struct PrefillTensors {
  using Options = PrefillOptions;
  int total_q = 8, total_kv = 9, hq = 8, hkv = 2, d = 64;
  std::vector<uint16_t> q_mem, out_mem, k_mem;
  std::vector<int> cu_q_mem = {0, 3, 8}, cu_k_mem = {0, 4, 9};
  std::vector<int64_t> q_shape, k_shape, cu_q_shape = {3}, cu_k_shape = {3};
  DLTensor q{}, out{}, k{}, v{}, cu_q{}, cu_k{};
  explicit PrefillTensors(int head_dim = 64) : d(head_dim) {
    q_shape = {total_q, hq, d};
    k_shape = {total_kv, hkv, d};
    q_mem.resize(size_t(total_q) * hq * d + 64);
    out_mem.resize(q_mem.size());
    k_mem.resize(size_t(total_kv) * hkv * d + 64);
    q = Tensors::make(Tensors::aligned(q_mem), {kDLBfloat, 16, 1}, q_shape);
    out = Tensors::make(Tensors::aligned(out_mem), {kDLBfloat, 16, 1}, q_shape);
    k = v = Tensors::make(Tensors::aligned(k_mem), {kDLBfloat, 16, 1}, k_shape);
    cu_q = Tensors::make(cu_q_mem.data(), {kDLInt, 32, 1}, cu_q_shape);
    cu_k = Tensors::make(cu_k_mem.data(), {kDLInt, 32, 1}, cu_k_shape);
    cu_q.device = cu_k.device = {kDLCUDAHost, 0};
  }
  PrefillProblem describe(const PrefillOptions& o = {}) {
    return describe_prefill(q, k, v, &cu_k, nullptr, nullptr, cu_q, out, o);
  }
};

}  // namespace

TEST_CASE("prefill: a valid call derives the spec and the exact grid from host metadata") {
  PrefillTensors t;
  PrefillOptions o;
  o.local_window = 4096;
  o.global_window = 4;
  const PrefillProblem p = t.describe(o);
  CHECK(p.spec.key() == "prefill_bf16_d64_contig_g4_local_global");
  CHECK(p.batch == 2);
  CHECK(p.max_q_len == 5);
  CHECK(p.params.total_kv == 9);
  // The persistent grid's item order: snake order where the causal ramp is much of the work (head_dim 64, 128)
  PrefillConfig persistent{128, 128, 2, 1, true, 1, 2};
  persistent.tma = persistent.persistent = true;
  CHECK(with_item_order(p, persistent).snake_order);  // head_dim 64 as 128 (run B3: 1.04x at seq 8192)
  CHECK_FALSE(with_item_order(p, persistent).dynamic_items);  // not measured at head_dim 64
  PrefillTensors t128(128);
  PrefillProblem d128 = t128.describe(o);
  // head_dim 128: dynamic items and the TMA store instead (session 8 run B2: 1.04-1.09x at seq 4096 and 8192)
  const auto ordered = [&](const PrefillConfig& c) { return with_item_order(d128, c); };
  CHECK((ordered(persistent).dynamic_items && ordered(persistent).tma_store && !ordered(persistent).snake_order));
  d128.max_q_len = 8192;
  CHECK((ordered(persistent).dynamic_items && ordered(persistent).tma_store));  // twice the window
  d128.max_q_len = 8193;
  CHECK_FALSE((ordered(persistent).snake_order || ordered(persistent).dynamic_items || ordered(persistent).tma_store));
  d128.params.local_window = 0;
  CHECK(ordered(persistent).dynamic_items);  // no local window: all ramp
  PrefillConfig one_item_a_block = persistent;
  one_item_a_block.persistent = false;
  CHECK_FALSE((ordered(one_item_a_block).snake_order || ordered(one_item_a_block).dynamic_items ||
               ordered(one_item_a_block).tma_store));
  o.causal = false;
  o.gqa = GqaMapping::kInterleaved;
  CHECK(t.describe(o).spec.key() == "prefill_bf16_d64_contig_g4_local_global_noncausal_gqai");
}

namespace {
// What the prefill heuristic reads of an H200 (sm_90a): shared memory and registers.
DeviceInfo h200_limits() {
  DeviceInfo h200;
  h200.cc_major = 9;
  h200.max_shared_per_block_optin = 227 * 1024;
  h200.max_shared_per_sm = 228 * 1024;
  h200.max_registers_per_block = 64 * 1024;
  return h200;
}
}  // namespace

// Head sections: the kv heads whose K/V windows (window 4096, 2 MB a kv head at head_dim 128) fit half of the L2.
TEST_CASE("prefill: the persistent grid's head sections keep the K/V windows they share in half of L2") {
  DeviceInfo h200 = h200_limits();
  h200.l2_bytes = 60 << 20;
  PrefillTensors t(128);
  PrefillOptions o;
  o.local_window = 4096;
  PrefillProblem p = t.describe(o);
  PrefillConfig persistent{128, 128, 2, 1, true, 1, 2};
  persistent.tma = persistent.persistent = true;
  p.num_q_heads = 32;
  p.params.total_kv = 16384;
  p.spec.group = 1;  // 32 kv heads: 64 MB of windows, 8 heads' (16 MB) fit 30 MB
  CHECK(heads_per_section(p, persistent, h200) == 8);
  p.spec.group = 4;  // 8 kv heads: 16 MB, all of them
  CHECK(heads_per_section(p, persistent, h200) == 32);
  p.spec.group = 1;
  PrefillConfig snake = persistent;
  snake.snake_order = true;  // the causal ramp's rows keep every head at once
  CHECK(heads_per_section(p, snake, h200) == 32);
  PrefillConfig one_item_a_block = persistent;
  one_item_a_block.persistent = false;
  CHECK(heads_per_section(p, one_item_a_block, h200) == 32);
  p.spec.gqa = GqaMapping::kInterleaved;  // a section's q heads would touch every kv head
  CHECK(heads_per_section(p, persistent, h200) == 32);
  p.spec.gqa = GqaMapping::kGrouped;
  p.params.local_window = 0;
  CHECK(heads_per_section(p, persistent, h200) == 32);
  p.params.local_window = 1 << 20;
  p.params.total_kv = 9;  // the window is at most the cache: 9 tokens, all heads
  CHECK(heads_per_section(p, persistent, h200) == 32);
  p.params.total_kv = 1 << 20;  // one kv head's window alone overflows: a section of one group
  CHECK(heads_per_section(p, persistent, h200) == 1);
}

// The H200 default (head_dim 128): FA3's tile with TMA, S(t+1) before softmax(t) and a persistent grid where the
// pages let TMA boxes fill it, the 64-token TMA tile where only that fits, the row-gather producer where TMA cannot read the cache at all;
// 8-bit K/V: the same TMA tiles (widened in shared memory, fp16 MMAs with bf16 q; the persistent one with Q.K^T from the
// stored K tiles), row gathers where TMA cannot read it.
TEST_CASE("prefill: the head_dim 128 heuristic on sm_90a by page size and K/V storage") {
  const DeviceInfo h200 = h200_limits();
  const auto heuristic = [&](const char* key) { return heuristic_prefill_config(KernelSpec::from_key(key), h200).key(); };
  // 16-bit K/V: each row's max and sum in 4 chains (session 8 run B2)
  CHECK(heuristic("prefill_bf16_d128_contig_g4_local") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_ch");
  // paged: the producer at 40 registers (the consumers' block_table scan spills less at 232)
  CHECK(heuristic("prefill_bf16_d128_p16_nhd_g4_local") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_ch_pr40");  // 8 pages a tile
  CHECK(heuristic("prefill_bf16_d128_p256_hnd_g4_local") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_ch_pr40");  // half a page
  CHECK(heuristic("prefill_bf16_d128_p192_nhd_g4_local") == "bm192_bn64_st3_mt1_wg_ws1_tma");  // 128 fits no box grid
  CHECK(heuristic("prefill_bf16_d128_p7_nhd_g4_local") == "bm192_bn64_st3_mt1_wg_ws1");        // no TMA box fits
  CHECK(heuristic("prefill_bf16_d128_contig_g4_local_kvint8") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_sk");
  CHECK(heuristic("prefill_bf16_d128_p16_nhd_g4_local_kvfp8") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt_f16_sk");
  CHECK(heuristic("prefill_fp16_d128_contig_g4_local_kvint8") == "bm128_bn128_st2_mt1_wg_ws2_tma_pt");  // fp16 MMAs already
  CHECK(heuristic("prefill_bf16_d128_p7_nhd_g4_local_kvint8") == "bm192_bn64_st3_mt1_wg_ws1");  // the producer widens gathered rows
  // head_dim 64: FA3's 192-row tile where TMA applies, else the wgmma config of two blocks per SM
  CHECK(heuristic("prefill_bf16_d64_contig_g4_local") == "bm192_bn128_st2_mt1_wg_ws1_tma_pt");
  CHECK(heuristic("prefill_bf16_d64_p16_nhd_g4_local") == "bm192_bn128_st2_mt1_wg_ws1_tma_pt");
  CHECK(heuristic("prefill_bf16_d64_p7_nhd_g4_local") == "bm128_bn64_st2_mt1_wg_oc2");
  CHECK(heuristic("prefill_bf16_d64_contig_g4_local_kvint8") == "bm128_bn64_st2_mt1_wg_oc2");
  // head_dim 256: two consumer warpgroups on 64-token TMA tiles where TMA applies, else 64-row wgmma blocks
  CHECK(heuristic("prefill_bf16_d256_contig_g4_local") == "bm128_bn64_st2_mt1_wg_ws2_tma");
  CHECK(heuristic("prefill_bf16_d256_p16_nhd_g4_local") == "bm128_bn64_st2_mt1_wg_ws2_tma");
  CHECK(heuristic("prefill_bf16_d256_p100_nhd_g4_local") == "bm64_bn64_st2_mt1_wg");
  CHECK(heuristic("prefill_bf16_d256_contig_g4_local_kvint8") == "bm64_bn64_st2_mt1_wg");
  const KernelSpec int8 = KernelSpec::from_key("prefill_bf16_d128_contig_g4_local_kvint8");
  CHECK(prefill_geometry(int8, heuristic_prefill_config(int8, h200)).shared_bytes <= h200.max_shared_per_block_optin);
}

// A call whose K/V layout TMA cannot read runs the row-gather config instead of failing (a forced tma config on it
// is refused when the call is planned, naming what TMA needs).
TEST_CASE("prefill: the default config drops TMA where the call's K/V layout does not suit it") {
  const DeviceInfo h200 = h200_limits();
  PrefillTensors t(128);
  PrefillOptions o;
  o.tuning = TuningPolicy::kHeuristic;
  const PrefillProblem suitable = t.describe(o);
  CHECK(tma_layout_problem(suitable).empty());
  const PrefillConfig tma = choose_prefill_config(suitable, o, h200, nullptr);
  CHECK(tma.tma);
  CHECK(tma == with_item_order(suitable, heuristic_prefill_config(suitable.spec, h200)));
  CHECK(tma.dynamic_items);  // 5 queries, no local window: one causal triangle
  std::vector<int64_t> tokens_inside_heads = {t.d, int64_t(t.total_kv) * t.d, 1};  // v HND-ordered, k NHD
  t.v.strides = tokens_inside_heads.data();
  const PrefillProblem mixed = t.describe(o);
  CHECK(tma_layout_problem(mixed).find("same order of the head and token strides") != std::string::npos);
  const PrefillConfig gathers = choose_prefill_config(mixed, o, h200, nullptr);
  CHECK(!gathers.tma);
  CHECK(gathers == heuristic_prefill_config(mixed.spec, h200, /*tma_layout_ok=*/false));
  CHECK(gathers.warp_specialize == 1);  // the row-gather producer measured before TMA
  o.config = tma;  // forced: refused when the call is planned, in tma_layout_problem's words
  CHECK_THROWS_WITH_AS(choose_prefill_config(mixed, o, h200, nullptr), doctest::Contains("same order of the head and token strides"), Error);
  CHECK_THROWS_WITH_AS(validate_prefill_config_for_call(tma, mixed), doctest::Contains("use tma = false"), Error);
  CHECK_NOTHROW(validate_prefill_config_for_call(gathers, mixed));
  CHECK(choose_prefill_config(suitable, o, h200, nullptr) == tma);  // where TMA reads the K/V it runs as forced
  PrefillConfig unfit = tma;  // a config the spec cannot take is refused at plan time as well
  unfit.persistent = unfit.tma = false;
  unfit.snake_order = true;
  o.config = unfit;
  CHECK_THROWS_WITH_AS(choose_prefill_config(suitable, o, h200, nullptr), doctest::Contains("snake_order = true needs persistent"), Error);
}

TEST_CASE("K/V tensor maps: what the TMA engine cannot read is named (prefill tma, decode producer 4)") {
  alignas(16) static uint16_t cache[64];
  KvTensorView k;
  k.base = cache, k.stride_page = 16 * 2 * 128, k.stride_token = 2 * 128, k.stride_head = 128;  // NHD, 2 heads, d128
  k.head_dim = 128, k.num_kv_heads = 2, k.tokens_per_page = 16, k.pages = 4;
  KvTensorView v = k;
  CHECK(kv_tensor_map_problem(k, v, false).empty());
  v.stride_token = 128, v.stride_head = 16 * 128;  // HND beside NHD
  CHECK(kv_tensor_map_problem(k, v, false).find("same order") != std::string::npos);
  v = k;
  v.stride_page = 16 * 2 * 128 + 4;  // 8 bytes past a multiple of 16
  CHECK(kv_tensor_map_problem(k, v, false).find("multiples of 16 bytes") != std::string::npos);
  CHECK(kv_tensor_map_problem(k, v, true).empty());  // contiguous K/V: no page stride
  v = k;
  v.base = cache + 1;  // 2 bytes off
  CHECK(kv_tensor_map_problem(k, v, false).find("16-byte aligned") != std::string::npos);
  v = k;
  v.element_bytes = 1, v.stride_head = 8;  // 8-bit: 8 bytes
  CHECK(!kv_tensor_map_problem(k, v, false).empty());
}

TEST_CASE("prefill: 8-bit K/V as in decode: dtypes, scale shapes and pairing are checked") {
  ScaleTensors scales(2, 64, 128);
  DLTensor &per_channel = scales.per_channel, &per_tensor = scales.per_tensor, &wrong = scales.wrong;
  const auto int8_kv = [](PrefillTensors& t) { t.k.dtype = t.v.dtype = {kDLInt, 8, 1}; };
  const auto quantized = [&](KvQuant quant) {
    PrefillOptions o;
    o.kv_quant = quant;
    o.k_scale = &per_channel;
    o.v_scale = &per_tensor;
    return o;
  };
  {
    PrefillTensors t; int8_kv(t);
    const PrefillProblem p = t.describe(quantized(KvQuant::kInt8));
    CHECK(p.spec.key() == "prefill_bf16_d64_contig_g4_full_kvint8");
    CHECK(p.params.k_scale_stride_head == 64);
    CHECK(p.params.k_scale_stride_channel == 1);
    CHECK(p.params.v_scale_stride_head == 0);  // per tensor: read through zero strides
    CHECK(p.params.v_scale_stride_channel == 0);
    CHECK(p.params.k_stride_token == 2 * 64);  // strides in elements of the 8-bit K/V
  }
  {
    PrefillTensors t; t.k.dtype = t.v.dtype = {kDLUInt, 8, 1};
    for (DLTensor* x : {&t.q, &t.out}) x->dtype = {kDLFloat, 16, 1};  // fp16 q with fp8 K/V, as in decode
    CHECK(t.describe(quantized(KvQuant::kFp8E4M3)).spec.key() == "prefill_fp16_d64_contig_g4_full_kvfp8");
  }
  { PrefillTensors t; int8_kv(t); expect_error(t, "k holds 8-bit values but kv_quant = none: K/V must be bf16 like q"); }
  { PrefillTensors t; expect_error(t, "k must have dtype int8", ErrorCode::kInvalidArgument, quantized(KvQuant::kInt8)); }
  { PrefillTensors t; int8_kv(t);
    expect_error(t, "k must have dtype uint8 holding fp8 e4m3 bytes", ErrorCode::kInvalidArgument, quantized(KvQuant::kFp8E4M3)); }
  { PrefillTensors t; int8_kv(t); t.v.dtype = {kDLUInt, 8, 1};
    expect_error(t, "v must have dtype int8", ErrorCode::kInvalidArgument, quantized(KvQuant::kInt8)); }
  { PrefillTensors t; int8_kv(t); t.q.dtype = t.out.dtype = {kDLInt, 8, 1};
    expect_error(t, "q must have dtype bf16 or fp16", ErrorCode::kInvalidArgument, quantized(KvQuant::kInt8)); }
  { PrefillTensors t; int8_kv(t); PrefillOptions o = quantized(KvQuant::kInt8); o.k_scale = nullptr;
    expect_error(t, "k_scale is required with an 8-bit KV cache: float32 [num_kv_heads, head_dim] = [2, 64] or a single value",
                 ErrorCode::kInvalidArgument, o); }
  { PrefillTensors t; int8_kv(t); PrefillOptions o = quantized(KvQuant::kInt8); o.v_scale = &wrong;
    expect_error(t, "v_scale must be float32 [num_kv_heads, head_dim] = [2, 64] or a single value, got [2, 128]",
                 ErrorCode::kInvalidArgument, o); }
  {
    PrefillTensors t; int8_kv(t); PrefillOptions o = quantized(KvQuant::kInt8);
    DLTensor bf16_scale = per_channel;
    bf16_scale.dtype = {kDLBfloat, 16, 1};
    o.k_scale = &bf16_scale;
    expect_error(t, "k_scale must have dtype float32", ErrorCode::kInvalidArgument, o);
    DLTensor host_scale = per_channel;
    host_scale.device = {kDLCPU, 0};
    o.k_scale = &host_scale;
    expect_error(t, "k_scale is on device type 'cpu'", ErrorCode::kInvalidArgument, o);
  }
  { PrefillTensors t; PrefillOptions o; o.v_scale = &per_channel;
    expect_error(t, "only used with an 8-bit KV cache (set PrefillOptions::kv_quant)", ErrorCode::kInvalidArgument, o); }
  {
    PrefillTensors t; int8_kv(t);  // 8-bit rows need strides in multiples of 16 elements
    std::vector<int64_t> strides = {2 * 72, 72, 1};
    t.k.strides = strides.data();
    expect_error(t, "k stride[1] = 72 elements must be a multiple of 16", ErrorCode::kInvalidArgument,
                 quantized(KvQuant::kInt8));
  }
}

TEST_CASE("prefill: every bad argument is named") {
  {
    PrefillTensors t;
    std::vector<int64_t> four_d = {1, 8, 8, 64};  // ndim never claims more shape entries than there are
    t.q.shape = four_d.data();
    t.q.ndim = 4;
    expect_error(t, "q must be 3-D [total_q, num_q_heads, head_dim]");
  }
  { PrefillTensors t; t.q.device = {kDLCPU, 0}; expect_error(t, "prefill runs on CUDA", ErrorCode::kUnsupported); }
  { PrefillTensors t; t.cu_k_shape[0] = 2; expect_error(t, "cu_seqlens_k has 2 entries; it must match cu_seqlens_q's 3"); }
  { PrefillTensors t; t.cu_k_mem = {0, 2, 9}; expect_error(t, "sequence 0 has 3 queries but a KV length of 2"); }
  { PrefillTensors t; t.cu_q_mem = {0, 6, 5}; expect_error(t, "cu_seqlens_q[2] = 5 must lie in [6, total_q = 8]"); }
  { PrefillTensors t; t.cu_k_mem = {0, 4, 10}; expect_error(t, "cu_seqlens_k[2] = 10 must lie in [4, total_kv = 9]"); }
  { PrefillTensors t; t.k_shape[1] = 3; expect_error(t, "num_q_heads = 8 must be a multiple of num_kv_heads = 3"); }
  { PrefillTensors t; t.k_shape[2] = 128; expect_error(t, "k head_dim (dimension 2) = 128 must equal q's head_dim 64"); }
  { PrefillTensors t; PrefillOptions o; o.global_window = -1; expect_error(t, "global_window = -1 must be >= 0", ErrorCode::kInvalidArgument, o); }
  { PrefillTensors t; PrefillOptions o; o.max_q_len = -2; expect_error(t, "max_q_len = -2 must be >= 0", ErrorCode::kInvalidArgument, o); }
  {
    PrefillTensors t;
    std::vector<int64_t> strides = {8 * 72, 72, 2};
    t.out.strides = strides.data();
    expect_error(t, "out must be contiguous in its last dimension");
  }
}

namespace {
// The limits the driver reports for an H100 SXM, for the launch heuristics.
swajit::DeviceInfo h100_limits() {
  swajit::DeviceInfo h100;
  h100.sm_count = 132;
  h100.max_shared_per_sm = 233472;
  h100.max_shared_per_block_optin = 232448;
  h100.reserved_shared_per_block = 1024;
  return h100;
}
}  // namespace

namespace {
// One kv head's schedule as the kernels walk it (templates/decode_schedule.h), block by block, checked against the
// rules every kernel relies on: the segments tile each sequence's visible range exactly, in order; a sequence is whole
// in one block or cut into pieces of at least kMinChunkTiles held by consecutive blocks (the first piece its block's
// last segment, the others their blocks' first), where schedule_cut finds them; no two pieces share a work entry.
struct WalkedSchedule {
  int blocks = 0;
  bool cut = false;
  std::vector<int> pieces;           // per sequence (1: whole)
  std::vector<long long> block_cost;  // per block used
  long long total = 0;
};
WalkedSchedule walk_schedule(const std::vector<int>& tiles, int slots, long long snap_shares = kSnapShares) {
  WalkedSchedule w;
  const int batch = int(tiles.size());
  std::vector<long long> start(batch + 1, 0);
  for (int b = 0; b < batch; ++b) start[b + 1] = start[b] + schedule_cost(tiles[b]);
  w.total = start[batch];
  SchedulePlan plan = schedule_plan(w.total, schedule_cost(*std::max_element(tiles.begin(), tiles.end())), batch, slots);
  plan.snap_shares = snap_shares;
  w.blocks = plan.blocks;
  w.cut = plan.cut;
  CHECK(w.blocks >= 1);
  CHECK(w.blocks <= schedule_grid_blocks(slots, batch));
  const auto sequence_at = [&](long long x) { return int(std::upper_bound(start.begin(), start.end(), x) - start.begin()) - 1; };
  const auto snapped = [&](int k) {
    const long long x = schedule_boundary(k, plan);
    if (k == w.blocks) return w.total;
    const int b = sequence_at(x);
    return schedule_snap(x, start[b], tiles[b], plan);
  };
  w.pieces.assign(batch, 0);
  std::vector<int> covered(batch, 0);  // tiles of each sequence covered so far, in order
  std::vector<int> first_block(batch, -1), last_block(batch, -1);
  std::set<int> entries;
  for (int s = 0; s < w.blocks; ++s) {
    const long long begin = snapped(s), end = snapped(s + 1);
    CHECK(begin <= end);
    w.block_cost.push_back(end - begin);
    if (begin == end) continue;
    int b = sequence_at(begin);
    if (start[b + 1] == begin) ++b;
    bool first_segment = true;
    for (; b < batch && start[b] < end; ++b) {
      CAPTURE(b);
      const ScheduleSegment seg = schedule_segment(begin, end, start[b], tiles[b]);
      CHECK(seg.leads_block == first_segment);
      CHECK(seg.first_tile == covered[b]);
      CHECK(seg.last_tile >= seg.first_tile);
      covered[b] = seg.last_tile;
      const bool first_piece = !seg.whole && seg.first_tile == 0;
      if (!seg.whole) CHECK(entries.insert(schedule_entry(s, first_piece)).second);  // a piece's partial result
      if (first_block[b] < 0) first_block[b] = s;
      else CHECK(last_block[b] == s - 1);  // consecutive blocks
      last_block[b] = s;
      ++w.pieces[b];
      if (seg.whole) {
        CHECK(seg.first_tile == 0);
        CHECK(seg.last_tile == tiles[b]);
      } else {
        CHECK(seg.last_tile - seg.first_tile >= kMinChunkTiles);
        CHECK(schedule_cuttable(tiles[b], plan));
        if (first_piece) {  // its block's last segment, and the one that records it
          CHECK(end < start[b + 1]);
          CHECK(schedule_cut(start[b], tiles[b], plan).first_block == s);
        } else {
          CHECK(seg.leads_block);
        }
      }
      first_segment = false;
    }
  }
  for (int b = 0; b < batch; ++b) {
    CAPTURE(b);
    CHECK(covered[b] == tiles[b]);  // every tile once
    CHECK(w.pieces[b] >= 1);
    CHECK(schedule_cut(start[b], tiles[b], plan).pieces == w.pieces[b]);  // what every piece's block finds
  }
  return w;
}
long long most_cost(const WalkedSchedule& w) { return *std::max_element(w.block_cost.begin(), w.block_cost.end()); }
}  // namespace

// Every snap the CUDA kernel may be given (SWAJIT_SCHEDULE_SNAP_SHARES, at least 2) keeps the schedule's rules, and a
// block carries at most 2 / snap of a share more than its share (plus a minimum chunk and an item's cost where a
// boundary snaps to keep a piece whole).
TEST_CASE("decode schedule: any snap of at least 2 keeps the rules and bounds the largest block") {
  std::mt19937 rng(14);
  for (const long long snap : {2LL, 8LL, 32LL, 1LL << 20})
    for (const int batch : {8, 32, 64, 256})
      for (const int slots : {33, 66}) {
        CAPTURE(snap);
        CAPTURE(batch);
        CAPTURE(slots);
        std::vector<int> tiles(batch);
        std::uniform_real_distribution<double> log_length(std::log(2.0), std::log(2048.0));
        for (int& t : tiles) t = int(std::exp(log_length(rng))) / 16;  // log-uniform tokens, 16-token tiles (0 too)
        tiles[batch / 2] = 256;
        const WalkedSchedule w = walk_schedule(tiles, slots, snap);
        const double share = double(w.total) / w.blocks;
        CHECK(most_cost(w) <= share * (1 + 2.0 / double(snap)) + 2 * (kMinChunkTiles + kItemCostTiles) + 1);
      }
}

// The heuristic's grid (num_splits = kSplitsFromCapacity) from the grid's capacity: 132 SMs x 2 resident blocks =
// 264 slots over 8 kv heads = 33 per kv head.
TEST_CASE("decode capacity schedule: uniform batches get the direct grid's work, ragged ones equal-cost ranges") {
  constexpr int kSlots = 33;
  // A window of at most two minimum chunks is never scheduled (gpt-oss's 128 tokens span 3 tiles of 64, unaligned).
  CHECK_FALSE(schedule_worth_cutting(2 * kMinChunkTiles));
  CHECK_FALSE(schedule_worth_cutting(3));
  CHECK(schedule_worth_cutting(2 * kMinChunkTiles + 1));
  CHECK(schedule_worth_cutting(66));
  CHECK(schedule_max_pieces(66) == 33);
  CHECK(schedule_max_pieces(2) == 1);
  const auto pieces_each = [&](int batch, int tiles) { return walk_schedule(std::vector<int>(batch, tiles), kSlots).pieces[0]; };
  // Uniform batches of a 4096-token window (65 tiles of 64): fewer pairs than slots are cut into about slots / batch
  // pieces; as many pairs as slots or more are cut nowhere: the direct grid's work, one item per pair, no merge.
  CHECK(pieces_each(1, 65) == 32);  // 66 / 2: every piece at least kMinChunkTiles
  // 8 or 16 of them: slots / batch blocks a sequence, lined up with the sequences (32 of the 33 slots).
  CHECK(pieces_each(8, 65) == 4);
  CHECK(pieces_each(16, 65) == 2);
  for (int batch : {24, 32, 33, 64, 128, 256}) {
    CAPTURE(batch);
    const WalkedSchedule w = walk_schedule(std::vector<int>(batch, 65), kSlots);
    CHECK(std::all_of(w.pieces.begin(), w.pieces.end(), [](int n) { return n == 1; }));
    CHECK(w.blocks == std::max(batch, batch >= kSlots ? batch : kSlots / batch * batch));
    CHECK(most_cost(w) == schedule_cost(65));  // a block per sequence: the direct grid's work (and, past 33, waves)
  }
  CHECK(pieces_each(1, 1) == 1);  // never below kMinChunkTiles
  CHECK(pieces_each(1, 3) == 1);
  CHECK(pieces_each(1, 4) == 1);  // a cut would leave one tile on its left (after the item's cost)
  CHECK(pieces_each(1, 6) == 2);
  // A bimodal batch of 32 (4 long windows, 28 short sequences) is cut by cost: the long ones into pieces about the
  // size of a block's share, the short ones whole, several to a block.
  std::vector<int> bimodal(32, 3);
  for (int b : {3, 10, 21, 30}) bimodal[b] = 65;
  const WalkedSchedule w = walk_schedule(bimodal, kSlots);
  const long long share = (w.total + w.blocks - 1) / w.blocks;
  CHECK(w.blocks == kSlots);
  CHECK(w.pieces[3] >= 5);
  CHECK(w.pieces[0] == 1);
  CHECK(most_cost(w) <= share + schedule_cost(3));
  // Bimodal at batch 256 on 66 slots (32-token tiles: 4096-token windows of 129 tiles beside 400-token sequences):
  // the long ones (longer than a share, 110) are cut, the short ones (under a quarter of a share) never, and no
  // block carries more than a quarter of a share over its share: the rule at a snap of 1/8 of a share (the default's
  // 1/32 may cut 13-tile sequences; every snap's bounds: the randomized rounds below).
  std::vector<int> wide(256, 13);
  for (int b = 0; b < 256; b += 8) wide[b] = 129;
  const WalkedSchedule wb = walk_schedule(wide, 66, /*snap_shares=*/8);
  const long long wide_share = (wb.total + 65) / 66;
  CHECK(std::count_if(wb.pieces.begin(), wb.pieces.end(), [](int p) { return p > 1; }) >= 16);
  for (int b = 1; b < 256; b += 8) CHECK(wb.pieces[b] == 1);
  CHECK(most_cost(wb) <= wide_share + wide_share / 4);
  // Near-uniform (the mean at least 3/4 of the longest) with as many pairs as slots: nothing cut.
  std::vector<int> nearly(32, 65);
  nearly[0] = 40;
  const WalkedSchedule n = walk_schedule(nearly, kSlots);
  CHECK(std::all_of(n.pieces.begin(), n.pieces.end(), [](int p) { return p == 1; }));
  // Whatever the lengths: every tile once, pieces in consecutive blocks, and no block far above its share.
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    const int batch = 1 + int(rng() % 300);
    const int longest = 1 + int(rng() % 2100);
    std::vector<int> tiles(batch);
    for (int& t : tiles) t = rng() % 4 == 0 ? longest : int(rng() % (longest + 1));
    const int slots = 1 + int(rng() % 200);
    CAPTURE(batch);
    CAPTURE(slots);
    const WalkedSchedule r = walk_schedule(tiles, slots);
    const long long fair = (r.total + r.blocks - 1) / r.blocks;
    // A boundary moves by at most 1/8 of a share (or to keep kMinChunkTiles); near-uniform batches line up.
    if (r.cut) CHECK(most_cost(r) <= fair + fair / 4 + 2 * (kMinChunkTiles + kItemCostTiles) + 2);
    else CHECK(most_cost(r) <= 3 * fair);
  }
}

// A forced or tuned num_splits N: N blocks a sequence; equal lengths are cut into exactly N pieces each.
TEST_CASE("decode work schedule: equal-cost ranges that cover every sequence, with the edge-case lengths") {
  for (int splits : {2, 3, 7, 32, 1024}) {
    CAPTURE(splits);
    // Sequences of exactly one minimum piece (2 tiles), one over (3), empty and of one tile.
    for (const std::vector<int>& tiles : std::vector<std::vector<int>>{{2, 3, 0, 1, 2, 5, 1, 2}, {0, 1, 9, 10, 64, 0, 3, 1},
                                                                      {1, 1563, 0, 1, 2, 5, 1, 1}, {0, 0, 0},
                                                                      std::vector<int>(256, 65), {1}})
      walk_schedule(tiles, splits * int(tiles.size()));
  }
  for (int tiles : {64, 65, 513})
    for (int splits : {2, 4, 13}) {
      CAPTURE(tiles);
      CAPTURE(splits);
      const WalkedSchedule w = walk_schedule(std::vector<int>(8, tiles), 8 * splits);
      for (int p : w.pieces) CHECK(p == splits);
    }
  // Very long beside very short: the long one is cut so that no block holds much more than the mean share.
  const WalkedSchedule w = walk_schedule({1, 1563, 6, 0, 1, 1, 2, 1}, 2 * 8);
  CHECK(w.pieces[1] >= 15);
  CHECK(most_cost(w) <= (w.total + 15) / 16 + kMinChunkTiles + kItemCostTiles);
}

// The tuner's bucket of a ragged batch (issue 19): its batch and the visible length its block table admits, never the
// lengths themselves, so tune-on-miss keys the same row however the lengths move from step to step.
TEST_CASE("decode bucket: a ragged batch keeps the bucket of its batch and table, whatever its lengths") {
  Tensors t;  // batch 2, a table of 4 pages of 16 tokens
  const std::string bucket = decode_bucket_of(t.describe()).key();
  CHECK(bucket == "b2_kv64");
  for (const std::vector<int>& lens : {std::vector<int>{0, 0}, {2, 64}, {64, 64}, {17, 3}, {64, 0}}) {
    t.lens_mem = lens;
    CHECK(decode_bucket_of(t.describe()).key() == bucket);
  }
}

TEST_CASE("the merge grid's shared-memory request lets the fewest blocks per SM that still fit one wave share an SM") {
  const swajit::DeviceInfo h100 = h100_limits();
  for (const int64_t blocks : {1, 32, 128, 132, 133, 256, 1024, 1056}) {
    CAPTURE(blocks);
    const int64_t per_sm = (blocks + h100.sm_count - 1) / h100.sm_count;
    const int64_t footprint = swajit::merge_spreading_bytes(h100, blocks) + h100.reserved_shared_per_block;
    CHECK(per_sm * footprint <= h100.max_shared_per_sm);        // the grid still runs in one wave
    CHECK((per_sm + 1) * footprint > h100.max_shared_per_sm);   // and no SM takes more than its share
  }
  CHECK(swajit::merge_spreading_bytes(h100, 32) == 115713);     // one per SM: just over half an SM's shared memory
  CHECK(swajit::merge_spreading_bytes(h100, 1057) == 0);        // 9 per SM: the grid fills the device, no request
}

// The tuner times a uniform batch at the bucket's bound: a tuned num_splits 1 (the pairs filled the device there) runs
// as tuned only where the call's lengths are known equal; lengths on the device, or unequal ones, take the capacity
// rule, whose schedule balances a ragged batch (paged_decode.cpp tuned_for_lengths), and its grid (with_call_grid).
TEST_CASE("a tuned num_splits 1 applies to lengths known equal; a ragged batch of its bucket takes the capacity rule") {
  Tensors t;
  t.table_shape = {t.batch, 32};  // 32 pages of 16: a bound of 512 tokens, 8 tiles of 64 (the schedule cuts them)
  t.table_mem.assign(size_t(t.batch) * 32, 0);
  t.table = Tensors::make(t.table_mem.data(), {kDLInt, 32, 1}, t.table_shape);
  const DecodeConfig tuned{64, 4, 3, 1};
  constexpr int kCapacity = DecodeConfig::kSplitsFromCapacity;

  const DecodeProblem device_lengths = t.describe();  // unknown on the host: they may differ
  const DecodeConfig for_device = tuned_for_lengths(device_lengths, tuned);
  CHECK(for_device.num_splits == kCapacity);
  CHECK_FALSE(with_call_grid(device_lengths, for_device).direct_grid);
  const std::vector<int> ragged = {500, 3}, equal = {300, 300};
  DecodeOptions o;
  o.host_seq_lens = ragged.data();
  CHECK(tuned_for_lengths(t.describe(o), tuned).num_splits == kCapacity);
  o.host_seq_lens = equal.data();
  const DecodeProblem known_equal = t.describe(o);
  CHECK(tuned_for_lengths(known_equal, tuned) == tuned);
  CHECK(with_call_grid(known_equal, tuned).direct_grid);
  CHECK(with_call_grid(known_equal, DecodeConfig{64, 4, 3, kCapacity}).direct_grid);  // even pieces, no schedule
  // A forced or tuned split count above 1 is kept (the schedule spreads it over the real lengths).
  CHECK(tuned_for_lengths(device_lengths, DecodeConfig{64, 4, 3, 4}).num_splits == 4);
  // Pairs too short for the capacity rule to cut (a 64-token window: one tile) keep num_splits 1 and the direct grid.
  o.local_window = 64;
  o.host_seq_lens = ragged.data();
  const DecodeProblem short_window = t.describe(o);
  CHECK(tuned_for_lengths(short_window, tuned) == tuned);
  CHECK(with_call_grid(short_window, DecodeConfig{64, 4, 3, kCapacity}).direct_grid);
}

// The heuristic runs on the host before any kernel: over every spec of the decode check matrix, at pair counts from
// one to far more than the H200's resident blocks, it must give a config the spec runs (it divided by zero once, on a
// halved tile of one warp column, and every GPU check crashed).
TEST_CASE("the H200 decode heuristic gives a runnable config for every spec of the check matrix") {
  const int64_t pair_counts[] = {0, 1, 8, 64, 1056, 100000};
  const int64_t visible_tokens[] = {0, 1, 64, 4096, 131072};
  for (const DecodeCase& c : decode_check_matrix()) {
    const KernelSpec spec = c.spec();
    for (int64_t pairs : pair_counts)
      for (int64_t visible : visible_tokens)
        for (bool tma_layout_ok : {true, false}) {
          CAPTURE(spec.key());
          CAPTURE(pairs);
          CAPTURE(visible);
          const DecodeConfig config = heuristic_decode_config(spec, test::kH200, pairs, visible, tma_layout_ok);
          CHECK_NOTHROW(config.validate(spec));
        }
  }
}
