// swajit tile operations for sm_80+ (Ampere, Hopper): the small named pieces every CUDA kernel family is
// built from. Self-contained (no CUDA headers), so the generated source compiles with NVRTC as is.
//
// Fragment layouts follow PTX's mma.m16n8k16 (row.col): for an accumulator tile of 16 rows x 8 columns a lane
// holds rows (lane / 4) and (lane / 4 + 8), columns 2 * (lane % 4) + {0, 1}.

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define SWAJIT_DEVICE static __device__ __forceinline__
#define SWAJIT_MEMBER __device__ __forceinline__
#define SWAJIT_WINDOW_FN SWAJIT_DEVICE       // qualifiers for templates/window_mask.h
#define SWAJIT_WINDOW_METHOD SWAJIT_MEMBER

// ---- element types: 16-bit storage, float math ------------------------------------------------------------------
struct bf16_tag {};
struct fp16_tag {};

SWAJIT_DEVICE float to_float(u16 bits, bf16_tag) { return __uint_as_float(u32(bits) << 16); }
SWAJIT_DEVICE float to_float(u16 bits, fp16_tag) {
  float f;
  asm("{ .reg .f16 h; mov.b16 h, %1; cvt.f32.f16 %0, h; }" : "=f"(f) : "h"(bits));
  return f;
}
// Two floats -> one 32-bit register of two 16-bit values, lo in the low half (round to nearest even).
SWAJIT_DEVICE u32 pack2(float lo, float hi, bf16_tag) {
  u32 r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
SWAJIT_DEVICE u32 pack2(float lo, float hi, fp16_tag) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
// Four values -> 8 bytes, eight values <-> one 16-byte chunk of 16-bit elements (element e in bits 16 (e % 2) of
// word e / 2).
template <class Tag>
SWAJIT_DEVICE uint2 pack4(const float (&v)[4], Tag tag) {
  return make_uint2(pack2(v[0], v[1], tag), pack2(v[2], v[3], tag));
}
template <class Tag>
SWAJIT_DEVICE uint4 pack8(const float (&v)[8], Tag tag) {
  return make_uint4(pack2(v[0], v[1], tag), pack2(v[2], v[3], tag), pack2(v[4], v[5], tag), pack2(v[6], v[7], tag));
}
template <class Tag>
SWAJIT_DEVICE void unpack8(const uint4& packed, float (&v)[8], Tag tag) {
  const u32 words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    v[2 * w] = to_float(u16(words[w] & 0xffffu), tag);
    v[2 * w + 1] = to_float(u16(words[w] >> 16), tag);
  }
}

// ---- shared memory addressing -----------------------------------------------------------------------------------
SWAJIT_DEVICE u32 smem_u32(const void* p) { return static_cast<u32>(__cvta_generic_to_shared(p)); }

// A [rows x kCols] tile of 16-bit elements in shared memory, stored as 16-byte chunks whose index is XOR-ed with
// (row % 8): the 8 rows an ldmatrix reads land in 8 different bank groups, so reads and cp.async writes are
// conflict-free. kCols must be a multiple of 64 (8 chunks).
template <int kCols>
struct SwizzledTile {
  static constexpr int kChunks = kCols / 8;
  static_assert(kChunks % 8 == 0, "swizzled tiles need at least 8 chunks per row");
  SWAJIT_DEVICE u32 offset_bytes(int row, int chunk) { return u32(row * kChunks + (chunk ^ (row & 7))) * 16u; }
};

// The 128-byte-swizzled layout the Hopper warpgroup MMA (wgmma) reads through matrix descriptors: a [kRows x cols]
// tile is stored as cols / 64 blocks of [kRows x 64] elements (128 bytes a row); in each block, row r's 16-byte
// chunk c sits at position c ^ (r % 8) of the row. Blocks must start 1024-byte aligned (8 rows of 128 bytes).
template <int kRows>
struct WgmmaTile {
  static_assert(kRows % 8 == 0, "wgmma tiles come in 8-row groups");
  static constexpr u32 kBlockBytes = kRows * 128;  // one 64-column block
  SWAJIT_DEVICE u32 offset_bytes(int row, int chunk) {
    return u32(chunk / 8) * kBlockBytes + u32(row) * 128u + u32((chunk % 8) ^ (row % 8)) * 16u;
  }
};

// ---- asynchronous global -> shared copies ----------------------------------------------------------------------
// 16 bytes; when `valid` is false nothing is read and the destination is zero-filled (so masked tokens can never
// carry NaN/Inf garbage into P*V).
SWAJIT_DEVICE void cp_async_16(u32 dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
SWAJIT_DEVICE uint4 ld_shared_16(u32 addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}
SWAJIT_DEVICE uint2 ld_shared_8(u32 addr) {
  uint2 v;
  asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];" : "=r"(v.x), "=r"(v.y) : "r"(addr));
  return v;
}
SWAJIT_DEVICE void st_shared_16(u32 addr, uint4 v) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
SWAJIT_DEVICE void st_shared_8(u32 addr, uint2 v) {
  asm volatile("st.shared.v2.u32 [%0], {%1,%2};" ::"r"(addr), "r"(v.x), "r"(v.y) : "memory");
}

// ---- 8-bit KV elements -> 16-bit pairs ----------------------------------------------------------------------------
// Exact (every int8 and e4m3 value is representable in bf16 and fp16) and built from byte permutes, logic and one
// float add or multiply per element: conversion instructions run at a fraction of that rate and would make
// dequantization, not memory, the limit.
struct int8_kv {};
struct fp8_e4m3_kv {};
struct unquantized_kv {};  // 16-bit caches: nothing to widen

SWAJIT_DEVICE u32 byte_perm(u32 a, u32 b, u32 selector) {
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}
SWAJIT_DEVICE u32 fma_bf16x2(u32 a, u32 b, u32 c) {
  u32 r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}
SWAJIT_DEVICE u32 fma_f16x2(u32 a, u32 b, u32 c) {
  u32 r;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

// prmt selector: bytes 0 and 1 of a into the low byte of each half, byte 0 of b above each (shifted by first).
constexpr u32 kSpreadPair = 0x4140u;

// Bytes `first` and `first + 1` of `word` (int8) as a pair. bf16: the byte, offset by 128, becomes the low mantissa
// of the float 2^23 + (x + 128); subtracting 2^23 + 128 leaves x exactly, and an exact small float's bf16 is its
// upper half. fp16: the same with the half 1024 + (x + 128).
template <int first>
SWAJIT_DEVICE u32 widen_pair(u32 word, int8_kv, bf16_tag) {
  constexpr u32 kExponent2p23 = 0x4b000000u;
  constexpr float kOffset = 8388736.f;  // 2^23 + 128
  const u32 biased = word ^ 0x80808080u;  // x + 128 in every byte
  const float lo = __uint_as_float(byte_perm(biased, kExponent2p23, 0x7540u + first)) - kOffset;
  const float hi = __uint_as_float(byte_perm(biased, kExponent2p23, 0x7541u + first)) - kOffset;
  return byte_perm(__float_as_uint(lo), __float_as_uint(hi), 0x7632u);
}
template <int first>
SWAJIT_DEVICE u32 widen_pair(u32 word, int8_kv, fp16_tag) {
  constexpr u32 kHalfExponent1024 = 0x64646464u;
  constexpr u32 kMinusOffset = 0xe480e480u;  // -(1024 + 128) in both halves
  constexpr u32 kOne = 0x3c003c00u;
  const u32 biased = word ^ 0x80808080u;
  const u32 halves = byte_perm(biased, kHalfExponent1024, kSpreadPair + first * 0x0101u);
  return fma_f16x2(halves, kOne, kMinusOffset);
}
// e4m3 bytes -> the target format's bits with sign, exponent and mantissa moved into place: for normals and
// subnormals alike that is the value times 2^(7 - target bias), undone by one exact multiply.
template <int first>
SWAJIT_DEVICE u32 widen_pair(u32 word, fp8_e4m3_kv, bf16_tag) {
  constexpr u32 kTwoPow120 = 0x7b807b80u, kMinusZero = 0x80008000u;
  const u32 spread = byte_perm(word, 0u, kSpreadPair + first * 0x0101u);
  const u32 bits = ((spread & 0x007f007fu) << 4) | ((spread & 0x00800080u) << 8);
  return fma_bf16x2(bits, kTwoPow120, kMinusZero);
}
// fp16 from sm_89 on: the hardware's pair conversion (one instruction, exact: every e4m3 value is an fp16 value)
// in place of the five logic and float instructions of the bit moves below.
template <int first>
SWAJIT_DEVICE u32 widen_pair(u32 word, fp8_e4m3_kv, fp16_tag) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  u32 r;
  if constexpr (first == 0)
    asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.rn.f16x2.e4m3x2 %0, lo;\n}" : "=r"(r) : "r"(word));
  else
    asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.rn.f16x2.e4m3x2 %0, hi;\n}" : "=r"(r) : "r"(word));
  return r;
#else
  constexpr u32 kTwoPow8 = 0x5c005c00u, kMinusZero = 0x80008000u;
  const u32 spread = byte_perm(word, 0u, kSpreadPair + first * 0x0101u);
  const u32 bits = ((spread & 0x007f007fu) << 7) | ((spread & 0x00800080u) << 8);
  return fma_f16x2(bits, kTwoPow8, kMinusZero);
#endif
}
template <int first, class Elem>
SWAJIT_DEVICE u32 widen_pair(u32, unquantized_kv, Elem) {
  __trap();  // only reachable if a 16-bit cache were routed through the widening step: a generator bug
  return 0;
}

SWAJIT_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int kPending>
SWAJIT_DEVICE void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory"); }

// ---- ldmatrix / mma -----------------------------------------------------------------------------------------------
SWAJIT_DEVICE void ldmatrix_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}
SWAJIT_DEVICE void ldmatrix_x4_trans(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(addr));
}

// acc[16x8] += a[16x16] * b[16x8], fp32 accumulation.
SWAJIT_DEVICE void mma_16816(float (&acc)[4], const u32 (&a)[4], u32 b0, u32 b1, bf16_tag) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
SWAJIT_DEVICE void mma_16816(float (&acc)[4], const u32 (&a)[4], u32 b0, u32 b1, fp16_tag) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- Hopper warpgroup MMA (sm_90a) ------------------------------------------------------------------------------
// A shared-memory matrix descriptor for 128-byte-swizzled operands (PTX "matrix descriptor"): start address,
// leading- and stride-dimension byte offsets, all in 16-byte units, and the swizzle mode in bits 62-63.
SWAJIT_DEVICE u64 wgmma_descriptor(u32 smem_address, u32 leading_bytes, u32 stride_bytes) {
  constexpr u64 kSwizzle128B = 1;
  return u64((smem_address & 0x3ffff) >> 4) | (u64(leading_bytes >> 4) << 16) | (u64(stride_bytes >> 4) << 32) |
         (kSwizzle128B << 62);
}
// Descriptor offsets advance in 16-byte units.
SWAJIT_DEVICE u64 descriptor_plus(u64 descriptor, u32 bytes) { return descriptor + (bytes >> 4); }

SWAJIT_DEVICE void wgmma_fence() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}
SWAJIT_DEVICE void wgmma_commit() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}
// Waits until at most kPending of this warp's committed wgmma groups are still running (they finish in order).
template <int kPending>
SWAJIT_DEVICE void wgmma_wait() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
#endif
}
SWAJIT_DEVICE void wgmma_commit_and_wait() {
  wgmma_commit();
  wgmma_wait<0>();
}
// Makes this thread's generic-proxy writes to shared memory (cp.async, st.shared) visible to wgmma's async proxy.
SWAJIT_DEVICE void fence_shared_for_async_proxy() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// Keeps the compiler from moving reads or writes of an accumulator register across an asynchronous wgmma's wait.
template <int kRows>
SWAJIT_DEVICE void pin_accumulators(float (&d)[kRows][4]) {
#pragma unroll
  for (int i = 0; i < kRows; ++i)
#pragma unroll
    for (int c = 0; c < 4; ++c) asm volatile("" : "+f"(d[i][c])::"memory");
}

// ---- warp specialization (sm_90): mbarriers and register hand-over ----------------------------------------------
// An mbarrier in shared memory completes a phase when `count` arrivals have been made; waiters name the phase by its
// parity. Barriers are initialized by one thread and published to the block by a __syncthreads.
SWAJIT_DEVICE void mbarrier_init(u32 barrier, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(barrier), "r"(count) : "memory");
}
SWAJIT_DEVICE void mbarrier_arrive(u32 barrier) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(barrier) : "memory");
#endif
}
// Blocks until the phase of parity `parity` has completed (acquire: what the arrivers wrote before is visible).
SWAJIT_DEVICE void mbarrier_wait(u32 barrier, u32 parity) {
#if __CUDA_ARCH__ >= 900
  asm volatile(
      "{ .reg .pred done;\n"
      "WAIT: mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT; }" ::"r"(barrier), "r"(parity) : "memory");
#endif
}
// One arrival on `barrier` once every cp.async this thread issued so far has landed (.noinc: the arrival is one of
// the barrier's expected `count`).
SWAJIT_DEVICE void cp_async_arrive_on(u32 barrier) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(barrier) : "memory");
}
SWAJIT_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
// The TMA engine (sm_90): `bytes` more are expected on `barrier` this phase (the copies that complete them count as
// transactions, not arrivals).
SWAJIT_DEVICE void mbarrier_expect_tx(u32 barrier, u32 bytes) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(barrier), "r"(bytes) : "memory");
#endif
}
// One box of the 4-d tensor `map` at coordinates {c0, c1, c2, c3} (innermost first) into shared memory at `dst`,
// laid out as the map's swizzle says; its bytes complete transactions on `barrier`. Boxes reaching outside the tensor
// are zero-filled there.
SWAJIT_DEVICE void tma_load_4d(u32 dst, const void* map, int c0, int c1, int c2, int c3, u32 barrier) {
#if __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
      ::"r"(dst), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(barrier) : "memory");
#endif
}
// `bytes` (a multiple of 16, both addresses 16-byte aligned) contiguous bytes from global memory into shared memory by
// the TMA engine (sm_90); they complete transactions on `barrier`.
SWAJIT_DEVICE void bulk_copy_to_shared(u32 dst, const void* src, u32 bytes, u32 barrier) {
#if __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(barrier) : "memory");
#endif
}
// setmaxnreg (sm_90a): a warpgroup gives registers back to the block's pool or takes them from it.
template <int kRegisters>
SWAJIT_DEVICE void release_registers_to() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(kRegisters));
#endif
}
template <int kRegisters>
SWAJIT_DEVICE void claim_registers_up_to() {
#ifdef __CUDA_ARCH_FEAT_SM90_ALL
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(kRegisters));
#endif
}

// ---- warp reductions over the 4 lanes that share an accumulator row -------------------------------------------
SWAJIT_DEVICE float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
SWAJIT_DEVICE float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

SWAJIT_DEVICE float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

#define SWAJIT_NEG_INF __int_as_float(0xff800000)

// A device-side argument error: ORs `bit` into status[0] and keeps the lowest offending index in status[1].
SWAJIT_DEVICE void record_status(int* status, int bit, int index) {
  atomicOr(status, bit);
  atomicMin(status + 1, index);
}

// Programmatic dependent launch (sm_90+): a dependent grid may start while this one finishes, and waits here for
// the memory of the grid it depends on. No-ops on older architectures (the host launches normally there).
SWAJIT_DEVICE void wait_for_prerequisite_grid() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
SWAJIT_DEVICE void allow_dependent_grid_launch() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
