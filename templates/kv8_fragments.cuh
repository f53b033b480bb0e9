// swajit 8-bit KV (int8, fp8 e4m3) tiles dequantized in registers, for the paged decode kernel (paged_decode.cuh).
// Needs Elem, KvElem, kKvQuant, kKvChunks, kHeadDim, kOutFrags, kDimSteps, kThreads, RowTile, QFragments,
// load_q_fragment and k_scale_at (attention_tile.cuh).
//
// The 8-bit tiles are copied raw into shared memory (half the bytes of a 16-bit tile) and every lane reads the
// bytes its mma fragments need with 16-byte loads and widens them right before the mma, instead of a block-wide
// widening pass through shared memory. Lane l of a warp is (g, q) = (l / 4, l % 4) below: an m16n8k16 B fragment
// gives it column n = g and k positions 2q, 2q + 1 (register b0) and 2q + 8, 2q + 9 (register b1).
//
// Scores (B = K^T: k = head dim, n = token). A dot product does not depend on the order of its terms, so the k
// positions of step s map to head dims that make each lane's bytes contiguous: lane (g, q) reads 16 bytes of its
// token, stored chunk 4c + q, which feed 4 steps s = 4c + i:
//     k position 2q + e  <-> dim 16 (4c + q) + 4i + e,     k position 8 + 2q + e <-> dim 16 (4c + q) + 4i + 2 + e.
// Q is stored in the same permuted order (permute_q_and_fold_k_scale), so <q, k> is unchanged. The mmas run in
// Kv8Elem (below).
//
// Output (B = V: k = token, n = head dim). The sum over tokens fixes the k positions (they are P's columns), but the
// output columns may be permuted: column n of output fragment f is head dim kv_output_dim(f, n), chosen so that a
// lane's dims (n = g, every f) are kVPieceBytes contiguous bytes of each of its 4 tokens. The epilogue writes
// column n of fragment f to that dim (store_output_fragments).

// The 16-bit format of both mmas: fp16 for 8-bit K/V whatever the q dtype (int8 and e4m3 values are exact in it,
// probabilities in [0, 1] finer than in bf16, int8 widens to fp16 in 2 instructions a pair against 6 for bf16, and
// e4m3 in one hardware conversion from sm_89 on: tile_ops.cuh).
// In fp16, Q times the K scale is also multiplied by a power of two that puts the block's largest |q k_scale| just
// below 2^15 (no overflow, the large terms not flushed) and the scores by its inverse (permute_q_and_fold_k_scale).
typedef fp16_tag Kv8Elem;

constexpr int kKChunksPerLane = kHeadDim / 64;           // 16-byte K chunks one lane reads per token (4 steps each)
constexpr int kVPieceBytes = kHeadDim >= 128 ? 16 : 8;   // contiguous V bytes a lane reads per token and load
constexpr int kVPieces = kHeadDim / (8 * kVPieceBytes);  // such loads per token
static_assert(kKChunksPerLane * 4 == kDimSteps, "one 16-byte K chunk feeds 4 k16 steps");

// Position of chunk `chunk` in row `row` of a stored 8-bit tile, XOR-swizzled so that the lanes of one shared-memory
// transaction hit distinct banks: the K reads (rows g, g + 1; chunks 4c + q) and the V reads (rows 2q + e; chunks
// 8h + g). 64-byte rows (head_dim 64) pair up in one 128-byte line; their V reads (8 bytes, rows of one parity)
// cannot do better than 2 ways.
SWAJIT_DEVICE int kv8_chunk_position(int row, int chunk) {
  if constexpr (kKvChunks < 8) return chunk ^ ((row >> 1) & 3);
  return chunk ^ (((row & 1) << 2) ^ (((row >> 1) & 3) << 1));
}
// Rows a producer bulk-copies whole (kProducer 2, 3) cannot be swizzled: they are kStoredRowBytes apart instead (16 bytes
// of padding), which spreads the same reads over the banks as evenly. TMA pages (kProducer 4) land in the TMA engine's
// 128-byte swizzle (chunk ^ row % 8 in 128-byte channel blocks): the K reads of rows g and g + 1 then share banks
// two ways.
SWAJIT_DEVICE u32 kv8_offset_bytes(int row, int chunk) {
  if constexpr (kProducer == 2 || kProducer == 3) return u32(row) * kStoredRowBytes + u32(chunk) * 16u;
  if constexpr (kProducer == 4) return WgmmaTile<kBlockN>::offset_bytes(row, chunk);  // TMA's 128-byte swizzle
  return u32(row * kKvChunks + kv8_chunk_position(row, chunk)) * 16u;
}

// Head dim of column n (0..7) of output fragment f.
SWAJIT_DEVICE int kv_output_dim(int f, int n) {
  return (f / kVPieceBytes) * (8 * kVPieceBytes) + n * kVPieceBytes + f % kVPieceBytes;
}

// Block-wide max of a value in [0, 255], one bit at a time from the top; every thread of the block calls it.
SWAJIT_DEVICE int block_max_u8(int value) {
  int result = 0;
#pragma unroll 1
  for (int bit = 7; bit >= 0; --bit)
    if (__syncthreads_or(value >= (result | (1 << bit)))) result |= 1 << bit;
  return result;
}

// The power of two 2^shift that Q times the K scale is multiplied by in the fp16 Kv8Elem format (see there).
template <int kRowsPadded, class Params>
SWAJIT_DEVICE int q_normalizing_shift(const Params& P, u32 q_smem, int kv_head) {
  constexpr int kTargetExponent = 14;  // the largest |value| lands in [2^14, 2^15): fp16 holds up to 65504
  constexpr int kMaxShift = 100;       // 2^+-100 stay normal floats; Q beyond that range loses its smallest terms
  int biased_exponent = 0;             // of the largest |q k_scale| this thread sees (0: all zero)
  for (int i = threadIdx.x; i < kRowsPadded * kChunks; i += kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    float v[8];
    unpack8(ld_shared_16(q_smem + RowTile::offset_bytes(row, chunk)), v, Elem());
#pragma unroll
    for (int e = 0; e < 8; ++e)
      biased_exponent = max(biased_exponent, int((__float_as_uint(v[e] * k_scale_at(P, kv_head, chunk * 8 + e)) >> 23) & 0xffu));
  }
  biased_exponent = block_max_u8(biased_exponent);
  if (biased_exponent == 0) return 0;
  return min(kMaxShift, max(-kMaxShift, kTargetExponent - (biased_exponent - 127)));
}
SWAJIT_DEVICE float power_of_two(int exponent) { return __int_as_float((127 + exponent) << 23); }  // |exponent| <= 126

// q <- q * k_scale * 2^shift (shift: q_normalizing_shift) in Kv8Elem, with each row's head dims reordered as the
// score fragments read K (above); returns 2^-shift, the factor the scores need. Thread t takes whole 64-dim blocks of
// rows (the reordering stays inside one), so it reads and writes the same bytes: in place.
template <int kRowsPadded, class Params>
SWAJIT_DEVICE float permute_q_and_fold_k_scale(const Params& P, u32 q_smem, int kv_head) {
  const int shift = q_normalizing_shift<kRowsPadded>(P, q_smem, kv_head);
  const float multiplier = power_of_two(shift);
  for (int item = threadIdx.x; item < kRowsPadded * kKChunksPerLane; item += kThreads) {
    const int row = item / kKChunksPerLane, block = item % kKChunksPerLane;
    u32 pairs[32];  // dims 64 block + 2k, +1 as 16-bit pairs, scaled
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      float v[8];
      unpack8(ld_shared_16(q_smem + RowTile::offset_bytes(row, 8 * block + c)), v, Elem());
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = v[e] * k_scale_at(P, kv_head, 64 * block + 8 * c + e) * multiplier;
      const uint4 packed = pack8(v, Kv8Elem());
      pairs[4 * c] = packed.x; pairs[4 * c + 1] = packed.y; pairs[4 * c + 2] = packed.z; pairs[4 * c + 3] = packed.w;
    }
    // Step i's k position pair 4h + q (positions 8h + 2q, +1) holds dims 16q + 4i + 2h, +1: source pair 8q + 2i + h.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      u32 step[8];
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int q = 0; q < 4; ++q) step[4 * h + q] = pairs[8 * q + 2 * i + h];
      st_shared_16(q_smem + RowTile::offset_bytes(row, 8 * block + 2 * i), make_uint4(step[0], step[1], step[2], step[3]));
      st_shared_16(q_smem + RowTile::offset_bytes(row, 8 * block + 2 * i + 1), make_uint4(step[4], step[5], step[6], step[7]));
    }
  }
  return power_of_two(-shift);
}

// scores[16 x 8 kFrags] = (permuted, scaled) Q row tile `row_tile` . K tokens [token0, token0 + 8 kFrags)^T of the
// stored 8-bit tile at k_tile.
template <int kFrags, class QOp>  // QFragments<1> (a generic type: the integer path's call compiles with either)
SWAJIT_DEVICE void tile_scores_kv8(float (&scores)[1][kFrags][4], const QOp& q, u32 q_smem, u32 k_tile,
                                   int row_tile, int token0, int lane) {
#pragma unroll
  for (int f = 0; f < kFrags; ++f) scores[0][f][0] = scores[0][f][1] = scores[0][f][2] = scores[0][f][3] = 0.f;
#pragma unroll
  for (int c = 0; c < kKChunksPerLane; ++c) {
    u32 a[4][4];  // Q fragments of steps 4c .. 4c + 3
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (kQInRegisters<1>) {
#pragma unroll
        for (int r = 0; r < 4; ++r) a[i][r] = q.a[0][4 * c + i][r];
      } else {
        load_q_fragment(q_smem, row_tile, lane, 4 * c + i, a[i]);
      }
    }
#pragma unroll
    for (int f = 0; f < kFrags; ++f) {
      const uint4 raw = ld_shared_16(k_tile + kv8_offset_bytes(token0 + 8 * f + lane / 4, 4 * c + lane % 4));
      const u32 words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
        mma_16816(scores[0][f], a[i], widen_pair<0>(words[i], KvElem(), Kv8Elem()), widen_pair<2>(words[i], KvElem(), Kv8Elem()),
                  Kv8Elem());
    }
  }
}

// Lane's V bytes of piece `piece` (dims of kv_output_dim(f, g) for f in [piece, piece + 1) * kVPieceBytes) of `row`.
template <int kWords>
SWAJIT_DEVICE void load_v_piece(u32 v_tile, int row, int piece, int g, u32 (&words)[kWords]) {
  const int byte = piece * 8 * kVPieceBytes + g * kVPieceBytes;
  const u32 addr = v_tile + kv8_offset_bytes(row, byte / 16) + u32(byte % 16);
  if constexpr (kWords == 4) {
    const uint4 v = ld_shared_16(addr);
    words[0] = v.x; words[1] = v.y; words[2] = v.z; words[3] = v.w;
  } else {
    const uint2 v = ld_shared_8(addr);
    words[0] = v.x; words[1] = v.y;
  }
}

// out[16 x head_dim (permuted columns)] += P[16 x tokens] . V[tokens x head_dim] for the warp's tokens
// [token0, token0 + 8 kFrags) of the stored 8-bit tile at v_tile.
template <int kFrags>
SWAJIT_DEVICE void accumulate_pv_kv8(WarpState<1>& st, const float (&p)[1][kFrags][4], u32 v_tile, int token0, int lane) {
  constexpr int kWords = kVPieceBytes / 4;
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int step = 0; step < kFrags / 2; ++step) {
    u32 a[4];
    probabilities_fragment<kFrags, Kv8Elem>(p[0], step, a);
    const int row = token0 + 16 * step + 2 * q;  // the lane's tokens: row, row + 1 (b0), row + 8, row + 9 (b1)
#pragma unroll
    for (int piece = 0; piece < kVPieces; ++piece) {
      u32 t0[kWords], t1[kWords], t2[kWords], t3[kWords];
      load_v_piece(v_tile, row, piece, g, t0);
      load_v_piece(v_tile, row + 1, piece, g, t1);
      load_v_piece(v_tile, row + 8, piece, g, t2);
      load_v_piece(v_tile, row + 9, piece, g, t3);
#pragma unroll
      for (int w = 0; w < kWords; ++w) {
        // Interleave the two tokens of each register: bytes (x of row, x of row + 1, x + 1 of row, x + 1 of row + 1).
        const u32 low[2] = {byte_perm(t0[w], t1[w], 0x5140u), byte_perm(t0[w], t1[w], 0x7362u)};
        const u32 high[2] = {byte_perm(t2[w], t3[w], 0x5140u), byte_perm(t2[w], t3[w], 0x7362u)};
#pragma unroll
        for (int x = 0; x < 4; ++x) {  // output fragment piece * kVPieceBytes + 4w + x
          const int f = piece * kVPieceBytes + 4 * w + x;
          const u32 b0 = x % 2 == 0 ? widen_pair<0>(low[x / 2], KvElem(), Kv8Elem()) : widen_pair<2>(low[x / 2], KvElem(), Kv8Elem());
          const u32 b1 = x % 2 == 0 ? widen_pair<0>(high[x / 2], KvElem(), Kv8Elem()) : widen_pair<2>(high[x / 2], KvElem(), Kv8Elem());
          mma_16816(st.out[0][f], a, b0, b1, Kv8Elem());
        }
      }
    }
  }
}

// ---- int8 K scores on the integer tensor cores (kIntegerScores) -------------------------------------------------------
// The K bytes feed mma.m16n8k32.s8 as stored: no widening. Q row r times the K scale is quantized per row,
//     q_r ~ (128 hi + lo) unit_r,   unit_r = max_d |q_r,d| / kQIntegerRange,   hi in [-127, 127], lo in [-64, 64]
// (14 bits over the row's largest element, finer than fp16's 11 bits for it), and the score is
// (128 <q hi, k8> + <q lo, k8>) unit_r, both dot products exact in int32 (|128 <hi, k8>| <= 2^29 at head_dim 256).
// Layout: an m16n8k32 B fragment gives lane (g, q) column n = g and k positions 4q..4q+3 (b0), 16+4q..16+4q+3 (b1);
// the lane reads the 16 bytes of chunk 4c + q of its token (as tile_scores_kv8 does) and feeds words 0, 1 to one mma
// and words 2, 3 to the next, so k position 4q + i of mma (c, j) is dim 16 (4c + q) + 8j + i and 16 + 4q + i is
// dim 16 (4c + q) + 8j + 4 + i. The A fragment's (row g, k 4q..) and (row g, k 16 + 4q..) then are words 2j and
// 2j + 1 of the same 16 bytes of Q's int8 row g.
constexpr int kQIntegerRange = 127 * 128;  // |128 hi + lo| at the row's largest element
constexpr int kQInt8Rows = kWarpsM * 16;     // the Q tile's rows, padding included
// After the 16-bit Q tile: the hi, then the lo operands in fragment order, 16 bytes per lane and mma (the four
// registers a0..a3 of mma (row tile, c, j) of lane l at ((row tile * kKChunksPerLane + c) * 2 + j) * 512 + 16 l: one
// conflict-free 16-byte load gives an mma its register quad), then a float unit per row.
constexpr int kQ16Bytes = kQInt8Rows * kHeadDim * 2;
constexpr int kQOperandBytes = kQInt8Rows * kHeadDim;  // of hi (or lo)
static_assert(!kIntegerScores || kQBytes >= kQ16Bytes + kQInt8Rows * (2 * kHeadDim + 4), "prelude Q area too small");
constexpr bool kQIntegerInRegisters = kHeadDim <= 128;

SWAJIT_DEVICE void st_shared_4(u32 addr, u32 v) { asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(v) : "memory"); }
SWAJIT_DEVICE void st_shared_f32(u32 addr, float v) { asm volatile("st.shared.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory"); }
SWAJIT_DEVICE float ld_shared_f32(u32 addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
  return v;
}
// Where mma (row_tile, c, j)'s register quad of `lane` lives (lo: the lo operands).
SWAJIT_DEVICE u32 q_operand_offset(int row_tile, int c, int j, int lane, bool lo) {
  return u32(kQ16Bytes + (lo ? kQOperandBytes : 0) + ((row_tile * kKChunksPerLane + c) * 2 + j) * 512 + 16 * lane);
}
// Where Q row `row`'s int8 dims [4 word, 4 word + 4) go: lane (g, q) = (row % 8, chunk % 4) of chunk 4c + q, register
// h + 2 (word % 2) of mma j = word % 4 / 2 (h: row g or g + 8).
SWAJIT_DEVICE u32 q_word_offset(int row, int word, bool lo) {
  const int chunk = word / 4, in_chunk = word % 4;
  const int lane = 4 * (row % 8) + chunk % 4, h = (row % 16) / 8;
  return q_operand_offset(row / 16, chunk / 4, in_chunk / 2, lane, lo) + 4u * u32(h + 2 * (in_chunk % 2));
}
SWAJIT_DEVICE u32 q_unit_offset(int row) { return u32(kQ16Bytes + 2 * kQOperandBytes + 4 * row); }

// Quantizes the block's Q rows (16-bit tile at q_smem, times the K scale) into hi, lo and unit; every thread of the
// block calls it, a barrier must follow. Thread items are (row, 8-dim chunk), a row's chunks in adjacent lanes of one
// warp (kChunks divides 32 and the item count is a multiple of 32), so its max is a shuffle reduction.
template <class Params>
SWAJIT_DEVICE void quantize_q_rows(const Params& P, u32 q_smem, int kv_head) {
  static_assert(32 % kChunks == 0 && kQInt8Rows * kChunks % 32 == 0 && kThreads % 32 == 0, "a row's chunks share a warp");
  for (int i = threadIdx.x; i < kQInt8Rows * kChunks; i += kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    float v[8];
    unpack8(ld_shared_16(q_smem + RowTile::offset_bytes(row, chunk)), v, Elem());
    float row_max = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      v[e] *= k_scale_at(P, kv_head, chunk * 8 + e);
      row_max = fmaxf(row_max, fabsf(v[e]));
    }
#pragma unroll
    for (int offset = kChunks / 2; offset > 0; offset /= 2) row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, offset));
    const float inverse_unit = row_max > 0.f ? float(kQIntegerRange) / row_max : 0.f;
    u32 hi[2] = {0u, 0u}, lo[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float total = fminf(fmaxf(rintf(v[e] * inverse_unit), -float(kQIntegerRange)), float(kQIntegerRange));
      const float high = rintf(total * (1.f / 128.f));
      hi[e / 4] |= (u32(int(high)) & 0xffu) << (8 * (e % 4));
      lo[e / 4] |= (u32(int(total - 128.f * high)) & 0xffu) << (8 * (e % 4));
    }
#pragma unroll
    for (int w = 0; w < 2; ++w) {  // int8 words 2 chunk, 2 chunk + 1 of the row
      st_shared_4(q_smem + q_word_offset(row, 2 * chunk + w, false), hi[w]);
      st_shared_4(q_smem + q_word_offset(row, 2 * chunk + w, true), lo[w]);
    }
    if (chunk == 0) st_shared_f32(q_smem + q_unit_offset(row), row_max / float(kQIntegerRange));
  }
}

// A warp's Q hi / lo operands (rows g and g + 8 of its row tile, chunk 4c + q), each mma's four registers in order
// (the mma reads them as one register quad: no moves), and its rows' units.
struct IntegerQFragments {
  static constexpr int kHeld = kQIntegerInRegisters ? kKChunksPerLane : 1;
  u32 hi[kHeld][2][4], lo[kHeld][2][4];  // [c][mma j]: rows g, g + 8 of words 2j, then of words 2j + 1
  float unit[2];
  SWAJIT_MEMBER static void read(u32 q_smem, int row_tile, int lane, int c, u32 (&hi)[2][4], u32 (&lo)[2][4]) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint4 h = ld_shared_16(q_smem + q_operand_offset(row_tile, c, j, lane, false));
      const uint4 l = ld_shared_16(q_smem + q_operand_offset(row_tile, c, j, lane, true));
      hi[j][0] = h.x; hi[j][1] = h.y; hi[j][2] = h.z; hi[j][3] = h.w;
      lo[j][0] = l.x; lo[j][1] = l.y; lo[j][2] = l.z; lo[j][3] = l.w;
    }
  }
  SWAJIT_MEMBER void load(u32 q_smem, int row_tile, int lane) {
#pragma unroll
    for (int h = 0; h < 2; ++h) unit[h] = ld_shared_f32(q_smem + q_unit_offset(row_tile * 16 + lane / 4 + 8 * h));
    if constexpr (kQIntegerInRegisters) {
#pragma unroll
      for (int c = 0; c < kKChunksPerLane; ++c) read(q_smem, row_tile, lane, c, hi[c], lo[c]);
    }
  }
};

// acc[16 x 8] += a[16 x 32] . b[32 x 8], int8 in, int32 accumulators (exact).
SWAJIT_DEVICE void mma_16832_s8(int (&acc)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(acc[0]), "+r"(acc[1]), "+r"(acc[2]), "+r"(acc[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// scores[16 x 8 kFrags] = Q row tile `row_tile` . K tokens [token0, token0 + 8 kFrags)^T of the stored int8 tile, in
// the units of the unscaled scores (the caller's score_scale is P.scale_log2).
template <int kFrags, class QOp>  // IntegerQFragments
SWAJIT_DEVICE void tile_scores_int8(float (&scores)[1][kFrags][4], const QOp& q, u32 q_smem, u32 k_tile,
                                    int row_tile, int token0, int lane) {
  int high[kFrags][4], low[kFrags][4];
#pragma unroll
  for (int f = 0; f < kFrags; ++f)
#pragma unroll
    for (int e = 0; e < 4; ++e) high[f][e] = low[f][e] = 0;
#pragma unroll
  for (int c = 0; c < kKChunksPerLane; ++c) {
    u32 hi[2][4], lo[2][4];
    if constexpr (kQIntegerInRegisters) {
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) hi[j][r] = q.hi[c][j][r], lo[j][r] = q.lo[c][j][r];
    } else {
      IntegerQFragments::read(q_smem, row_tile, lane, c, hi, lo);
    }
#pragma unroll
    for (int f = 0; f < kFrags; ++f) {
      const uint4 k = ld_shared_16(k_tile + kv8_offset_bytes(token0 + 8 * f + lane / 4, 4 * c + lane % 4));
      mma_16832_s8(high[f], hi[0], k.x, k.y);
      mma_16832_s8(low[f], lo[0], k.x, k.y);
      mma_16832_s8(high[f], hi[1], k.z, k.w);
      mma_16832_s8(low[f], lo[1], k.z, k.w);
    }
  }
#pragma unroll
  for (int f = 0; f < kFrags; ++f)
#pragma unroll
    for (int e = 0; e < 4; ++e) scores[0][f][e] = float(high[f][e] * 128 + low[f][e]) * q.unit[e / 2];
}
