// swajit utility kernels for the benchmark and check harnesses: fill memory with random 16-bit values, measure
// read bandwidth. Needs templates/tile_ops.cuh before it.

// splitmix64: a counter-based generator, so every element gets an independent value without state.
SWAJIT_DEVICE u64 splitmix64(u64 x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// data[i] = uniform(-1, 1) as bf16 (is_bf16 != 0) or fp16, for i < count.
extern "C" __global__ void swajit_fill_uniform_16bit(u16* data, u64 count, u64 seed, int is_bf16) {
  for (u64 i = blockIdx.x * u64(blockDim.x) + threadIdx.x; i < count; i += u64(gridDim.x) * blockDim.x) {
    const u64 r = splitmix64(seed ^ (i * 0x2545f4914f6cdd1dull));
    const float x = float(r >> 40) * (2.0f / 16777216.0f) - 1.0f;  // 24 random bits -> [-1, 1)
    const u32 packed = is_bf16 ? pack2(x, 0.f, bf16_tag()) : pack2(x, 0.f, fp16_tag());
    data[i] = u16(packed & 0xffffu);
  }
}

// Reads `count` 16-byte vectors once; one xor per block is written so the loads cannot be dropped. kStreaming loads
// are evict-first (the bandwidth probe, which should not displace the cache); ordinary loads push out whatever the L2
// held, with clean lines that leave nothing for a later kernel to write back (a memset would leave dirty ones).
template <bool kStreaming>
SWAJIT_DEVICE void read_once(const uint4* data, u64 count, u32* sink) {
  u32 acc = 0;
  for (u64 i = blockIdx.x * u64(blockDim.x) + threadIdx.x; i < count; i += u64(gridDim.x) * blockDim.x) {
    const uint4 v = kStreaming ? __ldcs(data + i) : data[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) sink[blockIdx.x] = acc;  // practically never taken; keeps the loads live
}
extern "C" __global__ void swajit_read_bandwidth(const uint4* data, u64 count, u32* sink) { read_once<true>(data, count, sink); }
extern "C" __global__ void swajit_evict_l2(const uint4* data, u64 count, u32* sink) { read_once<false>(data, count, sink); }

// data[i] = random bytes for i < count; with avoid_fp8_nan the e4m3 NaN patterns (x111 1111) are nudged to the
// neighbouring finite value, so the bytes are valid int8 and valid fp8 e4m3 codes.
extern "C" __global__ void swajit_fill_random_bytes(unsigned char* data, u64 count, u64 seed, int avoid_fp8_nan) {
  for (u64 i = blockIdx.x * u64(blockDim.x) + threadIdx.x; i < count; i += u64(gridDim.x) * blockDim.x) {
    unsigned char byte = (unsigned char)(splitmix64(seed ^ (i * 0x2545f4914f6cdd1dull)) >> 56);
    if (avoid_fp8_nan && (byte & 0x7f) == 0x7f) byte ^= 1;
    data[i] = byte;
  }
}
