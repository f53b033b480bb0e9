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
template <int kFrags>
SWAJIT_DEVICE void tile_scores_kv8(float (&scores)[1][kFrags][4], const QFragments<1>& q, u32 q_smem, u32 k_tile,
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
