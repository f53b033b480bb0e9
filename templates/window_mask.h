// swajit: which KV tokens a block of queries visits, and which of them each query sees. Shared verbatim by every
// kernel family, CUDA and CPU alike (paged_decode.cuh, paged_decode_cpu.cpp, prefill.cuh), so the mask is written
// once. Needs kBlockN, kCausal, kLocalWindow, kGlobalWindow and the SWAJIT_WINDOW_FN / SWAJIT_WINDOW_METHOD
// qualifiers from the including source.
//
// A query at position p sees KV position j iff
//     (!kCausal or j <= p)  and  (no local window, or p - j < local_window, or j < global_window).
// The tokens that queries at positions [p_min, p_max] can see are the sinks [0, global_window) and the window
// [p_min - local_window + 1, end), end = p_max + 1 (causal) or kv_len; only those are visited.

// Up to two token ranges (sinks, then the window), cut into tiles of kBlockN tokens that start at each range's
// first token; a tile never crosses a range end.
struct TileRanges {
  int begin[2], end[2], tiles[2];
  SWAJIT_WINDOW_METHOD int count() const { return tiles[0] + tiles[1]; }
  SWAJIT_WINDOW_METHOD int tile_begin(int t) const { return t < tiles[0] ? begin[0] + t * kBlockN : begin[1] + (t - tiles[0]) * kBlockN; }
  SWAJIT_WINDOW_METHOD int tile_end(int t) const { return min(tile_begin(t) + kBlockN, t < tiles[0] ? end[0] : end[1]); }
};

SWAJIT_WINDOW_FN int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The tiles queries at positions [p_min, p_max] of a sequence of kv_len tokens visit.
SWAJIT_WINDOW_FN TileRanges visible_tile_ranges(int p_min, int p_max, int kv_len, int local_window, int global_window) {
  const int end = kCausal ? min(p_max + 1, kv_len) : kv_len;
  const int window_begin = (kLocalWindow && local_window > 0) ? max(0, p_min - local_window + 1) : 0;
  const int sink_end = kGlobalWindow ? min(global_window, end) : 0;
  TileRanges r;
  if (sink_end >= window_begin) {  // sinks and window touch: one range
    r.begin[0] = 0; r.end[0] = max(end, 0);
    r.begin[1] = 0; r.end[1] = 0;
  } else {
    r.begin[0] = 0; r.end[0] = sink_end;
    r.begin[1] = window_begin; r.end[1] = end;
  }
  r.tiles[0] = ceil_div(r.end[0] - r.begin[0], kBlockN);
  r.tiles[1] = ceil_div(max(r.end[1] - r.begin[1], 0), kBlockN);
  return r;
}

// The same tokens cut into tiles that start at multiples of kBlockN (for copies of whole aligned blocks, prefill's TMA
// path): the window range starts rounded down, joining the first range when the rounding reaches its last tile. The
// extra tokens are masked like any other (visible_columns).
SWAJIT_WINDOW_FN TileRanges tiles_on_block_grid(TileRanges r) {
  if (r.tiles[1] == 0) return r;
  const int begin = r.begin[1] / kBlockN * kBlockN;
  if (begin < r.tiles[0] * kBlockN) {
    r.end[0] = r.end[1];
    r.tiles[0] = ceil_div(r.end[0], kBlockN);
    r.begin[1] = r.end[1] = r.tiles[1] = 0;
  } else {
    r.begin[1] = begin;
    r.tiles[1] = ceil_div(r.end[1] - begin, kBlockN);
  }
  return r;
}

SWAJIT_WINDOW_FN bool is_visible(int p, int j, int local_window, int global_window) {
  if (kCausal && j > p) return false;
  if (!kLocalWindow || local_window <= 0 || p - j < local_window) return true;
  return kGlobalWindow && j < global_window;
}

// The tile columns c (KV position j = first_token + c) query position p sees, for a tile whose real tokens end at
// tile_end: is_visible's set as two intervals, the window [lo[0], hi[0]) and the sinks [lo[1], hi[1]), so a masked
// tile costs two compares per score once each row's bounds are known.
struct VisibleColumns {
  int lo[2], hi[2];
  SWAJIT_WINDOW_METHOD bool operator()(int c) const { return (c >= lo[0] && c < hi[0]) || (c >= lo[1] && c < hi[1]); }
};
SWAJIT_WINDOW_FN VisibleColumns visible_columns(int p, int first_token, int tile_end, int local_window, int global_window) {
  const int end = kCausal ? min(tile_end, p + 1) : tile_end;  // one past the last visible j
  const bool windowed = kLocalWindow && local_window > 0;
  const int window_begin = windowed ? max(0, p - local_window + 1) : 0;  // p - j < local_window
  const int sink_end = windowed && kGlobalWindow ? min(global_window, end) : 0;
  VisibleColumns v;
  v.lo[0] = max(window_begin, first_token) - first_token;
  v.hi[0] = end - first_token;
  v.lo[1] = 0;
  v.hi[1] = sink_end - first_token;
  return v;
}

// A tile needs no per-element mask when it is full and every query in [p_min, p_max] sees every token of it.
SWAJIT_WINDOW_FN bool tile_fully_visible(int tile_begin, int tile_end, int p_min, int p_max, int local_window, int global_window) {
  if (tile_end - tile_begin != kBlockN || (kCausal && tile_end - 1 > p_min)) return false;
  if (!kLocalWindow || local_window <= 0 || p_max - tile_begin < local_window) return true;
  return kGlobalWindow && tile_end <= global_window;
}
