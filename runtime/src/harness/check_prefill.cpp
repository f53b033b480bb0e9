// The prefill check matrix and how one case runs on the GPU (contiguous or paged K/V, 16-bit or 8-bit).
#include <algorithm>
#include <random>

#include "check.hpp"
#include "check_data.hpp"
#include "swajit/swajit.hpp"

namespace swajit {
using namespace check_data;

std::vector<PrefillCase> prefill_check_matrix() {
  std::vector<PrefillCase> cases;
  const auto add = [&](std::string name, auto&& edit) {
    PrefillCase c;
    c.name = std::move(name);
    edit(c);
    cases.push_back(std::move(c));
  };
  add("contiguous, ragged varlen", [](PrefillCase&) {});
  add("contiguous, one long sequence", [](PrefillCase& c) { c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; c.global_window = 0; });
  add("chunked prefill (q_len < kv_len)", [](PrefillCase& c) { c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("q_len 1", [](PrefillCase& c) { c.q_lens = {1, 1, 1}; c.kv_lens = {1, 2, 500}; });
  add("empty sequences and kv length 1", [](PrefillCase& c) { c.q_lens = {0, 1, 0, 5}; c.kv_lens = {0, 1, 9, 5}; });
  add("window 1", [](PrefillCase& c) { c.local_window = 1; c.global_window = 0; });
  add("window 1 + sink 1", [](PrefillCase& c) { c.local_window = 1; c.global_window = 1; });
  add("window larger than the sequences", [](PrefillCase& c) { c.local_window = 5000; });
  add("full causal (no windows)", [](PrefillCase& c) { c.local_window = 0; c.global_window = 0; });
  add("sinks only", [](PrefillCase& c) { c.local_window = 0; c.global_window = 3; });
  add("non-causal, window", [](PrefillCase& c) { c.causal = false; });
  add("non-causal, no window", [](PrefillCase& c) { c.causal = false; c.local_window = 0; c.global_window = 0; });
  add("learned sink logits", [](PrefillCase& c) { c.sink_logits = true; });
  add("interleaved GQA", [](PrefillCase& c) { c.gqa = GqaMapping::kInterleaved; });
  for (int group : {1, 2, 3, 8, 16})
    add("group " + std::to_string(group), [group](PrefillCase& c) { c.group = group; c.num_kv_heads = group > 8 ? 1 : 2; });
  add("head_dim 64", [](PrefillCase& c) { c.head_dim = 64; });
  add("head_dim 256", [](PrefillCase& c) { c.head_dim = 256; });
  add("fp16", [](PrefillCase& c) { c.dtype = DType::kFP16; });
  add("strided", [](PrefillCase& c) { c.strided = true; });
  add("paged NHD page 16", [](PrefillCase& c) { c.page_size = 16; });
  add("paged HND page 7, strided", [](PrefillCase& c) { c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; });
  add("paged page 1", [](PrefillCase& c) { c.page_size = 1; c.q_lens = {5, 40}; c.kv_lens = {9, 60}; });
  add("paged page 256, chunked", [](PrefillCase& c) { c.page_size = 256; c.q_lens = {100, 3}; c.kv_lens = {700, 260}; });
  add("paged page 100, head_dim 256, fp16", [](PrefillCase& c) { c.page_size = 100; c.head_dim = 256; c.dtype = DType::kFP16; });
  add("config bm64 bn32 st3", [](PrefillCase& c) { c.config = PrefillConfig{64, 32, 3}; });
  add("config bm16 bn16 st2", [](PrefillCase& c) { c.config = PrefillConfig{16, 16, 2}; });
  add("config bm128 bn128 st2, paged 13", [](PrefillCase& c) { c.config = PrefillConfig{128, 128, 2}; c.page_size = 13; });
  add("config bm128 bn64 st2 mt2", [](PrefillCase& c) { c.config = PrefillConfig{128, 64, 2, 2}; });
  add("config bm32 bn16 st3 mt2, window 1", [](PrefillCase& c) { c.config = PrefillConfig{32, 16, 3, 2}; c.local_window = 1; });
  add("config bm64 bn32 st2 mt2, head_dim 256, paged 16, sinks",
      [](PrefillCase& c) { c.config = PrefillConfig{64, 32, 2, 2}; c.head_dim = 256; c.page_size = 16; c.sink_logits = true; });
  // Hopper warpgroup MMA (sm_90a only; skipped elsewhere)
  const auto wgmma = [](int bm, int bn, int stages) { return PrefillConfig{bm, bn, stages, 1, true}; };
  add("wgmma bm128 bn64", [&](PrefillCase& c) { c.config = wgmma(128, 64, 2); });
  add("wgmma bm128 bn128 st3, one long sequence",
      [&](PrefillCase& c) { c.config = wgmma(128, 128, 3); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; });
  add("wgmma bm64 bn128, paged HND 7, strided",
      [&](PrefillCase& c) { c.config = wgmma(64, 128, 2); c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; });
  add("wgmma bm64 bn32, head_dim 64, fp16", [&](PrefillCase& c) { c.config = wgmma(64, 32, 2); c.head_dim = 64; c.dtype = DType::kFP16; });
  add("wgmma bm64 bn64, head_dim 256, sinks, chunked",
      [&](PrefillCase& c) { c.config = wgmma(64, 64, 2); c.head_dim = 256; c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma bm128 bn32 st3 oc2, paged 16, sinks",
      [&](PrefillCase& c) { c.config = wgmma(128, 32, 3); c.config->min_blocks = 2; c.page_size = 16; c.sink_logits = true; });
  add("wgmma bm64 bn64 st3, head_dim 256, chunked, fp16",
      [&](PrefillCase& c) { c.config = wgmma(64, 64, 3); c.head_dim = 256; c.dtype = DType::kFP16; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma bm192 bn64 st3, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = wgmma(192, 64, 3); c.local_window = 1; c.global_window = 1; });
  add("wgmma bm128 bn16, window 1, non-causal",
      [&](PrefillCase& c) { c.config = wgmma(128, 16, 2); c.local_window = 1; c.causal = false; });
  // warp specialized wgmma: producer warpgroup + mbarriers (1), and S(t+1) issued before softmax(t) (2)
  const auto ws = [](int bm, int bn, int stages, int mode) { return PrefillConfig{bm, bn, stages, 1, true, 1, mode}; };
  add("wgmma ws1 bm128 bn64", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 1); });
  add("wgmma ws2 bm128 bn64", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); });
  add("wgmma ws2 bm128 bn128 st3, one long sequence",
      [&](PrefillCase& c) { c.config = ws(128, 128, 3, 2); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; });
  add("wgmma ws1 bm64 bn128, paged HND 7, strided",
      [&](PrefillCase& c) { c.config = ws(64, 128, 2, 1); c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; });
  add("wgmma ws2 bm64 bn32 st3, head_dim 64, fp16", [&](PrefillCase& c) { c.config = ws(64, 32, 3, 2); c.head_dim = 64; c.dtype = DType::kFP16; });
  add("wgmma ws2 bm64 bn64, head_dim 256, sinks, chunked",
      [&](PrefillCase& c) { c.config = ws(64, 64, 2, 2); c.head_dim = 256; c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma ws2 bm64 bn32 st3 oc2, paged 16, sinks",
      [&](PrefillCase& c) { c.config = ws(64, 32, 3, 2); c.config->min_blocks = 2; c.page_size = 16; c.sink_logits = true; });
  add("wgmma ws1 bm192 bn64 st3, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = ws(192, 64, 3, 1); c.local_window = 1; c.global_window = 1; });
  add("wgmma ws2 bm192 bn64, window 1 + sink 1, learned sinks",
      [&](PrefillCase& c) { c.config = ws(192, 64, 2, 2); c.local_window = 1; c.global_window = 1; c.sink_logits = true; });
  add("wgmma ws2 bm128 bn16, window 1, non-causal",
      [&](PrefillCase& c) { c.config = ws(128, 16, 2, 2); c.local_window = 1; c.causal = false; });
  add("wgmma ws2 bm128 bn64, paged 1, varlen with empty sequences",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.page_size = 1; c.q_lens = {5, 0, 300, 1}; c.kv_lens = {9, 0, 700, 1}; });
  add("wgmma ws2 bm128 bn64, long window: the stage ring wraps many times",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.num_kv_heads = 1; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000; });
  add("wgmma ws1 bm128 bn64 st3, long window, paged 16",
      [&](PrefillCase& c) { c.config = ws(128, 64, 3, 1); c.num_kv_heads = 1; c.page_size = 16; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000; });
  add("wgmma ws3 bm128 bn64, ping-pong", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 3); });
  add("wgmma ws3 bm128 bn64 st3, ping-pong, long window, paged 13",
      [&](PrefillCase& c) { c.config = ws(128, 64, 3, 3); c.num_kv_heads = 1; c.page_size = 13; c.q_lens = {1500, 70}; c.kv_lens = {2000, 70}; c.local_window = 1000; });
  add("wgmma ws3 bm128 bn32, ping-pong, sinks, chunked",
      [&](PrefillCase& c) { c.config = ws(128, 32, 2, 3); c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma ws2 bm128 bn64, interleaved GQA, group 8",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.gqa = GqaMapping::kInterleaved; c.group = 8; });
  // warp specialized with K/V tiles moved by the TMA engine (tma); the row-gather path stays the reference
  const auto tma = [&](int bm, int bn, int stages, int mode) { PrefillConfig c = ws(bm, bn, stages, mode); c.tma = true; return c; };
  add("tma ws1 bm192 bn64 st3", [&](PrefillCase& c) { c.config = tma(192, 64, 3, 1); });
  add("tma ws2 bm128 bn64, strided, chunked",
      [&](PrefillCase& c) { c.config = tma(128, 64, 2, 2); c.strided = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("tma ws3 bm128 bn64 st3, ping-pong, long window, empty and length-1 sequences",
      [&](PrefillCase& c) { c.config = tma(128, 64, 3, 3); c.num_kv_heads = 1; c.q_lens = {1500, 0, 1, 70}; c.kv_lens = {2000, 0, 1, 70}; c.local_window = 1000; });
  add("tma ws2 bm128 bn64, paged NHD 16 (whole pages), window 1 + sink 1",
      [&](PrefillCase& c) { c.config = tma(128, 64, 2, 2); c.page_size = 16; c.local_window = 1; c.global_window = 1; });
  add("tma ws1 bm128 bn64 st3, paged HND 256 (part of a page), strided, chunked",
      [&](PrefillCase& c) { c.config = tma(128, 64, 3, 1); c.page_size = 256; c.kv_layout = KvLayout::kHND; c.strided = true; c.q_lens = {100, 3}; c.kv_lens = {700, 260}; });
  add("tma ws2 bm64 bn32 st3, head_dim 64, fp16, paged 8, sinks, non-causal",
      [&](PrefillCase& c) { c.config = tma(64, 32, 3, 2); c.head_dim = 64; c.dtype = DType::kFP16; c.page_size = 8; c.sink_logits = true; c.causal = false; });
  add("tma ws2 bm64 bn64, head_dim 256, paged 64, long window, group 8",
      [&](PrefillCase& c) { c.config = tma(64, 64, 2, 2); c.head_dim = 256; c.page_size = 64; c.group = 8; c.num_kv_heads = 1; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000; c.global_window = 3; });
  // block_n 128 with TMA: half the barrier round trips per FLOP of bn64 (bm128: 3 stages of 64 KB fit, 168 registers a
  // consumer without spills; bm192 fits 2 stages but spills at its 128 registers a thread)
  add("tma ws1 bm192 bn128 st2, long window, chunked",
      [&](PrefillCase& c) { c.config = tma(192, 128, 2, 1); c.num_kv_heads = 1; c.q_lens = {1500, 130}; c.kv_lens = {2000, 1000}; c.local_window = 1000; });
  add("tma ws2 bm128 bn128 st3, paged NHD 16 (8 pages a tile), sinks, learned sinks",
      [&](PrefillCase& c) { c.config = tma(128, 128, 3, 2); c.page_size = 16; c.global_window = 3; c.sink_logits = true; });
  add("tma ws1 bm128 bn128 st2, paged NHD 16 in runs (one box a tile where pages follow), long window, chunked",
      [&](PrefillCase& c) { c.config = tma(128, 128, 2, 1); c.page_size = 16; c.pages_in_runs = true; c.q_lens = {1500, 130, 1}; c.kv_lens = {2000, 1000, 33}; c.local_window = 1000; });
  add("tma ws2 bm192 bn64 st3, paged NHD 8 in runs, sinks, learned sinks, fp16",
      [&](PrefillCase& c) { c.config = tma(192, 64, 3, 2); c.page_size = 8; c.pages_in_runs = true; c.dtype = DType::kFP16; c.q_lens = {300, 17}; c.kv_lens = {700, 300}; c.global_window = 3; c.sink_logits = true; });
  add("tma ws1 bm64 bn64, head_dim 256, paged NHD 32 in runs, strided (no runs: padded pages), group 8",
      [&](PrefillCase& c) { c.config = tma(64, 64, 2, 1); c.head_dim = 256; c.page_size = 32; c.pages_in_runs = true; c.strided = true; c.group = 8; c.num_kv_heads = 1; c.q_lens = {600}; c.kv_lens = {900}; c.local_window = 500; });
  // head_dim 256 on FA3's tile for it: 128 rows x 80 tokens (two consumer warpgroups; 2 stages of 40 KB K/V tiles)
  add("tma ws1 bm128 bn80 st2, head_dim 256, varlen with kv 0 and 1, sinks, learned sinks",
      [&](PrefillCase& c) { c.config = tma(128, 80, 2, 1); c.head_dim = 256; c.q_lens = {700, 0, 1, 130}; c.kv_lens = {900, 0, 1, 1000}; c.global_window = 3; c.sink_logits = true; });
  add("tma ws2 bm128 bn80 st2, head_dim 256, paged NHD 16 (5 pages a tile), long window, chunked",
      [&](PrefillCase& c) { c.config = tma(128, 80, 2, 2); c.head_dim = 256; c.page_size = 16; c.q_lens = {1500, 130}; c.kv_lens = {2000, 1000}; c.local_window = 1000; });
  add("tma ws2 bm128 bn64 st2, head_dim 256, paged NHD 16 in runs, group 8, fp16",
      [&](PrefillCase& c) { c.config = tma(128, 64, 2, 2); c.head_dim = 256; c.page_size = 16; c.pages_in_runs = true; c.group = 8; c.num_kv_heads = 1; c.dtype = DType::kFP16; c.q_lens = {600, 5}; c.kv_lens = {900, 400}; c.local_window = 500; });
  add("paged NHD 16 in runs, default config, head_dim 128",
      [&](PrefillCase& c) { c.page_size = 16; c.pages_in_runs = true; c.num_kv_heads = 2; c.q_lens = {700, 5}; c.kv_lens = {900, 300}; c.local_window = 256; });
  add("tma ws3 bm128 bn128 st2, ping-pong (FA3's tile), long window, empty and length-1 sequences",
      [&](PrefillCase& c) { c.config = tma(128, 128, 2, 3); c.num_kv_heads = 1; c.q_lens = {1500, 0, 1, 70}; c.kv_lens = {2000, 0, 1, 70}; c.local_window = 1000; });
  add("tma ws1 bm128 bn128 st3, paged HND 256 (part of a page), strided, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = tma(128, 128, 3, 1); c.page_size = 256; c.kv_layout = KvLayout::kHND; c.strided = true; c.local_window = 1; c.global_window = 1; });
  // persistent grid (blocks take several items: Q double-buffered, the pipeline's stages and phases run on across
  // items, items with no rows skipped by both roles alike)
  const auto persistent = [&](int bm, int bn, int stages, int mode) { PrefillConfig c = tma(bm, bn, stages, mode); c.persistent = true; return c; };
  add("persistent tma ws1 bm128 bn128 st2, many items, empty and length-1 sequences, long window",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 1); c.q_lens = {600, 0, 1, 70, 300}; c.kv_lens = {900, 0, 1, 70, 300}; c.local_window = 500; });
  add("persistent tma ws2 bm128 bn128 st2, chunked, sinks, learned sinks",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 2); c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.global_window = 3; c.sink_logits = true; });
  add("persistent tma ws3 bm128 bn64 st3, ping-pong, paged NHD 16 in runs, chunked",
      [&](PrefillCase& c) { c.config = persistent(128, 64, 3, 3); c.page_size = 16; c.pages_in_runs = true; c.q_lens = {700, 130, 1}; c.kv_lens = {1200, 1000, 33}; c.local_window = 500; });
  add("persistent tma ws1 bm128 bn128 st2, paged NHD 16 (8 pages a tile), window 1 + sink 1",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 1); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {1000, 5}; c.kv_lens = {1000, 400}; c.local_window = 1; c.global_window = 1; });
  // The head_dim 128 default on sm_90a (ws2, persistent) forced across the matrix's edges, so that they are checked
  // where the heuristic would pick another config (pages TMA cannot fill, strides) and stay checked if it changes.
  const auto add_overlapped = [&](const std::string& what, auto&& edit) {
    add("persistent tma ws2 bm128 bn128 st2 (the d128 default), " + what,
        [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 2); edit(c); });
  };
  add_overlapped("ragged varlen", [](PrefillCase&) {});
  add_overlapped("empty sequences and kv length 0 and 1",
                 [](PrefillCase& c) { c.q_lens = {0, 1, 0, 5, 1, 300}; c.kv_lens = {0, 1, 9, 5, 1, 300}; });
  add_overlapped("chunked (q shorter than kv), long window",
                 [](PrefillCase& c) { c.q_lens = {17, 130, 700}; c.kv_lens = {300, 1000, 1500}; c.local_window = 1000; });
  add_overlapped("window 1 + sink 1", [](PrefillCase& c) { c.local_window = 1; c.global_window = 1; });
  add_overlapped("window larger than the sequences", [](PrefillCase& c) { c.local_window = 5000; });
  add_overlapped("full causal (no windows), one long sequence",
                 [](PrefillCase& c) { c.local_window = 0; c.global_window = 0; c.q_lens = {1000}; c.kv_lens = {1000}; });
  add_overlapped("sinks only", [](PrefillCase& c) { c.local_window = 0; c.global_window = 3; });
  add_overlapped("non-causal, window", [](PrefillCase& c) { c.causal = false; });
  add_overlapped("non-causal, no window, fp16", [](PrefillCase& c) { c.causal = false; c.local_window = 0; c.global_window = 0; c.dtype = DType::kFP16; });
  add_overlapped("learned sink logits", [](PrefillCase& c) { c.sink_logits = true; });
  add_overlapped("interleaved GQA, group 8", [](PrefillCase& c) { c.gqa = GqaMapping::kInterleaved; c.group = 8; });
  add_overlapped("group 1", [](PrefillCase& c) { c.group = 1; });
  add_overlapped("group 16", [](PrefillCase& c) { c.group = 16; c.num_kv_heads = 1; });
  add_overlapped("strided", [](PrefillCase& c) { c.strided = true; });
  add_overlapped("paged NHD 16 shuffled", [](PrefillCase& c) { c.page_size = 16; });
  add_overlapped("paged NHD 8 shuffled (16 boxes a tile), chunked",
                 [](PrefillCase& c) { c.page_size = 8; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add_overlapped("paged HND 128 (a page a tile), strided", [](PrefillCase& c) { c.page_size = 128; c.kv_layout = KvLayout::kHND; c.strided = true; });
  add_overlapped("paged NHD 256 (2 tiles a page), long window",
                 [](PrefillCase& c) { c.page_size = 256; c.q_lens = {1500, 1}; c.kv_lens = {2000, 33}; c.local_window = 1000; });
  // pages of 192 tokens (not a power of 2) take TMA boxes of 64-token tiles only
  add("persistent tma ws2 bm128 bn64 st2, paged NHD 192 (3 tiles a page), chunked",
      [&](PrefillCase& c) { c.config = persistent(128, 64, 2, 2); c.page_size = 192; c.q_lens = {17, 130, 700}; c.kv_lens = {300, 1000, 900}; });
  add_overlapped("paged NHD 32 in runs, empty and length-1 sequences",
                 [](PrefillCase& c) { c.page_size = 32; c.pages_in_runs = true; c.q_lens = {700, 0, 1, 70}; c.kv_lens = {900, 0, 1, 300}; });
  // head_dim 64 on the TMA tiles (one box column): FA3's 128 and 192 rows x 128 tokens, and deeper pipelines
  add_overlapped("head_dim 64, paged NHD 16, chunked",
                 [](PrefillCase& c) { c.head_dim = 64; c.page_size = 16; c.q_lens = {17, 130, 700}; c.kv_lens = {300, 1000, 900}; });
  add("persistent tma ws2 bm192 bn128 st2, head_dim 64, long window, empty and length-1 sequences",
      [&](PrefillCase& c) { c.config = persistent(192, 128, 2, 2); c.head_dim = 64; c.q_lens = {1500, 0, 1, 70}; c.kv_lens = {2000, 0, 1, 70}; c.local_window = 1000; });
  add("persistent tma ws1 bm192 bn128 st2, head_dim 64, paged NHD 16 in runs, sinks, learned sinks",
      [&](PrefillCase& c) { c.config = persistent(192, 128, 2, 1); c.head_dim = 64; c.page_size = 16; c.pages_in_runs = true; c.global_window = 3; c.sink_logits = true; });
  add("persistent tma ws2 bm128 bn128 st4, head_dim 64, fp16, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 4, 2); c.head_dim = 64; c.dtype = DType::kFP16; c.local_window = 1; c.global_window = 1; });
  add("persistent tma ws3 bm128 bn128 st3, head_dim 64, ping-pong, group 8",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 3, 3); c.head_dim = 64; c.group = 8; c.num_kv_heads = 1; c.q_lens = {600, 5}; c.kv_lens = {900, 400}; c.local_window = 500; });
  // the producer's register budget (producer_registers): FA3's 24 and 40, the consumers taking the rest
  // snake order: blocks take every other round's items backwards (each case has more items than a grid of 132 blocks)
  const auto snake = [&](int bm, int bn, int stages, int mode) { PrefillConfig c = persistent(bm, bn, stages, mode); c.snake_order = true; return c; };
  add("persistent tma ws2 bm128 bn128 st2 snake order, varlen with kv 0 and 1, long window",
      [&](PrefillCase& c) { c.config = snake(128, 128, 2, 2); c.q_lens = {1500, 0, 1, 300}; c.kv_lens = {2000, 0, 1, 700}; c.local_window = 1000; });
  add("persistent tma ws2 bm128 bn128 st2 snake order, paged NHD 16 shuffled, chunked, sinks",
      [&](PrefillCase& c) { c.config = snake(128, 128, 2, 2); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.global_window = 3; });
  add("persistent tma ws1 bm192 bn128 st2 snake order, head_dim 64, group 8",
      [&](PrefillCase& c) { c.config = snake(192, 128, 2, 1); c.head_dim = 64; c.group = 8; c.num_kv_heads = 1; c.q_lens = {3000, 5}; c.kv_lens = {3000, 400}; });
  // dynamic items: blocks claim their next item from a counter that each grid leaves at zero (the cases run one
  // after another on one stream, each with more items than a grid of 132 blocks; empty sequences claimed and skipped)
  const auto dynamic = [&](int mode) { PrefillConfig c = persistent(128, 128, 2, mode); c.dynamic_items = true; return c; };
  add("persistent tma ws2 bm128 bn128 st2 dynamic items, varlen with kv 0 and 1, long window",
      [&](PrefillCase& c) { c.config = dynamic(2); c.q_lens = {1500, 0, 1, 300}; c.kv_lens = {2000, 0, 1, 700}; c.local_window = 1000; });
  add("persistent tma ws2 bm128 bn128 st2 dynamic items, paged NHD 16 shuffled, chunked, sinks",
      [&](PrefillCase& c) { c.config = dynamic(2); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.global_window = 3; });
  add("persistent tma ws3 bm128 bn128 st2 dynamic items, ping-pong, full causal, group 8",
      [&](PrefillCase& c) { c.config = dynamic(3); c.group = 8; c.num_kv_heads = 2; c.q_lens = {2000, 64}; c.kv_lens = {2000, 64}; c.local_window = 0; c.global_window = 0; });
  add("persistent tma ws2 bm128 bn128 st2 dynamic items, overlapped items, chunked, learned sinks",
      [&](PrefillCase& c) { c.config = dynamic(2); c.config->overlap_items = true; c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.sink_logits = true; });
  // TMA store: full items' rows through the Q buffer and the TMA engine, partial ones from the registers
  const auto tma_store = [&](PrefillConfig c) { c.tma_store = true; return c; };
  add("persistent tma ws2 bm128 bn128 st2 snake order, TMA store, varlen with kv 0 and 1, long window",
      [&](PrefillCase& c) { c.config = tma_store(snake(128, 128, 2, 2)); c.q_lens = {1500, 0, 1, 300}; c.kv_lens = {2000, 0, 1, 700}; c.local_window = 1000; });
  add("persistent tma ws2 bm128 bn128 st2 dynamic items, TMA store, paged NHD 16 shuffled, chunked, sinks, learned sinks",
      [&](PrefillCase& c) { c.config = tma_store(dynamic(2)); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.global_window = 3; c.sink_logits = true; });
  add("persistent tma ws3 bm128 bn128 st2 TMA store, ping-pong, full causal, group 8, fp16",
      [&](PrefillCase& c) { c.config = tma_store(persistent(128, 128, 2, 3)); c.group = 8; c.num_kv_heads = 2; c.dtype = DType::kFP16; c.q_lens = {2000, 64}; c.kv_lens = {2000, 64}; c.local_window = 0; c.global_window = 0; });
  add("tma ws1 bm128 bn128 st2 TMA store, strided, chunked",
      [&](PrefillCase& c) { c.config = tma_store(tma(128, 128, 2, 1)); c.strided = true; c.q_lens = {256, 300}; c.kv_lens = {700, 300}; });
  // softmax chains: each row's max and sum in 4 independent chains (with the other knobs of the seq 4096 rows)
  const auto chains = [&](PrefillConfig c) { c.softmax_chains = true; return c; };
  add("persistent tma ws2 bm128 bn128 st2 softmax chains, varlen with kv 0 and 1, long window, sinks",
      [&](PrefillCase& c) { c.config = chains(persistent(128, 128, 2, 2)); c.q_lens = {1500, 0, 1, 300}; c.kv_lens = {2000, 0, 1, 700}; c.local_window = 1000; c.global_window = 3; });
  add("persistent tma ws2 bm128 bn128 st2 softmax chains, dynamic items, TMA store, paged NHD 16 shuffled, learned sinks",
      [&](PrefillCase& c) { c.config = chains(tma_store(dynamic(2))); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.sink_logits = true; });
  add("persistent tma ws3 bm128 bn128 st2 softmax chains, ping-pong, full causal, group 8, fp16",
      [&](PrefillCase& c) { c.config = chains(persistent(128, 128, 2, 3)); c.group = 8; c.num_kv_heads = 2; c.dtype = DType::kFP16; c.q_lens = {2000, 64}; c.kv_lens = {2000, 64}; c.local_window = 0; c.global_window = 0; });
  // overlapped items: an item's last P.V carried into the block's next item (items with no tiles between, one round
  // or many, zero-output sequences)
  const auto overlap = [&](bool snake_order) { PrefillConfig c = persistent(128, 128, 2, 2); c.snake_order = snake_order; c.overlap_items = true; return c; };
  add("persistent tma ws2 bm128 bn128 st2 overlapped items, varlen with kv 0 and 1, long window",
      [&](PrefillCase& c) { c.config = overlap(false); c.q_lens = {1500, 0, 1, 300, 2}; c.kv_lens = {2000, 0, 1, 700, 2}; c.local_window = 1000; });
  add("persistent tma ws2 bm128 bn128 st2 snake order, overlapped items, chunked, sinks, learned sinks",
      [&](PrefillCase& c) { c.config = overlap(true); c.num_kv_heads = 4; c.q_lens = {700, 130, 17}; c.kv_lens = {1200, 1000, 300}; c.global_window = 3; c.sink_logits = true; });
  add("persistent tma ws2 bm128 bn128 st2 snake order, overlapped items, paged NHD 16 shuffled, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = overlap(true); c.page_size = 16; c.num_kv_heads = 4; c.q_lens = {1000, 5, 0}; c.kv_lens = {1000, 400, 3}; c.local_window = 1; c.global_window = 1; });
  add("persistent tma ws2 bm128 bn128 st2 snake order, overlapped items, group 16, full causal, fp16",
      [&](PrefillCase& c) { c.config = overlap(true); c.group = 16; c.num_kv_heads = 1; c.dtype = DType::kFP16; c.q_lens = {2000, 64}; c.kv_lens = {2000, 64}; c.local_window = 0; c.global_window = 0; });
  add("persistent tma ws2 bm128 bn128 st2 overlapped items, one item a block, strided",
      [&](PrefillCase& c) { c.config = overlap(false); c.strided = true; });
  add("persistent tma ws2 bm128 bn128 st2 pr24, chunked, sinks",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 2); c.config->producer_registers = 24; c.q_lens = {17, 130, 700}; c.kv_lens = {300, 1000, 900}; c.global_window = 3; });
  add("persistent tma ws2 bm128 bn128 st2 pr40, paged NHD 16 shuffled, empty and length-1 sequences",
      [&](PrefillCase& c) { c.config = persistent(128, 128, 2, 2); c.config->producer_registers = 40; c.page_size = 16; c.q_lens = {700, 0, 1, 70}; c.kv_lens = {900, 0, 1, 300}; });
  add("persistent tma ws1 bm192 bn128 st2 pr24, head_dim 64, paged NHD 32 in runs, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = persistent(192, 128, 2, 1); c.config->producer_registers = 24; c.head_dim = 64; c.page_size = 32; c.pages_in_runs = true; c.local_window = 1; c.global_window = 1; });
  add("config bm64 bn64 st2 mt2, head_dim 64, non-causal",
      [](PrefillCase& c) { c.config = PrefillConfig{64, 64, 2, 2}; c.head_dim = 64; c.causal = false; });
  // 8-bit K/V ("quantized ..."): the heuristic's config (wgmma on sm_90a), forced mma.sync and wgmma configs.
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string name = std::string("quantized ") + std::string(to_string(quant)) + " K/V, ";
    const auto add_quantized = [&](const std::string& what, auto&& edit) {
      add(name + what, [&](PrefillCase& c) { c.kv_quant = quant; edit(c); });
    };
    add_quantized("contiguous, per-channel scales", [](PrefillCase&) {});
    add_quantized("contiguous, per-tensor scale, chunked",
                  [](PrefillCase& c) { c.per_tensor_scale = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
    add_quantized("paged NHD page 16, mma.sync bm64 bn32 st3",
                  [](PrefillCase& c) { c.page_size = 16; c.config = PrefillConfig{64, 32, 3}; });
    add_quantized("paged HND page 7, strided, fp16 q",
                  [](PrefillCase& c) { c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; c.dtype = DType::kFP16; });
    add_quantized("head_dim 256, mma.sync bm64 bn32 mt2, per-tensor scale, group 8", [](PrefillCase& c) {
      c.head_dim = 256; c.config = PrefillConfig{64, 32, 2, 2}; c.per_tensor_scale = true; c.group = 8; c.num_kv_heads = 1;
    });
    add_quantized("head_dim 64, fp16 q, paged NHD page 100, mma.sync bm128 bn64, chunked", [](PrefillCase& c) {
      c.head_dim = 64; c.dtype = DType::kFP16; c.page_size = 100; c.config = PrefillConfig{128, 64, 2};
      c.q_lens = {100, 3}; c.kv_lens = {700, 260};
    });
    add_quantized("wgmma ws1 bm192 bn64 st3 (the producer widens), chunked", [&](PrefillCase& c) {
      c.config = ws(192, 64, 3, 1); c.q_lens = {17, 130, 0, 1}; c.kv_lens = {300, 1000, 0, 1};
    });
    add_quantized("wgmma ws3 bm128 bn64 st2 (the producer widens), paged HND 13, strided, per-tensor scale, long window", [&](PrefillCase& c) {
      c.config = ws(128, 64, 2, 3); c.page_size = 13; c.kv_layout = KvLayout::kHND; c.strided = true; c.per_tensor_scale = true;
      c.num_kv_heads = 1; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000;
    });
    add_quantized("wgmma ws2 bm64 bn32 st3 (the producer widens), head_dim 256, fp16 q, sinks", [&](PrefillCase& c) {
      c.config = ws(64, 32, 3, 2); c.head_dim = 256; c.dtype = DType::kFP16; c.sink_logits = true;
    });
    add_quantized("wgmma bm128 bn64 oc2, interleaved GQA, sinks", [&](PrefillCase& c) {
      c.config = wgmma(128, 64, 2); c.config->min_blocks = 2; c.gqa = GqaMapping::kInterleaved; c.sink_logits = true;
    });
    add_quantized("wgmma bm128 bn128 st3, one long sequence, per-tensor scale", [&](PrefillCase& c) {
      c.config = wgmma(128, 128, 3); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; c.per_tensor_scale = true;
    });
    add_quantized("wgmma bm64 bn64, head_dim 64, fp16 q, group 8, paged HND page 13", [&](PrefillCase& c) {
      c.config = wgmma(64, 64, 2); c.head_dim = 64; c.dtype = DType::kFP16; c.group = 8; c.page_size = 13;
      c.kv_layout = KvLayout::kHND;
    });
    add_quantized("wgmma bm64 bn64 st2, head_dim 256, paged NHD page 16, chunked, window 1 + sink 1", [&](PrefillCase& c) {
      c.config = wgmma(64, 64, 2); c.head_dim = 256; c.page_size = 16; c.q_lens = {17, 130}; c.kv_lens = {300, 1000};
      c.local_window = 1; c.global_window = 1;
    });
    // tma: the stored 8-bit tiles moved by the TMA engine into a staging slot, widened in shared memory by two producer
    // warps into the 16-bit stages (persistent: the stages, staging and barrier phases run on across items)
    const auto kv8_tma = [&](int bm, int bn, int stages, int mode, bool persistent) {
      PrefillConfig c = ws(bm, bn, stages, mode); c.tma = true; c.persistent = persistent; return c;
    };
    add_quantized("tma widened, persistent ws2 bm128 bn128 st2 (the d128 tile), empty and length-1 sequences, chunked", [&](PrefillCase& c) {
      c.config = kv8_tma(128, 128, 2, 2, true); c.q_lens = {700, 0, 1, 70, 130}; c.kv_lens = {900, 0, 1, 300, 1000}; c.local_window = 500;
    });
    add_quantized("tma widened, persistent ws2 bm128 bn128 st2, per-tensor scale, paged NHD 16 shuffled, sinks, learned sinks", [&](PrefillCase& c) {
      c.config = kv8_tma(128, 128, 2, 2, true); c.per_tensor_scale = true; c.page_size = 16; c.global_window = 3; c.sink_logits = true;
    });
    add_quantized("tma widened, persistent ws2 bm128 bn128 st2, paged NHD 16 in runs, fp16 q, window 1 + sink 1", [&](PrefillCase& c) {
      c.config = kv8_tma(128, 128, 2, 2, true); c.page_size = 16; c.pages_in_runs = true; c.dtype = DType::kFP16;
      c.local_window = 1; c.global_window = 1;
    });
    add_quantized("tma widened, ws1 bm192 bn64 st3, paged HND 256 (part of a page), strided, interleaved GQA, chunked", [&](PrefillCase& c) {
      c.config = kv8_tma(192, 64, 3, 1, false); c.page_size = 256; c.kv_layout = KvLayout::kHND; c.strided = true;
      c.gqa = GqaMapping::kInterleaved; c.q_lens = {100, 3}; c.kv_lens = {700, 260};
    });
    add_quantized("tma widened, persistent ws3 bm128 bn64 st3, ping-pong, group 16, long window, non-causal", [&](PrefillCase& c) {
      c.config = kv8_tma(128, 64, 3, 3, true); c.group = 16; c.num_kv_heads = 1; c.q_lens = {1500, 5}; c.kv_lens = {2000, 400};
      c.local_window = 1000; c.causal = false;
    });
    add_quantized("tma widened, persistent ws2 bm64 bn64 st2, head_dim 256, paged NHD 64, per-tensor scale, full causal", [&](PrefillCase& c) {
      c.config = kv8_tma(64, 64, 2, 2, true); c.head_dim = 256; c.page_size = 64; c.per_tensor_scale = true;
      c.q_lens = {600, 1}; c.kv_lens = {900, 33}; c.local_window = 0; c.global_window = 0;
    });
    // f16_mma (bf16 q): Q rescaled by a power of 2 per item into fp16, K/V widened to fp16, P in fp16
    const auto kv8_f16 = [&](int bm, int bn, int stages, int mode) {
      PrefillConfig c = kv8_tma(bm, bn, stages, mode, true); c.f16_mma = true; return c;
    };
    add_quantized("tma widened f16, persistent ws2 bm128 bn128 st2, empty and length-1 sequences, chunked, sinks", [&](PrefillCase& c) {
      c.config = kv8_f16(128, 128, 2, 2); c.q_lens = {700, 0, 1, 70, 130}; c.kv_lens = {900, 0, 1, 300, 1000}; c.local_window = 500;
      c.global_window = 3; c.sink_logits = true;
    });
    add_quantized("tma widened f16, persistent ws2 bm128 bn128 st2, per-tensor scale, paged NHD 16 shuffled, group 8", [&](PrefillCase& c) {
      c.config = kv8_f16(128, 128, 2, 2); c.per_tensor_scale = true; c.page_size = 16; c.group = 8; c.num_kv_heads = 1;
    });
    add_quantized("tma widened f16, persistent ws3 bm128 bn64 st3, ping-pong, paged HND 64, strided, window 1 + sink 1", [&](PrefillCase& c) {
      c.config = kv8_f16(128, 64, 3, 3); c.page_size = 64; c.kv_layout = KvLayout::kHND; c.strided = true;
      c.local_window = 1; c.global_window = 1;
    });
    add_quantized("tma widened f16, persistent ws2 bm64 bn64 st2, head_dim 256, full causal", [&](PrefillCase& c) {
      c.config = kv8_f16(64, 64, 2, 2); c.head_dim = 256; c.q_lens = {600, 1}; c.kv_lens = {900, 33};
      c.local_window = 0; c.global_window = 0;
    });
    // widen_rows: 8 lanes widen 8 rows of one chunk column (head_dim 256: 16 chunk columns, 2 per lane)
    add_quantized("tma widened f16 wr, persistent ws2 bm128 bn128 st2, paged NHD 16 shuffled, chunked, sinks", [&](PrefillCase& c) {
      c.config = kv8_f16(128, 128, 2, 2); c.config->widen_rows = true; c.page_size = 16; c.q_lens = {17, 130, 700};
      c.kv_lens = {300, 1000, 900}; c.global_window = 3; c.sink_logits = true;
    });
    add_quantized("tma widened f16 wr, persistent ws2 bm64 bn64 st2, head_dim 256, per-tensor scale, empty sequence", [&](PrefillCase& c) {
      c.config = kv8_f16(64, 64, 2, 2); c.config->widen_rows = true; c.head_dim = 256; c.per_tensor_scale = true;
      c.q_lens = {600, 0, 1}; c.kv_lens = {900, 0, 33};
    });
    // widen_ahead: each widening lane's next chunk loaded before this one is stored (K and V widened)
    add_quantized("tma widened f16 wa, persistent ws2 bm128 bn128 st2, per-tensor scale, empty and length-1 sequences", [&](PrefillCase& c) {
      c.config = kv8_f16(128, 128, 2, 2); c.config->widen_ahead = true; c.per_tensor_scale = true;
      c.q_lens = {700, 0, 1, 70}; c.kv_lens = {900, 0, 1, 300};
    });
    // stored_k_scores: Q.K^T on the 8-bit tensor cores from the stored K tiles, Q split into 8-bit hi and lo tiles
    {
      const auto kv8_sk = [&](int bm, int bn, int stages, int mode) {
        PrefillConfig c = kv8_f16(bm, bn, stages, mode); c.stored_k_scores = true; return c;
      };
      add_quantized("tma sk, persistent ws2 bm128 bn128 st2, empty and length-1 sequences, chunked, sinks, learned sinks", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 2); c.q_lens = {700, 0, 1, 70, 130}; c.kv_lens = {900, 0, 1, 300, 1000};
        c.local_window = 500; c.global_window = 3; c.sink_logits = true;
      });
      add_quantized("tma sk wr, persistent ws2 bm128 bn128 st2, per-tensor scale, paged NHD 16 shuffled, group 8", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 2); c.config->widen_rows = true; c.per_tensor_scale = true; c.page_size = 16;
        c.group = 8; c.num_kv_heads = 1;
      });
      add_quantized("tma sk, persistent ws3 bm128 bn64 st3, ping-pong, paged HND 64, strided, window 1 + sink 1", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 64, 3, 3); c.page_size = 64; c.kv_layout = KvLayout::kHND; c.strided = true;
        c.local_window = 1; c.global_window = 1;
      });
      add_quantized("tma sk wa, persistent ws2 bm128 bn128 st2, paged NHD 16 shuffled, chunked, sinks", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 2); c.config->widen_ahead = true; c.page_size = 16; c.q_lens = {17, 130, 700};
        c.kv_lens = {300, 1000, 900}; c.global_window = 3; c.sink_logits = true;
      });
      add_quantized("tma sk, persistent ws1 bm128 bn128 st2, full causal, two sequences", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 1); c.q_lens = {1500, 5}; c.kv_lens = {2000, 400}; c.local_window = 0;
        c.global_window = 0;
      });
      // consumer_fold: the compute warps fold their own Q rows (the heuristic's choice on the causal ramp)
      add_quantized("tma sk cf, persistent ws2 bm128 bn128 st2 dynamic items, TMA store, softmax chains, paged NHD 16 shuffled, chunked", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 2); c.config->dynamic_items = c.config->tma_store = c.config->softmax_chains = true;
        c.config->consumer_fold = true;
        c.page_size = 16; c.q_lens = {17, 130, 700, 0}; c.kv_lens = {300, 1000, 900, 5}; c.local_window = 500;
      });
      add_quantized("tma sk cf, persistent ws3 bm128 bn64 st3, ping-pong, empty and length-1 sequences, sinks, learned sinks", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 64, 3, 3); c.config->consumer_fold = true; c.q_lens = {700, 0, 1, 70, 130};
        c.kv_lens = {900, 0, 1, 300, 1000}; c.local_window = 500; c.global_window = 3; c.sink_logits = true;
      });
      add_quantized("tma sk cf, persistent ws1 bm128 bn128 st2, full causal, per-tensor scale, group 16", [&](PrefillCase& c) {
        c.config = kv8_sk(128, 128, 2, 1); c.config->consumer_fold = true; c.per_tensor_scale = true; c.group = 16;
        c.num_kv_heads = 1; c.q_lens = {1500, 5}; c.kv_lens = {2000, 400}; c.local_window = 0; c.global_window = 0;
      });
      // stored_v (fp8): P.V on the 8-bit tensor cores from V tiles the producer transposes, P split into hi and lo
      if (quant == KvQuant::kFp8E4M3) {
        const auto kv8_sv = [&](int mode) { PrefillConfig c = kv8_sk(128, 128, 2, mode); c.stored_v = true; return c; };
        add_quantized("tma sk sv, persistent ws2 bm128 bn128 st2, empty and length-1 sequences, chunked, sinks, learned sinks", [&](PrefillCase& c) {
          c.config = kv8_sv(2); c.q_lens = {700, 0, 1, 70, 130}; c.kv_lens = {900, 0, 1, 300, 1000};
          c.local_window = 500; c.global_window = 3; c.sink_logits = true;
        });
        add_quantized("tma sk sv, persistent ws2 bm128 bn128 st2, per-tensor scale, paged NHD 16 shuffled, group 8", [&](PrefillCase& c) {
          c.config = kv8_sv(2); c.per_tensor_scale = true; c.page_size = 16; c.group = 8; c.num_kv_heads = 1;
        });
        add_quantized("tma sk sv, persistent ws3 bm128 bn128 st2, ping-pong, paged HND 64, strided, window 1 + sink 1", [&](PrefillCase& c) {
          c.config = kv8_sv(3); c.page_size = 64; c.kv_layout = KvLayout::kHND; c.strided = true; c.local_window = 1;
          c.global_window = 1; c.q_lens = {300, 5}; c.kv_lens = {1000, 37};
        });
        add_quantized("tma sk sv, persistent ws1 bm128 bn128 st2, full causal, two sequences", [&](PrefillCase& c) {
          c.config = kv8_sv(1); c.q_lens = {1500, 5}; c.kv_lens = {2000, 400}; c.local_window = 0; c.global_window = 0;
        });
        add_quantized("tma sk sv, persistent ws2 bm128 bn128 st2 snake order, overlapped items, varlen with kv 0 and 1", [&](PrefillCase& c) {
          c.config = kv8_sv(2); c.config->snake_order = c.config->overlap_items = true; c.num_kv_heads = 4;
          c.q_lens = {1500, 0, 1, 300, 2}; c.kv_lens = {2000, 0, 1, 700, 2}; c.local_window = 1000;
        });
        add_quantized("tma sk sv cf, persistent ws2 bm128 bn128 st2 dynamic items, TMA store, softmax chains, group 16", [&](PrefillCase& c) {
          c.config = kv8_sv(2); c.config->dynamic_items = c.config->tma_store = c.config->softmax_chains = true;
          c.config->consumer_fold = true;
          c.group = 16; c.num_kv_heads = 1; c.q_lens = {2000, 64}; c.kv_lens = {2000, 64}; c.local_window = 0;
          c.global_window = 0;
        });
      }
    }
  }
  return cases;
}

CaseResult run_prefill_case(const PrefillCase& c, int device_ordinal, uint64_t seed) {
  constexpr int kWgmmaMajor = 9;  // wgmma exists on sm_90a only
  if (c.config && c.config->wgmma && cuda_device(device_ordinal).cc_major != kWgmmaMajor) {
    CaseResult skipped;
    skipped.passed = true;
    skipped.detail = "skipped: wgmma needs sm_90a";
    return skipped;
  }
  std::mt19937_64 rng(seed);
  const int batch = int(c.q_lens.size()), D = c.head_dim, hkv = c.num_kv_heads, hq = hkv * c.group;
  HostPrefill host;
  host.num_q_heads = hq;
  host.num_kv_heads = hkv;
  host.head_dim = D;
  host.local_window = c.local_window;
  host.global_window = c.global_window;
  host.causal = c.causal;
  host.scale = 1.0 / std::sqrt(double(D));
  host.gqa = c.gqa;
  host.cu_seqlens_q = {0};
  host.cu_seqlens_k = {0};
  for (int b = 0; b < batch; ++b) {
    host.cu_seqlens_q.push_back(host.cu_seqlens_q.back() + c.q_lens[b]);
    host.cu_seqlens_k.push_back(host.cu_seqlens_k.back() + c.kv_lens[b]);
  }
  const int64_t total_q = host.cu_seqlens_q.back(), total_kv = host.cu_seqlens_k.back();
  host.q = random_values(size_t(total_q) * hq * D, c.dtype, rng);
  QuantizedCache k_quant, v_quant;  // 8-bit K/V: the reference sees the dequantized values
  if (c.kv_quant == KvQuant::kNone) {
    host.k = random_values(size_t(total_kv) * hkv * D, c.dtype, rng);
    host.v = random_values(size_t(total_kv) * hkv * D, c.dtype, rng);
  } else {
    const QuantizedLayout layout{c.kv_quant, c.per_tensor_scale, hkv, D, 1, KvLayout::kNHD};  // [total_kv, hkv, D]
    k_quant = random_quantized_cache(size_t(total_kv) * hkv * D, layout, rng);
    v_quant = random_quantized_cache(size_t(total_kv) * hkv * D, layout, rng);
    host.k = k_quant.values;
    host.v = v_quant.values;
  }
  if (c.sink_logits) {
    std::uniform_real_distribution<float> sink(-1.f, 3.f);
    for (int h = 0; h < hq; ++h) host.sink_logits.push_back(sink(rng));
  }
  const std::vector<double> ref = reference_prefill(host);

  const int64_t pad = row_padding(c.strided, false);  // elements of padding per row of q and out
  const int64_t kv_pad = row_padding(c.strided, c.kv_quant != KvQuant::kNone);
  const bool quantized = c.kv_quant != KvQuant::kNone;
  StridedTensor q_t = make_tensor({total_q, hq, D}, {hq * (D + pad) + pad, D + pad, 1});
  StridedTensor out_t = make_tensor({total_q, hq, D}, {hq * (D + 2 * pad), D + 2 * pad, 1});
  if (!c.strided) q_t = out_t = compact_tensor({total_q, hq, D});
  cuda::ScopedDeviceContext scope(device_ordinal);
  const DLDevice dev{kDLCUDA, device_ordinal};
  CaseMemory memory(dev);
  const DLDataType dt = dl_dtype(c.dtype), i32{kDLInt, 32, 1};
  const auto int_tensor = [&](const std::vector<int>& values, StridedTensor& t) {
    t = c.strided ? make_tensor({int64_t(values.size())}, {2}) : compact_tensor({int64_t(values.size())});
    std::vector<int> physical(t.physical_elements, -1);
    for (size_t i = 0; i < values.size(); ++i) physical[t.offset({int64_t(i)})] = values[i];
    return t.view(memory.put(physical), i32, dev);
  };
  StridedTensor cu_q_t, cu_k_t, lens_t;
  const DLTensor cu_q = int_tensor(host.cu_seqlens_q, cu_q_t);
  StridedTensor sink_t = make_tensor({hq}, {c.strided ? 2 : 1});
  std::vector<float> sink_physical(sink_t.physical_elements, NAN);
  for (int h = 0; h < hq && c.sink_logits; ++h) sink_physical[sink_t.offset({h})] = host.sink_logits[h];
  DLTensor sink_view = sink_t.view(memory.put(sink_physical), {kDLFloat, 32, 1}, dev);
  const DLTensor q = q_t.view(memory.put(scatter_16bit(host.q, q_t, c.dtype)), dt, dev);
  const DLTensor out = out_t.view(memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison)), dt, dev);

  PrefillOptions options;
  options.local_window = c.local_window;
  options.global_window = c.global_window;
  options.causal = c.causal;
  options.kv_layout = c.kv_layout;
  options.gqa = c.gqa;
  options.sink_logits = c.sink_logits ? &sink_view : nullptr;
  options.config = c.config;
  options.check_device_args = true;
  options.kv_quant = c.kv_quant;
  ScaleTensors scales(memory, k_quant, v_quant, c.per_tensor_scale, c.strided, hkv, D, dev);
  if (quantized) {
    options.k_scale = &scales.k;
    options.v_scale = &scales.v;
  }
  const DLDataType kv_dt = kv_storage_dtype(c.kv_quant, c.dtype);
  CUstream stream = nullptr;  // the legacy stream: check_device_args synchronizes it
  if (c.page_size == 0) {
    StridedTensor k_t = make_tensor({total_kv, hkv, D}, {hkv * (D + kv_pad) + kv_pad, D + kv_pad, 1});
    if (!c.strided) k_t = compact_tensor({total_kv, hkv, D});
    const DLTensor k = k_t.view(put_kv(memory, k_t, host.k, k_quant.codes, c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor v = k_t.view(put_kv(memory, k_t, host.v, v_quant.codes, c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor cu_k = int_tensor(host.cu_seqlens_k, cu_k_t);
    prefill(q, k, v, cu_q, cu_k, out, stream, options);
  } else {
    // Pages of every sequence in shuffled order (one spare page nobody uses), token j of sequence b at
    // (block_table[b][j / P], j % P).
    const int P = c.page_size;
    int max_pages = 1, num_pages = 1;
    for (int len : c.kv_lens) { max_pages = std::max(max_pages, (len + P - 1) / P); num_pages += (len + P - 1) / P; }
    std::vector<int> page_ids(num_pages);
    std::iota(page_ids.begin(), page_ids.end(), 0);
    if (c.pages_in_runs) {
      constexpr int kRunPeriod = 24, kSwapAt = 3;  // one swapped pair in 24 pages: most tiles are runs, some are not
      for (int i = kSwapAt; i + 1 < num_pages; i += kRunPeriod) std::swap(page_ids[i], page_ids[i + 1]);
    } else {
      std::shuffle(page_ids.begin(), page_ids.end(), rng);
    }
    const std::vector<int64_t> cache_shape = c.kv_layout == KvLayout::kNHD ? std::vector<int64_t>{num_pages, P, hkv, D}
                                                                         : std::vector<int64_t>{num_pages, hkv, P, D};
    StridedTensor cache_t = compact_tensor(cache_shape);
    if (c.strided) {
      const int64_t row = D + kv_pad;
      cache_t = make_tensor(cache_shape, c.kv_layout == KvLayout::kNHD
                                             ? std::vector<int64_t>{P * hkv * row + kv_pad, hkv * row, row, 1}
                                             : std::vector<int64_t>{hkv * P * row + kv_pad, P * row, row, 1});
    }
    std::vector<int> table(size_t(batch) * max_pages, 0);
    int next_page = 0;
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < (c.kv_lens[b] + P - 1) / P; ++i) table[size_t(b) * max_pages + i] = page_ids[next_page++];
    // Contiguous [total_kv, hkv, D] values (or codes) -> the compact paged cache (unused slots 0).
    const auto to_pages = [&](const auto& contiguous) {
      std::remove_cvref_t<decltype(contiguous)> paged(contiguous.empty() ? 0 : size_t(num_pages) * P * hkv * D);
      for (int b = 0; b < batch && !contiguous.empty(); ++b)
        for (int j = 0; j < c.kv_lens[b]; ++j)
          for (int h = 0; h < hkv; ++h) {
            const int page = table[size_t(b) * max_pages + j / P], slot = j % P;
            const size_t dst = c.kv_layout == KvLayout::kNHD ? ((size_t(page) * P + slot) * hkv + h) * D
                                                          : ((size_t(page) * hkv + h) * P + slot) * D;
            std::copy_n(&contiguous[(size_t(host.cu_seqlens_k[b] + j) * hkv + h) * D], D, &paged[dst]);
          }
      return paged;
    };
    const DLTensor k = cache_t.view(
        put_kv(memory, cache_t, to_pages(host.k), to_pages(k_quant.codes), c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor v = cache_t.view(
        put_kv(memory, cache_t, to_pages(host.v), to_pages(v_quant.codes), c.kv_quant, c.dtype), kv_dt, dev);
    StridedTensor bt_t = c.strided ? make_tensor({batch, max_pages}, {max_pages + 3, 1}) : compact_tensor({batch, max_pages});
    std::vector<int> bt_physical(bt_t.physical_elements, -1);
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < max_pages; ++i) bt_physical[bt_t.offset({b, i})] = table[size_t(b) * max_pages + i];
    const DLTensor block_table = bt_t.view(memory.put(bt_physical), i32, dev);
    const DLTensor seq_lens = int_tensor(c.kv_lens, lens_t);
    paged_prefill(q, k, v, block_table, seq_lens, cu_q, out, stream, options);
  }
  const std::vector<uint16_t> out_physical = memory.get<uint16_t>(out.data, out_t.physical_elements);
  return compare_to_reference(out_physical, out_t, out_t.shape, ref, c.dtype);
}

}  // namespace swajit
