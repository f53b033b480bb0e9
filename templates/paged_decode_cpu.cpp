// swajit kernel family: paged sliding-window decode on the CPU, compiled in process by Clang and run by LLVM ORC.
//
// The math and the mask are those of templates/paged_decode.cuh, and the tokens visited come from the same
// templates/window_mask.h. For sequence b with KV length L, query token s sits at p = L - kQSeqlen + s; query head
// h reads kv head h / kGroup (kGqaInterleaved: h % num_kv_heads);
//     out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + sink),  score_j = scale * <q, k_j>,
// over the visible j only; a row that sees nothing is zeros. 8-bit caches: the K scale is folded into q and the V
// scale into the output, exactly as on the GPU.
//
// The work split. A work item is one (sequence, kv head), or with num_splits > 1 one chunk of its tiles, cut exactly
// as the CUDA kernel cuts them (templates/decode_schedule.h): all kQSeqlen x kGroup query rows of that kv head
// share each K/V tile, which is widened to float once and reused by every row. The host runs items on a thread
// pool; each thread brings its own scratch (its size: cpu_scratch_floats() in generator/generator.cpp). The items of
// a sequence cut in several write (out / l, log2-sum-exp) and SWAJIT_CPU_MERGE combines them per (sequence, kv head).
//
// Needs from the generator prelude: the spec (kIsBf16, kHeadDim, kPageSize, kQSeqlen, kGroup, kLocalWindow,
// kGlobalWindow, kSinkLogits, kGqaInterleaved, kKvQuant), the config (kBlockN), kRows and the symbol names
// SWAJIT_CPU_KERNEL and SWAJIT_CPU_MERGE; and templates/decode_schedule.h.

// Register blocking. An FMA has a latency of ~4 cycles and two issue per cycle, so a loop needs about 8 independent
// accumulator vectors to keep them busy: the score loop keeps kTokenBlock tokens' sums over all rows, the P.V loop
// kBlockRows rows x kSliceWidth columns (one AVX-512 vector, or two AVX2 ones, a row).
constexpr int kTokenBlock = 8;   // tokens whose scores are summed at once (block_n is a multiple of it)
constexpr int kSliceWidth = 16;  // accumulator columns kept in registers by the P.V loop
constexpr int kBlockRows = kRows < 8 ? kRows : 8;  // ... times this many rows
static_assert(kBlockN % kTokenBlock == 0, "CPU tiles come in whole token blocks");
static_assert(kHeadDim % kSliceWidth == 0, "head_dim is a multiple of the P.V slice");

static inline void store_row(const PagedDecodeParams& P, int b, int kv_head, int row, const float* acc, float scale) {
  const int s = row / kGroup, head = q_head_of(P, kv_head, row);
  u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
  for (int d = 0; d < kHeadDim; ++d) out[d] = float_to_elem(acc[d] * scale * v_scale_at(P, kv_head, d));
}

// ---- one work item --------------------------------------------------------------------------------------------------
// Sequence b's KV length as the kernel uses it (an invalid one, rejected by the host anyway, reads as 0).
static int kv_len_of(const PagedDecodeParams& P, int b) {
  const int kv_len = P.seq_lens[b * P.seq_lens_stride];
  return (kv_len != 0 && kv_len < kQSeqlen) || kv_len > P.max_pages_per_seq * kPageSize ? 0 : kv_len;
}
static TileRanges tiles_of(const PagedDecodeParams& P, int kv_len) {
  return visible_tile_ranges(kv_len - kQSeqlen, kv_len - 1, kv_len, P.local_window, P.global_window);
}

// Tiles [first_tile, last_tile) of sequence b (templates/decode_schedule.h): the whole sequence writes its output, a
// piece of a cut one its partial result in slot `item` (work entry x kv heads + kv head).
static void decode_item(const PagedDecodeParams& P, int b, int kv_head, int first_tile, int last_tile, bool whole, int item,
                        float* scratch) {
  // Scratch layout; its size is cpu_scratch_floats() in generator/generator.cpp.
  float* q = scratch;                        // [kHeadDim][kRows] (transposed), log2 units, K scale folded in
  float* acc = q + kRows * kHeadDim;         // [kRows][kHeadDim]
  float* k_tile = acc + kRows * kHeadDim;    // [kBlockN][kHeadDim]
  float* v_tile = k_tile + kBlockN * kHeadDim;
  float* scores = v_tile + kBlockN * kHeadDim;  // [kRows][kBlockN]: scores, then softmax weights
  float* row_max = scores + kRows * kBlockN;    // [kRows]
  float* row_sum = row_max + kRows;             // [kRows]

  const int kv_len = kv_len_of(P, b);
  const TileRanges ranges = tiles_of(P, kv_len);
  const int* block_table_row = P.block_table + b * P.block_table_stride_batch;

  for (int r = 0; r < kRows; ++r) {
    const u16* src = static_cast<const u16*>(P.q) + b * P.q_stride_batch + (r / kGroup) * P.q_stride_token +
                     q_head_of(P, kv_head, r) * P.q_stride_head;
    for (int d = 0; d < kHeadDim; ++d) q[d * kRows + r] = elem_to_float(src[d]) * k_scale_at(P, kv_head, d) * P.scale_log2;
    for (int d = 0; d < kHeadDim; ++d) acc[r * kHeadDim + d] = 0.f;
    row_max[r] = kNegInf;
    row_sum[r] = 0.f;
  }

  for (int t = first_tile; t < last_tile; ++t) {
    const int tile_begin = ranges.tile_begin(t), tokens = ranges.tile_end(t) - tile_begin;
    for (int i = tokens; i < (tokens + kTokenBlock - 1) / kTokenBlock * kTokenBlock; ++i)  // a partial last block
      for (int d = 0; d < kHeadDim; ++d) k_tile[i * kHeadDim + d] = 0.f;                  // reads zeros, not stale rows
    for (int i = 0; i < tokens; ++i) {  // gather and widen the tile's K and V rows once for all query rows
      const int j = tile_begin + i;
      const int page = block_table_row[(j / kPageSize) * P.block_table_stride_page];
      const char* k_row = static_cast<const char*>(P.k_cache) +
                          (page * P.k_stride_page + (j % kPageSize) * P.k_stride_token + kv_head * P.k_stride_head) * kKvBytes;
      const char* v_row = static_cast<const char*>(P.v_cache) +
                          (page * P.v_stride_page + (j % kPageSize) * P.v_stride_token + kv_head * P.v_stride_head) * kKvBytes;
      for (int d = 0; d < kHeadDim; ++d) k_tile[i * kHeadDim + d] = kv_to_float(k_row, d);
      for (int d = 0; d < kHeadDim; ++d) v_tile[i * kHeadDim + d] = kv_to_float(v_row, d);
    }
    // Token-outer loops: each widened K and V row is read once per tile while every query row's q and
    // accumulator stay in L1. Scores of kTokenBlock tokens for all rows at once: q is transposed, so the inner loop
    // runs over rows with each k element broadcast (no horizontal sums), and the tokens' sums are independent.
    for (int i0 = 0; i0 < tokens; i0 += kTokenBlock) {
      float block_scores[kTokenBlock][kRows] = {};
      // Vectorized across rows only: across d every sum would become a reduction, across tokens a gather.
#pragma clang loop vectorize(disable) interleave(disable)
      for (int d = 0; d < kHeadDim; ++d)
#pragma clang loop vectorize(disable) unroll(full)
        for (int t = 0; t < kTokenBlock; ++t) {
          const float k = k_tile[(i0 + t) * kHeadDim + d];
          for (int r = 0; r < kRows; ++r) block_scores[t][r] += k * q[d * kRows + r];
        }
      for (int t = 0; t < kTokenBlock && i0 + t < tokens; ++t)
        for (int r = 0; r < kRows; ++r) scores[r * kBlockN + i0 + t] = block_scores[t][r];
    }
    const bool masked = !tile_fully_visible(tile_begin, tile_begin + tokens, kv_len - kQSeqlen, kv_len - 1, P.local_window, P.global_window);
    for (int r = 0; r < kRows; ++r) {  // online softmax: scores -> weights, accumulator rescaled
      float* s = scores + r * kBlockN;
      const int p = kv_len - kQSeqlen + r / kGroup;
      float tile_max = kNegInf;
      for (int i = 0; i < tokens; ++i) {
        if (masked && !is_visible(p, tile_begin + i, P.local_window, P.global_window)) s[i] = kNegInf;
        tile_max = s[i] > tile_max ? s[i] : tile_max;
      }
      const float new_max = tile_max > row_max[r] ? tile_max : row_max[r];
      const float reference = new_max == kNegInf ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
      const float rescale = fast_exp2(row_max[r] - reference);
      float sum = row_sum[r] * rescale;
      for (int i = 0; i < tokens; ++i) {
        s[i] = fast_exp2(s[i] - reference);
        sum += s[i];
      }
      float* a = acc + r * kHeadDim;
      for (int d = 0; d < kHeadDim; ++d) a[d] *= rescale;
      row_sum[r] = sum;
      row_max[r] = new_max;
    }
    // out += P . V in register blocks of kBlockRows rows x kSliceWidth columns kept across the tile's tokens:
    // each V vector loaded feeds kBlockRows multiply-adds, and the accumulators never round-trip through memory.
    for (int d0 = 0; d0 < kHeadDim; d0 += kSliceWidth)
      for (int r0 = 0; r0 < kRows; r0 += kBlockRows) {
        const int rows = kRows - r0 < kBlockRows ? kRows - r0 : kBlockRows;
        float block[kBlockRows][kSliceWidth] = {};
#pragma clang loop vectorize(disable) interleave(disable)
        for (int i = 0; i < tokens; ++i) {
          const float* v = v_tile + i * kHeadDim + d0;
#pragma clang loop vectorize(disable) unroll(full)
          for (int r = 0; r < kBlockRows; ++r) {
            const float weight = r < rows ? scores[(r0 + r) * kBlockN + i] : 0.f;
            for (int e = 0; e < kSliceWidth; ++e) block[r][e] += weight * v[e];
          }
        }
        for (int r = 0; r < rows; ++r)
          for (int e = 0; e < kSliceWidth; ++e) acc[(r0 + r) * kHeadDim + d0 + e] += block[r][e];
      }
  }

  for (int r = 0; r < kRows; ++r) {
    const float reference = row_max[r] == kNegInf ? 0.f : row_max[r];
    if (whole) {
      store_row(P, b, kv_head, r, acc + r * kHeadDim, normalizer(P, q_head_of(P, kv_head, r), reference, row_sum[r]));
    } else {  // sinks and the V scale join in the merge, once per row
      const i64 slot = i64(item) * kRows + r;
      const float inv_sum = row_sum[r] > 0.f ? 1.f / row_sum[r] : 0.f;
      float* partial_out = static_cast<float*>(P.partial_out);
      for (int d = 0; d < kHeadDim; ++d) partial_out[slot * kHeadDim + d] = acc[r * kHeadDim + d] * inv_sum;
      P.partial_lse[slot] = row_sum[r] > 0.f ? reference + __builtin_log2f(row_sum[r]) : kNegInf;
    }
  }
}

// One block of the work schedule (templates/decode_schedule.h), walked serially: its range on the cost axis, found by
// scanning the batch, then the sequences in it in turn.
struct ScheduledBlock {
  const PagedDecodeParams& P;
  long long begin = 0, end = 0, start = 0;
  SchedulePlan plan{0, 1, false};
  int block, b = 0;
  ScheduledBlock(const PagedDecodeParams& params, int schedule_block) : P(params), block(schedule_block) {
    long long total = 0;
    int longest = 0;
    for (int i = 0; i < P.batch; ++i) {
      total += schedule_cost(tiles(i));
      longest = tiles(i) > longest ? tiles(i) : longest;
    }
    plan = schedule_plan(total, schedule_cost(longest), P.batch, P.schedule_slots);
    if (block >= plan.blocks) {  // an unused block: an empty range
      begin = end = total;
      b = P.batch;
      return;
    }
    const long long lo = schedule_boundary(block, plan), hi = schedule_boundary(block + 1, plan);
    end = total;
    long long first = 0;
    bool found_lo = false;
    for (int i = 0; i < P.batch; ++i) {
      const int t = tiles(i);
      const long long last = first + schedule_cost(t);
      if (!found_lo && lo < last) {
        begin = schedule_snap(lo, first, t, plan);
        b = begin == last ? i + 1 : i;
        start = begin == last ? last : first;
        found_lo = true;
      }
      if (hi < last) {
        end = schedule_snap(hi, first, t, plan);
        break;
      }
      first = last;
    }
  }
  int tiles(int i) const { return tiles_of(P, kv_len_of(P, i)).count(); }
  // The next segment (sequence b, its tiles and whether whole, its work entry); false when the range is done.
  bool next(int& sequence, ScheduleSegment& segment, int& entry) {
    if (b >= P.batch || start >= end) return false;
    const int t = tiles(b);
    segment = schedule_segment(begin, end, start, t);
    sequence = b;
    entry = schedule_entry(block, !segment.whole && segment.first_tile == 0);
    start += schedule_cost(t);
    ++b;
    return true;
  }
};

// Blocks [item_begin, item_end) of the grid: with num_splits 1 the (sequence, kv head) pairs, else the work
// schedule's blocks (block s of kv head h is item s x kv_heads + h).
extern "C" void SWAJIT_CPU_KERNEL(const PagedDecodeParams* params, int item_begin, int item_end, float* scratch) {
  const PagedDecodeParams& P = *params;
  for (int item = item_begin; item < item_end; ++item) {
    const int kv_head = item % P.num_kv_heads;
    if (P.num_splits == 1) {
      const int b = item / P.num_kv_heads;
      decode_item(P, b, kv_head, 0, tiles_of(P, kv_len_of(P, b)).count(), true, item, scratch);
      continue;
    }
    ScheduledBlock walk(P, item / P.num_kv_heads);
    int b = 0, entry = 0;
    ScheduleSegment segment;
    while (walk.next(b, segment, entry))
      decode_item(P, b, kv_head, segment.first_tile, segment.last_tile, segment.whole, entry * P.num_kv_heads + kv_head, scratch);
  }
}

// Split-KV merge over items [item_begin, item_end) of the (sequence, kv head) pairs: a cut sequence's pieces (where
// schedule_cut finds them) combined: out = sum_s 2^(lse_s - M) o_s / (sum_s 2^(lse_s - M) + sink), M = max_s lse_s;
// all -inf gives zeros. A whole sequence wrote its output.
extern "C" void SWAJIT_CPU_MERGE(const PagedDecodeParams* params, int item_begin, int item_end, float* scratch) {
  const PagedDecodeParams& P = *params;
  const ScheduledBlock schedule(P, 0);  // the batch's plan
  long long start = 0;
  int b = 0;
  for (int item = item_begin; item < item_end; ++item) {
    const int sequence = item / P.num_kv_heads, kv_head = item % P.num_kv_heads;
    for (; b < sequence; ++b) start += schedule_cost(schedule.tiles(b));  // items come in sequence order
    const int t = schedule.tiles(sequence);
    const ScheduleCut cut = schedule_cut(start, t, schedule.plan);
    if (cut.pieces == 1) continue;
    // The first piece in entry 2 f + 1, piece s >= 1 in entry 2 (f + s) (templates/decode_schedule.h).
    const auto slot_of = [&](int s) {
      return (i64(schedule_entry(cut.first_block + s, s == 0)) * P.num_kv_heads + kv_head) * kRows;
    };
    for (int r = 0; r < kRows; ++r) merge_row<kHeadDim>(P, sequence, kv_head, r, slot_of, cut.pieces, scratch);
  }
}
