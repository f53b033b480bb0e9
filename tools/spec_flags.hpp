// Command-line flags that describe a kernel spec and a config: the same names on every verb.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "swajit/spec.hpp"

namespace swajit::cli {

struct SpecFlags {
  std::string key;  // a whole spec key instead of the separate flags
  std::string family = "paged_decode", dtype = "bf16", layout = "nhd", kv_quant = "none", gqa = "grouped";
  bool sink_logits = false, non_causal = false, shared_kv = false, score_bias = false;
  int head_dim = 128, page_size = 16, q_seqlen = 1, group = 1, local_window = 0, global_window = 0;
  int topk = 2048, head_dim_v = 0;  // sparse_decode

  void add_to(CLI::App& app) {
    app.add_option("--key", key, "a spec key, e.g. paged_decode_bf16_d128_p16_nhd_q4_g4_local_global (overrides the flags below)");
    app.add_option("--family", family, "kernel family")->capture_default_str();
    app.add_option("--dtype", dtype, "bf16 | fp16")->capture_default_str();
    app.add_option("--head-dim", head_dim, "64 | 128 | 256")->capture_default_str();
    app.add_option("--page-size", page_size, "1..256 (prefill: 0 = contiguous K/V)")->capture_default_str();
    app.add_option("--layout", layout, "KV cache layout: nhd | hnd")->capture_default_str();
    app.add_option("--q-seqlen", q_seqlen, "query tokens per sequence, 1..8")->capture_default_str();
    app.add_option("--group", group, "num_q_heads / num_kv_heads, 1..16")->capture_default_str();
    app.add_option("--local-window", local_window, "sliding window (<= 0: none)")->capture_default_str();
    app.add_option("--global-window", global_window, "sink tokens always visible (0: none)")->capture_default_str();
    app.add_flag("--sink-logits", sink_logits, "learned per-head attention-sink logits");
    app.add_flag("--non-causal", non_causal, "prefill: drop the causal mask (the windows still apply)");
    app.add_option("--gqa", gqa, "q head to kv head mapping: grouped | interleaved")->capture_default_str();
    app.add_option("--kv-quant", kv_quant, "KV cache storage: none | int8 | fp8")->capture_default_str();
    app.add_option("--topk", topk, "sparse_decode: selected slots per query token, 1..2048")->capture_default_str();
    app.add_option("--head-dim-v", head_dim_v, "sparse_decode: V columns (0: head_dim; shared K/V: e.g. 512 of 576)");
    app.add_flag("--shared-kv", shared_kv, "sparse_decode: one cache, V = the first head_dim_v columns of K (MLA)");
    app.add_flag("--score-bias", score_bias, "sparse_decode: a float32 bias per selected slot");
  }
  KernelSpec spec() const {
    if (!key.empty()) return KernelSpec::from_key(key);
    AttentionCall call;
    call.dtype = parse_dtype(dtype);
    call.head_dim = head_dim;
    call.page_size = page_size;
    call.kv_layout = parse_kv_layout(layout);
    call.q_seqlen = q_seqlen;
    call.causal = !non_causal;
    call.group = group;
    call.local_window = local_window;
    call.global_window = global_window;
    call.sink_logits = sink_logits;
    call.gqa = parse_gqa(gqa);
    call.kv_quant = parse_kv_quant(kv_quant);
    call.topk = topk;
    call.head_dim_v = head_dim_v;
    call.shared_kv = shared_kv;
    call.score_bias = score_bias;
    switch (parse_family(family)) {
      case KernelFamily::kPrefill: return prefill_kernel_spec(call);
      case KernelFamily::kSparseDecode: return sparse_decode_kernel_spec(call);
      case KernelFamily::kPagedDecode: break;
    }
    return paged_decode_kernel_spec(call);
  }
};

struct ConfigFlags {
  std::optional<bool> l2_ahead, table_prefetch;  // sparse_decode's gather prefetches (--persistent: its persistent grid)
  std::optional<bool> narrow_warps;              // sparse_decode, token split: 8 candidates a warp
  std::optional<bool> stagger_v;                 // sparse_decode, not mla: V rows copied half a tile from K rows
  std::optional<int> block_m, block_n, warps_n, stages, num_splits, m_tiles, min_blocks, warp_specialize, producer,
      producer_registers;
  std::optional<bool> wgmma, tma, persistent, snake_order, overlap_items, dynamic_items, tma_store, softmax_chains, mma, token_split,
      fused_merge, l2_prefetch, mla, integer_scores, pages_first, pages_ahead, early_tiles, direct_grid, copy_ahead, score_ahead, split_scores,
      seesaw, f16_mma, stored_k_scores, stored_v, consumer_fold, widen_rows, widen_ahead;
  void add_to(CLI::App& app) {
    app.add_option("--block-m", block_m, "prefill: query rows per block");
    app.add_option("--m-tiles", m_tiles, "prefill: 16-row mma tiles per warp (1 or 2)");
    app.add_option("--wgmma", wgmma, "prefill: Hopper warpgroup MMA (true/false)");
    app.add_option("--min-blocks", min_blocks, "prefill, paged_decode: blocks per SM to leave registers for (1..4)");
    app.add_option("--warp-specialize", warp_specialize,
                   "prefill, wgmma: 0 all warps load, 1 producer/consumer warpgroups, 2 also S(t+1) before softmax(t), 3 also ping-pong (block_m 128)");
    app.add_option("--tma", tma, "prefill, warp specialized: K/V tiles moved by the TMA engine (true/false)");
    app.add_option("--persistent", persistent, "prefill, tma: one block per SM slot taking the work items in turn (true/false)");
    app.add_option("--snake-order", snake_order,
                   "prefill, persistent: every other round of work items walked backwards (true/false)");
    app.add_option("--overlap-items", overlap_items,
                   "prefill, persistent ws2: an item's last P.V issued with the next item's first Q.K^T (true/false)");
    app.add_option("--dynamic-items", dynamic_items,
                   "prefill, persistent: blocks claim the next work item as they come free (true/false)");
    app.add_option("--tma-store", tma_store,
                   "prefill, tma: the output rows through shared memory and a TMA store (true/false)");
    app.add_option("--softmax-chains", softmax_chains,
                   "prefill: each row's max and sum over a tile as 4 independent chains (true/false)");
    app.add_option("--f16-mma", f16_mma, "prefill, 8-bit K/V with tma and bf16 q: the MMAs in fp16 (true/false)");
    app.add_option("--stored-k-scores", stored_k_scores,
                   "prefill, f16_mma, head_dim 128: Q.K^T on the 8-bit tensor cores from the stored K tiles, Q split into two 8-bit tiles (true/false)");
    app.add_option("--stored-v", stored_v,
                   "prefill, stored_k_scores with fp8 K/V, block_n 128: P.V on the 8-bit tensor cores from the stored V tiles, transposed by the producer, P split into e4m3 hi + lo (true/false)");
    app.add_option("--consumer-fold", consumer_fold,
                   "prefill, stored_k_scores: the compute warps fold the K scale into their own Q rows after Q lands, not the producer (true/false)");
    app.add_option("--widen-rows", widen_rows,
                   "prefill, 8-bit K/V with tma: 8 lanes widen 8 rows of one chunk column (conflict-free stores; true/false)");
    app.add_option("--widen-ahead", widen_ahead,
                   "prefill, 8-bit K/V with tma: each widening lane loads its next chunk before converting this one (true/false)");
    app.add_option("--producer-registers", producer_registers,
                   "prefill, warp specialized: the producer's registers after setmaxnreg (24..56, multiple of 8; the consumers get the rest)");
    app.add_option("--block-n", block_n, "KV tokens per tile");
    app.add_option("--warps-n", warps_n, "warps splitting each tile");
    app.add_option("--stages", stages, "pipeline depth");
    app.add_option("--producer", producer,
                   "paged_decode: 0 every warp loads, 1 a producer warp with cp.async and mbarriers, 2 the same with bulk row copies, 3 as 2 with K and V on their own barriers (sm_90)");
    app.add_option("--fused-merge", fused_merge,
                   "paged_decode, split-KV: the last block of a (sequence, kv head) merges its partial results, no merge grid (true/false)");
    app.add_option("--pages-first", pages_first,
                   "paged_decode, cp.async loaders: read a tile's block_table entries before checking any (true/false)");
    app.add_option("--pages-ahead", pages_ahead,
                   "paged_decode, every warp loading: read a tile's block_table entries a tile step before its copies (true/false)");
    app.add_option("--early-tiles", early_tiles,
                   "paged_decode, producer warp: issue an item's first tiles before the block waits for its Q tile (true/false)");
    app.add_option("--integer-scores", integer_scores,
                   "paged_decode, int8 K/V: the scores on the integer tensor cores, Q quantized per row to 14 bits (true/false)");
    app.add_option("--direct-grid", direct_grid,
                   "paged_decode, gen: the direct grid's kernel (a block per sequence piece and kv head) instead of the scheduled one; a call picks the grid from its lengths (true/false)");
    app.add_option("--splits", num_splits, "split-KV work items per (sequence, kv head) on average; 0: from the grid's capacity (the heuristic's)");
    app.add_option("--mma", mma, "sparse_decode: tensor cores (true/false; false: the CUDA-core kernel)");
    app.add_option("--token-split", token_split, "sparse_decode, mma: the warps split each tile's candidates (true/false)");
    app.add_option("--l2-prefetch", l2_prefetch, "sparse_decode: each gathered row's copies fetch its aligned 256-byte block into L2 (true/false)");
    app.add_option("--l2-ahead", l2_ahead, "sparse_decode, not mla: prefetch each candidate's rows into L2 an iteration before its copies (true/false)");
    app.add_option("--table-prefetch", table_prefetch, "sparse_decode, not mla: ask L2 for the sequence's block_table row at the block's start (true/false)");
    app.add_option("--narrow-warps", narrow_warps, "sparse_decode, token split: 8 candidates a warp, up to 8 warps, 128 registers (true/false)");
    app.add_option("--stagger-v", stagger_v, "sparse_decode, not mla: copy V rows half a tile away from K rows (true/false)");
    app.add_option("--mla", mla, "sparse_decode, mma: the MLA kernel (shared 576 / 512, sm_90a; true/false; true sets bn64 st2)");
    app.add_option("--copy-ahead", copy_ahead,
                   "sparse_decode, mla: tile t + 2's copies right after tile t's P V, two tiles in flight (true/false)");
    app.add_option("--split-scores", split_scores,
                   "sparse_decode, mla: the warpgroups split S's columns, each scoring the whole tile (true/false)");
    app.add_option("--seesaw", seesaw,
                   "sparse_decode, mla: FlashMLA's seesaw, the warpgroups scoring alternate whole tiles (true/false)");
    app.add_option("--score-ahead", score_ahead,
                   "sparse_decode, mla with copy_ahead: tile t + 1's scores issued before tile t's softmax (true/false)");
  }
  bool any() const {
    return block_m || block_n || warps_n || stages || num_splits || m_tiles || wgmma || min_blocks || warp_specialize || tma || persistent ||
           snake_order || overlap_items || dynamic_items || tma_store || softmax_chains || producer_registers || mma || producer ||
           token_split || fused_merge || l2_prefetch || mla || integer_scores || pages_first || pages_ahead || early_tiles || direct_grid ||
           copy_ahead || score_ahead || split_scores || seesaw || l2_ahead || table_prefetch || f16_mma || stored_k_scores || stored_v || consumer_fold ||
           widen_rows || widen_ahead || narrow_warps || stagger_v;
  }
  // Flags given on top of `base`.
  DecodeConfig apply(DecodeConfig base) const {
    if (block_n) base.block_n = *block_n;
    if (warps_n) base.warps_n = *warps_n;
    if (stages) base.stages = *stages;
    if (num_splits) base.num_splits = *num_splits;
    if (producer) base.producer = *producer;
    if (fused_merge) base.fused_merge = *fused_merge;
    if (integer_scores) base.integer_scores = *integer_scores;
    if (pages_first) base.pages_first = *pages_first;
    if (pages_ahead) base.pages_ahead = *pages_ahead;
    if (early_tiles) base.early_tiles = *early_tiles;
    if (direct_grid) base.direct_grid = *direct_grid;
    if (min_blocks) base.min_blocks = *min_blocks;
    return base;
  }
  SparseDecodeConfig apply(SparseDecodeConfig base) const {
    if (block_n) base.block_n = *block_n;
    if (stages) base.stages = *stages;
    if (num_splits) base.num_splits = *num_splits;
    if (mma) base.mma = *mma;
    base.token_split = token_split.value_or(base.token_split && base.mma);  // --mma false: the CUDA-core kernel
    if (l2_prefetch) base.l2_prefetch = *l2_prefetch;
    if (l2_ahead) base.l2_ahead = *l2_ahead;
    if (table_prefetch) base.table_prefetch = *table_prefetch;
    if (persistent) base.persistent = *persistent;
    if (narrow_warps) base.narrow_warps = *narrow_warps;
    if (stagger_v) base.stagger_v = *stagger_v;
    base.mla = mla.value_or(base.mla && base.mma && !base.token_split);
    if (warp_specialize) base.warp_specialize = base.mla && *warp_specialize > 0;
    if (copy_ahead) base.copy_ahead = *copy_ahead;
    if (score_ahead) base.score_ahead = *score_ahead;
    if (split_scores) base.split_scores = *split_scores;
    if (seesaw) base.seesaw = *seesaw;
    if (mla && *mla) {  // the MLA kernel and its tiles (SparseDecodeConfig::validate)
      constexpr int kWsBlockN = 32, kWsStages = 4, kBlockN = 64, kStages = 2;
      base.token_split = token_split.value_or(false);
      base.block_n = block_n.value_or(base.warp_specialize ? kWsBlockN : kBlockN);
      base.stages = stages.value_or(base.warp_specialize ? kWsStages : kStages);
    }
    return base;
  }
  PrefillConfig apply(PrefillConfig base) const {
    if (block_m) base.block_m = *block_m;
    if (block_n) base.block_n = *block_n;
    if (stages) base.stages = *stages;
    if (m_tiles) base.m_tiles = *m_tiles;
    if (wgmma) base.wgmma = *wgmma;
    if (min_blocks) base.min_blocks = *min_blocks;
    if (warp_specialize) base.warp_specialize = *warp_specialize;
    if (tma) base.tma = *tma;
    if (persistent) base.persistent = *persistent;
    if (snake_order) base.snake_order = *snake_order;
    if (overlap_items) base.overlap_items = *overlap_items;
    if (dynamic_items) base.dynamic_items = *dynamic_items;
    if (tma_store) base.tma_store = *tma_store;
    if (softmax_chains) base.softmax_chains = *softmax_chains;
    if (f16_mma) base.f16_mma = *f16_mma;
    if (stored_k_scores) base.stored_k_scores = *stored_k_scores;
    if (stored_v) base.stored_v = *stored_v;
    if (consumer_fold) base.consumer_fold = *consumer_fold;
    if (widen_rows) base.widen_rows = *widen_rows;
    if (widen_ahead) base.widen_ahead = *widen_ahead;
    if (producer_registers) base.producer_registers = *producer_registers;
    return base;
  }
};

}  // namespace swajit::cli
