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
SWAJIT_DEVICE void st_shared_16(u32 addr, uint4 v) {
  asm volatile("st.shared.v4.u32 [%0], {%1,%2,%3,%4};" ::"r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}

// ---- 8-bit KV elements -> 16-bit pairs (exact: every int8 and e4m3 value is representable in bf16 and fp16) ----
struct int8_kv {};
struct fp8_e4m3_kv {};
struct unquantized_kv {};  // 16-bit caches: nothing to widen
// The two 8-bit values in the low 16 bits of `bytes`, low byte first.
template <class Elem>
SWAJIT_DEVICE u32 widen_pair(u32 bytes, int8_kv) {
  return pack2(float(static_cast<signed char>(bytes & 0xffu)), float(static_cast<signed char>((bytes >> 8) & 0xffu)), Elem());
}
SWAJIT_DEVICE u32 from_half2(u32 halves, fp16_tag) { return halves; }
SWAJIT_DEVICE u32 from_half2(u32 halves, bf16_tag) {
  return pack2(to_float(u16(halves & 0xffffu), fp16_tag()), to_float(u16(halves >> 16), fp16_tag()), bf16_tag());
}
template <class Elem>
SWAJIT_DEVICE u32 widen_pair(u32 bytes, fp8_e4m3_kv) {
  u32 halves;
  asm("{ .reg .b16 pair; cvt.u16.u32 pair, %1; cvt.rn.f16x2.e4m3x2 %0, pair; }" : "=r"(halves) : "r"(bytes));
  return from_half2(halves, Elem());
}
template <class Elem>
SWAJIT_DEVICE u32 widen_pair(u32, unquantized_kv) {
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
