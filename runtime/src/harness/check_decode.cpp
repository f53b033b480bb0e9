// The decode check matrix and how one case runs on the GPU or the CPU backend.
#include "check.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "check_data.hpp"
#include "decode_plan.hpp"
#include "decode_schedule.h"
#include "heuristic.hpp"
#include "kernel_cache.hpp"
#include "paged_decode_problem.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

using namespace check_data;


namespace {
// The producer-warp loaders (DecodeConfig::producer 1: cp.async, 2: bulk row copies, 3: and K, V apart) under every tile path: masked
// edges, lengths 0 and 1, the work schedule and the merge, learned sinks, q_seqlen 4, pages of 7 tokens, HND strided
// rows, every head_dim, many row tiles, and 8-bit caches.
template <class Add>
void add_producer_cases(const Add& add) {
  for (int producer : {DecodeConfig::kProducerCpAsync, DecodeConfig::kProducerBulk, DecodeConfig::kProducerBulkSplitKv}) {
    const std::string name = "producer " + std::to_string(producer);
    for (int d : {64, 128, 256})
      add(name + ", head_dim " + std::to_string(d) + ", q4, sinks, split", [&](DecodeCase& c) {
        c.head_dim = d; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 1, 700, 2100}; c.local_window = 1000;
        c.config = DecodeConfig{64, 4, 3, 3, producer};
      });
    add(name + ", page_size 7, HND strided, bn32 wn2 st4", [&](DecodeCase& c) {
      c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; c.seq_lens = {1, 95, 400};
      c.config = DecodeConfig{32, 2, 4, 1, producer};
    });
    add(name + ", fp16, NHD strided, bn128 wn4 st2, window 300", [&](DecodeCase& c) {
      c.dtype = DType::kFP16; c.strided = true; c.q_seqlen = 2; c.seq_lens = {3, 129, 1000}; c.local_window = 300;
      c.config = DecodeConfig{128, 4, 2, 2, producer};
    });
    add(name + ", group 16 q_seqlen 8 (128 rows), st5", [&](DecodeCase& c) {
      c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.seq_lens = {8, 200};
      c.config = DecodeConfig{64, 1, 5, 1, producer};
    });
    add(name + ", ragged batch, capacity schedule", [&](DecodeCase& c) {
      c.num_kv_heads = 2; c.local_window = 4096; c.seq_lens = {0, 1, 6000, 2, 9, 300, 0, 17};
      c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity, producer};
    });
    // The heuristic's head_dim 256 config when every SM has a (sequence, kv head) pair (heuristic.cpp).
    add(name + ", head_dim 256, group 2, bn32 wn2 st3, direct", [&](DecodeCase& c) {
      c.head_dim = 256; c.group = 2; c.num_kv_heads = 4; c.local_window = 1024; c.seq_lens = {1, 1024, 1100, 3000};
      c.config = DecodeConfig{32, 2, 3, 1, producer};
    });
    for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
      const std::string kv = quant == KvQuant::kInt8 ? ", int8 KV" : ", fp8 KV";
      add(name + kv + ", q4, sinks, bn128 wn4 st3, split", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {4, 129, 1000, 4099}; c.local_window = 4096;
        c.config = DecodeConfig{128, 4, 3, 2, producer};
      });
      add(name + kv + ", head_dim 64, HND, page 7", [&](DecodeCase& c) {
        c.kv_quant = quant; c.head_dim = 64; c.kv_layout = KvLayout::kHND; c.page_size = 7; c.seq_lens = {0, 700, 2100};
        c.local_window = 1000; c.config = DecodeConfig{64, 4, 3, 1, producer};
      });
    }
  }
}

// The TMA page producer (DecodeConfig::producer 4): tiles on the block grid, a box per page (pages of 8, 16, 32 in
// tiles of 32-128) or a tile inside a page (64), NHD and HND, strided caches, windows starting inside a tile, the sink
// range apart from the window, tails past the last token and empty or length-1 sequences (the cp.async fallback), the
// capacity schedule, q_seqlen 1..8 with learned sinks, every head_dim, and the fused merge.
template <class Add>
void add_tma_page_cases(const Add& add) {
  const int tma = DecodeConfig::kProducerTma;
  for (int d : {64, 128, 256})
    add("producer 4, head_dim " + std::to_string(d) + ", q4, sinks, 3 splits", [d, tma](DecodeCase& c) {
      c.head_dim = d; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 1, 700, 2100}; c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, 3, tma};
    });
  add("producer 4, page_size 64, HND strided, bn32 wn2 st4, window 300", [tma](DecodeCase& c) {
    c.page_size = 64; c.kv_layout = KvLayout::kHND; c.strided = true; c.seq_lens = {1, 95, 400, 1000}; c.local_window = 300;
    c.config = DecodeConfig{32, 2, 4, 1, tma};
  });
  add("producer 4, page_size 8, fp16, NHD strided, bn128 wn4 st2, q2", [tma](DecodeCase& c) {
    c.dtype = DType::kFP16; c.page_size = 8; c.strided = true; c.q_seqlen = 2; c.seq_lens = {3, 129, 1000};
    c.local_window = 300; c.config = DecodeConfig{128, 4, 2, 2, tma};
  });
  add("producer 4, page_size 32, group 16 q_seqlen 8 (128 rows), st5", [tma](DecodeCase& c) {
    c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.page_size = 32; c.seq_lens = {8, 200, 777};
    c.config = DecodeConfig{64, 1, 5, 1, tma};
  });
  add("producer 4, ragged batch, capacity schedule", [tma](DecodeCase& c) {
    c.num_kv_heads = 2; c.local_window = 4096; c.seq_lens = {0, 1, 6000, 2, 9, 300, 0, 17};
    c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity, tma};
  });
  add("producer 4, head_dim 256, group 2, bn32 wn2 st3, sinks apart from the window", [tma](DecodeCase& c) {
    c.head_dim = 256; c.group = 2; c.num_kv_heads = 4; c.local_window = 1024; c.global_window = 40;
    c.seq_lens = {1, 1024, 1100, 3000};
    c.config = DecodeConfig{32, 2, 3, 1, tma};
  });
  add("producer 4, fused merge, q4, 5 splits, interleaved GQA", [tma](DecodeCase& c) {
    c.q_seqlen = 4; c.gqa = GqaMapping::kInterleaved; c.seq_lens = {4, 2000, 129, 4099}; c.local_window = 2048;
    c.config = DecodeConfig{64, 4, 3, 5, tma, true};
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string kv = quant == KvQuant::kInt8 ? ", int8 KV" : ", fp8 KV";
    add("producer 4" + kv + ", q4, sinks, bn128 wn4 st3, capacity", [quant, tma](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {4, 129, 1000, 4099}; c.local_window = 4096;
      c.config = DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity, tma};
    });
    add("producer 4" + kv + ", head_dim 256, HND strided, page 32, bn64, 3 splits", [quant, tma](DecodeCase& c) {
      c.kv_quant = quant; c.head_dim = 256; c.kv_layout = KvLayout::kHND; c.strided = true; c.page_size = 32;
      c.seq_lens = {0, 700, 2100}; c.local_window = 1000; c.config = DecodeConfig{64, 4, 3, 3, tma};
    });
  }
}

// The fused split-KV merge (DecodeConfig::fused_merge): the last block of each cut (sequence, kv head) merges its
// items, over fixed splits and the capacity schedule, every head_dim, q_seqlen 1..8 with sinks, 64- and 160-thread
// blocks, the producer loaders and 8-bit caches; each case calls twice on the GPU (run_decode_case: the counters must
// be back at zero for the second call to pass).
template <class Add>
void add_fused_merge_cases(const Add& add) {
  for (int d : {64, 128, 256})
    add("fused merge, head_dim " + std::to_string(d) + ", q4, sinks, 3 splits", [d](DecodeCase& c) {
      c.head_dim = d; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 1, 700, 2100}; c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, 3, 0, true};
    });
  add("fused merge, q1, bn32 wn2 (64 threads), 7 splits, sinks", [](DecodeCase& c) {
    c.sink_logits = true; c.seq_lens = {1, 5000, 0, 33}; c.local_window = 3000; c.global_window = 4;
    c.config = DecodeConfig{32, 2, 3, 7, 0, true};
  });
  add("fused merge, group 16 q_seqlen 8 (128 rows), 5 splits", [](DecodeCase& c) {
    c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.seq_lens = {8, 2000};
    c.config = DecodeConfig{64, 2, 3, 5, 0, true};
  });
  for (int batch : {1, 24})
    add("fused merge, capacity schedule, 16 kv heads, batch " + std::to_string(batch), [batch](DecodeCase& c) {
      c.num_kv_heads = 16; c.local_window = 4096;
      const std::vector<int> twelve = {5000, 1, 0, 33, 64, 65, 4000, 2, 17, 900, 3000, 129};
      c.seq_lens.clear();
      for (int b = 0; b < batch; ++b) c.seq_lens.push_back(twelve[b % twelve.size()]);
      c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity, 0, true};
    });
  add("fused merge, producer 2, page_size 7, HND strided, 4 splits", [](DecodeCase& c) {
    c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; c.seq_lens = {1, 950, 400};
    c.config = DecodeConfig{32, 2, 4, 4, DecodeConfig::kProducerBulk, true};
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3})
    add(std::string("fused merge, ") + (quant == KvQuant::kInt8 ? "int8" : "fp8") + " KV, q4, sinks, bn128, capacity",
        [quant](DecodeCase& c) {
          c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {4, 129, 1000, 4099}; c.local_window = 4096;
          c.config = DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity, 0, true};
        });
}
}  // namespace

std::vector<DecodeCase> decode_check_matrix() {
  std::vector<DecodeCase> cases;
  const auto add = [&](std::string name, auto&& edit) {
    DecodeCase c;
    c.name = std::move(name);
    edit(c);
    // A sequence shorter than q_seqlen is invalid input (tested separately): lift such lengths to q_seqlen.
    for (int& len : c.seq_lens)
      if (len > 0 && len < c.q_seqlen) len = c.q_seqlen;
    cases.push_back(std::move(c));
  };
  for (DType dtype : {DType::kBF16, DType::kFP16})
    for (int d : {64, 128, 256})
      add(std::string("head_dim ") + std::to_string(d) + " " + std::string(to_string(dtype)) + " q2",
          [&](DecodeCase& c) { c.dtype = dtype; c.head_dim = d; c.q_seqlen = 2; });
  for (int page : {1, 3, 16, 17, 100, 256})
    add("page_size " + std::to_string(page), [&](DecodeCase& c) {
      c.page_size = page;
      c.kv_layout = page % 2 ? KvLayout::kHND : KvLayout::kNHD;
      c.seq_lens = {0, 1, 257, 613};
      c.local_window = 200;
    });
  for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND})
    for (bool strided : {false, true})
      add(std::string("layout ") + std::string(to_string(layout)) + (strided ? " strided" : " contiguous"),
          [&](DecodeCase& c) { c.kv_layout = layout; c.strided = strided; c.q_seqlen = 3; });
  for (int qs = 1; qs <= 8; ++qs)
    add("q_seqlen " + std::to_string(qs), [&](DecodeCase& c) { c.q_seqlen = qs; c.group = 2; c.seq_lens = {qs, 9, 130}; });
  for (int group : {1, 2, 3, 5, 8, 16})
    add("group " + std::to_string(group), [&](DecodeCase& c) { c.group = group; c.num_kv_heads = group > 8 ? 1 : 3; });
  add("group 16 q_seqlen 8 (128 rows)", [](DecodeCase& c) { c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.seq_lens = {8, 200}; });
  add("group 16 q_seqlen 8 head_dim 256", [](DecodeCase& c) { c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.head_dim = 256; c.seq_lens = {8, 150}; });
  add("no windows (full attention)", [](DecodeCase& c) { c.local_window = 0; c.global_window = 0; });
  add("local window only", [](DecodeCase& c) { c.global_window = 0; });
  add("local window 1", [](DecodeCase& c) { c.local_window = 1; c.global_window = 0; c.q_seqlen = 4; c.seq_lens = {4, 50}; });
  add("local window 1 + sink 1", [](DecodeCase& c) { c.local_window = 1; c.global_window = 1; c.q_seqlen = 2; });
  add("window larger than sequence", [](DecodeCase& c) { c.local_window = 5000; c.global_window = 0; });
  add("sinks only", [](DecodeCase& c) { c.local_window = 0; c.global_window = 4; });
  add("sinks larger than sequence", [](DecodeCase& c) { c.local_window = 16; c.global_window = 400; });
  add("sinks past the window start", [](DecodeCase& c) { c.local_window = 100; c.global_window = 250; c.seq_lens = {300, 340}; });
  add("kv length 0 everywhere", [](DecodeCase& c) { c.seq_lens = {0, 0}; });
  add("kv length 1", [](DecodeCase& c) { c.seq_lens = {1}; });
  add("kv length == q_seqlen", [](DecodeCase& c) { c.q_seqlen = 5; c.seq_lens = {5, 5, 6}; });
  add("3-D q", [](DecodeCase& c) { c.q_3d = true; c.strided = true; });
  add("long sequence, heuristic splits", [](DecodeCase& c) { c.seq_lens = {5000}; c.local_window = 4096; c.num_kv_heads = 1; });
  for (int splits : {2, 3, 7})
    add("forced num_splits " + std::to_string(splits), [&](DecodeCase& c) {
      c.seq_lens = {0, 1, 700, 2100};
      c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, splits};
    });
  add("config bn32 wn2 st2", [](DecodeCase& c) { c.config = DecodeConfig{32, 2, 2, 1}; c.seq_lens = {0, 1, 95, 400}; });
  add("config bn128 wn1 st3", [](DecodeCase& c) { c.config = DecodeConfig{128, 1, 3, 2}; c.seq_lens = {3, 129, 1000}; c.local_window = 300; });
  add("learned sink logits", [](DecodeCase& c) { c.sink_logits = true; c.q_seqlen = 2; });
  add("learned sink logits, split", [](DecodeCase& c) {
    c.sink_logits = true; c.strided = true; c.seq_lens = {0, 700, 2100}; c.local_window = 1000;
    c.config = DecodeConfig{64, 4, 3, 3};
  });
  add("learned sink logits, window 1", [](DecodeCase& c) { c.sink_logits = true; c.local_window = 1; c.global_window = 0; });
  add("interleaved GQA", [](DecodeCase& c) { c.gqa = GqaMapping::kInterleaved; c.num_kv_heads = 3; c.q_seqlen = 3; });
  add("interleaved GQA, sinks, split", [](DecodeCase& c) {
    c.gqa = GqaMapping::kInterleaved; c.sink_logits = true; c.group = 8; c.seq_lens = {1, 900};
    c.config = DecodeConfig{32, 2, 2, 4};
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string name = quant == KvQuant::kInt8 ? "int8 KV" : "fp8 KV";
    add(name + ", per-channel scales", [&](DecodeCase& c) { c.kv_quant = quant; c.q_seqlen = 2; });
    add(name + ", per-tensor scale", [&](DecodeCase& c) { c.kv_quant = quant; c.per_tensor_scale = true; });
    add(name + ", fp16 q, HND, strided", [&](DecodeCase& c) {
      c.kv_quant = quant; c.dtype = DType::kFP16; c.kv_layout = KvLayout::kHND; c.strided = true;
    });
    add(name + ", head_dim 64, split", [&](DecodeCase& c) {
      c.kv_quant = quant; c.head_dim = 64; c.seq_lens = {0, 700, 2100}; c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, 3};
    });
    add(name + ", head_dim 256, 128 rows, sinks", [&](DecodeCase& c) {
      c.kv_quant = quant; c.head_dim = 256; c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.sink_logits = true;
      c.seq_lens = {8, 300};
    });
    // The register dequantization's fragment order must hold for every warp tiling and tile width.
    add(name + ", q_seqlen 4, sinks, heuristic splits", [&](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.num_kv_heads = 1; c.page_size = 7;
      c.seq_lens = {4, 4099, 5000}; c.local_window = 4096; c.global_window = 0;
    });
    add(name + ", group 1, config bn32 wn2 st2", [&](DecodeCase& c) {
      c.kv_quant = quant; c.group = 1; c.num_kv_heads = 3; c.config = DecodeConfig{32, 2, 2, 1}; c.seq_lens = {1, 95, 400};
    });
    // q k_scale far below fp16's normal range (2^-27) and far above it (2^20): the fp16 mmas of int8 caches
    // normalize q by a power of two.
    add(name + ", tiny q", [&](DecodeCase& c) { c.kv_quant = quant; c.q_exponent = -20; c.sink_logits = true; });
    add(name + ", huge q", [&](DecodeCase& c) { c.kv_quant = quant; c.q_exponent = 27; c.q_seqlen = 3; });
    add(name + ", config bn128 wn2 st4, split", [&](DecodeCase& c) {
      c.kv_quant = quant; c.config = DecodeConfig{128, 2, 4, 2}; c.seq_lens = {3, 129, 1000}; c.local_window = 300;
    });
    add(name + ", config bn64 wn4 st5 (the former default), split", [&](DecodeCase& c) {
      c.kv_quant = quant; c.config = DecodeConfig{64, 4, 5, 2}; c.seq_lens = {3, 129, 1000}; c.local_window = 300;
    });
    add(name + ", config bn128 wn8 st3, q_seqlen 2, split", [&](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 2; c.config = DecodeConfig{128, 8, 3, 2}; c.seq_lens = {2, 129, 1000}; c.local_window = 300;
    });
  }
  // Ragged batches under the work schedule (templates/decode_schedule.h): with 2 splits over 8 sequences the chunk is
  // ceil(sum of tiles / 16) tiles; lengths 0 and 1, a sequence of exactly one chunk and one a token over it, and a
  // very long one beside very short ones (cut into many items, merged), at q_seqlen 1 and 4, 16-bit and 8-bit KV.
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kInt8})
    for (int qs : {1, 4}) {
      const std::string name = std::string("ragged batch") + (quant == KvQuant::kNone ? "" : ", int8 KV") + " q" + std::to_string(qs);
      add(name + ", heuristic schedule", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = qs; c.local_window = 4096; c.num_kv_heads = 2;
        c.seq_lens = {0, 1, 6000, 2, 9, 300, 0, 17};
      });
      // 16 tiles of 32 over 8 sequences x 2 splits: chunk 2 tiles = 64 tokens; 64 is one chunk, 65 one token over.
      add(name + ", one chunk and one token over", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = qs; c.local_window = 0; c.global_window = 0;
        c.seq_lens = {64, 65, 0, 1, 64, 129, 30, 63};
        c.config = DecodeConfig{32, 2, 2, 2};
      });
      add(name + ", long beside short, many splits", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = qs; c.local_window = 3000; c.global_window = 4; c.sink_logits = qs == 4;
        c.seq_lens = {1, 5000, 0, 33};
        c.config = DecodeConfig{64, 4, 3, 7};
      });
    }
  // The capacity schedule (templates/decode_schedule.h) with 16 kv heads sharing the grid's resident blocks (on an H200
  // 264 / 16 = 16 slots per kv head): 12 and 24 ragged sequences are cut by cost (the chunk: the batch's tiles over
  // the slots; the long windows first, the short ones after), 70 of them take several rounds of the
  // kernel's 32-sequence scan, and 40 equal ones fill the slots: no cut, each sequence one item.
  for (int batch : {12, 24, 70})
    add("ragged batch, capacity schedule, 16 kv heads, batch " + std::to_string(batch), [batch](DecodeCase& c) {
      c.num_kv_heads = 16; c.local_window = 4096;
      const std::vector<int> twelve = {1, 5000, 0, 33, 64, 65, 4000, 2, 17, 900, 3000, 129};
      c.seq_lens.clear();
      for (int b = 0; b < batch; ++b) c.seq_lens.push_back(twelve[b % twelve.size()]);
      c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity};
    });
  // Blocks that take several sequences in turn (templates/decode_schedule.h): a few long windows among many short
  // sequences, so that a block's range holds the tail of a cut sequence, whole short ones (empty, length 1, a
  // piece's minimum and one over it) and the first piece of the next cut one; 2 blocks a sequence (48 blocks a kv
  // head), at q_seqlen 1 and 4, 16-bit and fp8 KV, and the capacity rule over 64 sequences with 2 long.
  const std::vector<int> bimodal = {3000, 1, 40, 0, 7, 100, 64, 65, 300, 5, 33, 17};
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kFp8E4M3})
    for (int qs : {1, 4})
      add(std::string("ragged batch, multi-item blocks") + (quant == KvQuant::kNone ? "" : ", fp8 KV") + " q" + std::to_string(qs),
          [&](DecodeCase& c) {
            c.kv_quant = quant; c.q_seqlen = qs; c.num_kv_heads = 2; c.local_window = 2048; c.sink_logits = qs == 4;
            c.seq_lens.clear();
            for (int b = 0; b < 24; ++b) c.seq_lens.push_back(bimodal[b % bimodal.size()]);
            c.config = DecodeConfig{32, 2, 3, 2};
          });
  add("ragged batch, multi-item blocks, capacity schedule, batch 64", [&](DecodeCase& c) {
    c.num_kv_heads = 4; c.local_window = 4096;
    c.seq_lens.assign(64, 0);
    for (int b = 0; b < 64; ++b) c.seq_lens[b] = b == 9 || b == 50 ? 9000 : bimodal[1 + b % (bimodal.size() - 1)];
    c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity};
  });
  add("uniform batch, capacity schedule, 16 kv heads, batch 40", [](DecodeCase& c) {
    c.num_kv_heads = 16; c.local_window = 4096;
    c.seq_lens.assign(40, 3000);
    c.config = DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity};
  });
  add("config bn16 wn1 st2", [](DecodeCase& c) { c.config = DecodeConfig{16, 1, 2, 1}; c.seq_lens = {1, 17, 33}; });
  // The direct kernel (paged_decode.cuh: one item per block, no schedule): batch 1 cut evenly into the capacity's or a
  // forced split's pieces (empty, length 1, fewer tiles than pieces, q4 with sinks, 8-bit, fused merge, TMA pages),
  // and num_splits 1 over a ragged batch (whole sequences).
  const auto direct = [&](std::string name, std::vector<int> lens, DecodeConfig config, auto&& more) {
    add("direct kernel, " + name, [&](DecodeCase& c) {
      c.seq_lens = lens; c.local_window = 4096; c.num_kv_heads = 2; c.config = config;
      more(c);
    });
  };
  const auto nothing = [](DecodeCase&) {};
  const DecodeConfig capacity{64, 4, 3, DecodeConfig::kSplitsFromCapacity};
  direct("batch 1, capacity cut, q4, sinks", {5000}, capacity, [](DecodeCase& c) { c.q_seqlen = 4; c.sink_logits = true; });
  direct("batch 1, capacity cut, head_dim 256, group 8", {4099}, DecodeConfig{32, 2, 3, DecodeConfig::kSplitsFromCapacity},
         [](DecodeCase& c) { c.head_dim = 256; c.group = 8; });
  direct("batch 1, 7 pieces of 3 tiles", {40}, DecodeConfig{16, 1, 2, 7}, nothing);
  direct("batch 1, kv length 0, 3 pieces", {0}, DecodeConfig{16, 1, 2, 3}, nothing);
  direct("batch 1, kv length 1, 3 pieces", {1}, DecodeConfig{16, 1, 2, 3}, nothing);
  direct("batch 1, fp8 KV, fused merge, capacity cut", {4099}, DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity, 0, true},
         [](DecodeCase& c) { c.kv_quant = KvQuant::kFp8E4M3; c.q_seqlen = 2; });
  direct("batch 1, producer 4 (TMA pages), capacity cut", {5000}, DecodeConfig{64, 4, 3, DecodeConfig::kSplitsFromCapacity, DecodeConfig::kProducerTma}, nothing);
  direct("num_splits 1, ragged batch", {0, 1, 64, 65, 5000, 33}, DecodeConfig{64, 4, 3, 1}, [](DecodeCase& c) { c.q_seqlen = 1; });
  // The heuristic's head_dim 128 config when the (sequence, kv head) pairs fill two blocks per SM (heuristic.cpp).
  for (int qs : {1, 4})
    add("config bn32 wn2 st3, capacity schedule, q_seqlen " + std::to_string(qs), [qs](DecodeCase& c) {
      c.q_seqlen = qs; c.local_window = 4096; c.seq_lens = {1, 4099, 5000, 300, 0, 64};
      c.config = DecodeConfig{32, 2, 3, DecodeConfig::kSplitsFromCapacity};
    });
  add_producer_cases(add);
  add_fused_merge_cases(add);
  add_decode_knob_cases([&](std::string name, const std::function<void(DecodeCase&)>& edit) { add(std::move(name), edit); });
  add_tma_page_cases(add);
  return cases;
}



CaseResult run_decode_case(const DecodeCase& c, DLDevice where, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int batch = int(c.seq_lens.size());
  const int hq = c.group * c.num_kv_heads, hkv = c.num_kv_heads, D = c.head_dim, P = c.page_size, Qs = c.q_seqlen;
  const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
  const int max_pages = (max_len + P - 1) / P + 1;  // one spare column: the table is wider than any sequence needs

  HostPagedDecode host;
  host.batch = batch; host.q_seqlen = Qs; host.num_q_heads = hq; host.num_kv_heads = hkv; host.head_dim = D;
  host.page_size = P; host.layout = c.kv_layout; host.local_window = c.local_window; host.global_window = c.global_window;
  host.max_pages_per_seq = max_pages;
  host.scale = 1.0 / std::sqrt(double(D));
  host.seq_lens = c.seq_lens;
  // Pages: every sequence's pages drawn from a shuffled pool with spares, so neighbours are not adjacent.
  int used_pages = 0;
  for (int len : c.seq_lens) used_pages += (len + P - 1) / P;
  host.num_pages = used_pages + 3;
  std::vector<int> pool(host.num_pages);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  host.block_table.assign(size_t(batch) * max_pages, 0);
  int next = 0;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < max_pages; ++i)
      host.block_table[size_t(b) * max_pages + i] = i < (c.seq_lens[b] + P - 1) / P ? pool[next++] : pool.back();
  host.q = random_values(size_t(batch) * Qs * hq * D, c.dtype, rng);
  for (float& x : host.q) x = std::ldexp(x, c.q_exponent);  // exact while in the dtype's range
  host.scale = std::ldexp(host.scale, -c.q_exponent);
  const size_t cache_elems = size_t(host.num_pages) * P * hkv * D;
  QuantizedCache k_quant, v_quant;
  if (c.kv_quant == KvQuant::kNone) {
    host.k = random_values(cache_elems, c.dtype, rng);
    host.v = random_values(cache_elems, c.dtype, rng);
  } else {
    const QuantizedLayout layout{c.kv_quant, c.per_tensor_scale, hkv, D, P, c.kv_layout};
    k_quant = random_quantized_cache(cache_elems, layout, rng);
    v_quant = random_quantized_cache(cache_elems, layout, rng);
    host.k = k_quant.values;
    host.v = v_quant.values;
  }
  host.gqa = c.gqa;
  if (c.sink_logits) {
    std::uniform_real_distribution<float> sink(-1.f, 3.f);  // comparable to the scores, so the sinks matter
    host.sink_logits.resize(hq);
    for (float& x : host.sink_logits) x = sink(rng);
  }
  const std::vector<double> ref = reference_paged_decode(host);

  // Device layouts.
  const int64_t pad = c.strided ? kVectorBytes / 2 : 0;  // 16-bit tensors
  const int64_t kv_pad = row_padding(c.strided, c.kv_quant != KvQuant::kNone);
  std::vector<int64_t> q_shape = {batch, Qs, hq, D};
  StridedTensor q_t = c.strided ? make_tensor(q_shape, {Qs * hq * (D + pad) + 2 * pad, hq * (D + pad), D + pad, 1})
                                : compact_tensor(q_shape);
  // out deliberately token-major when strided: its strides never equal q's.
  StridedTensor out_t = c.strided ? make_tensor(q_shape, {hq * D, int64_t(batch) * hq * D, D, 1}) : compact_tensor(q_shape);
  if (c.q_3d) {
    q_t = c.strided ? make_tensor({batch, hq, D}, {hq * (D + pad) + pad, D + pad, 1}) : compact_tensor({batch, hq, D});
    out_t = compact_tensor({batch, hq, D});
  }
  const std::vector<int64_t> cache_shape = c.kv_layout == KvLayout::kNHD ? std::vector<int64_t>{host.num_pages, P, hkv, D}
                                                                         : std::vector<int64_t>{host.num_pages, hkv, P, D};
  StridedTensor k_t = compact_tensor(cache_shape), v_t = compact_tensor(cache_shape);
  if (c.strided) {
    const int64_t row = D + kv_pad;
    const std::vector<int64_t> strides = c.kv_layout == KvLayout::kNHD
        ? std::vector<int64_t>{P * hkv * row + kv_pad, hkv * row, row, 1}
        : std::vector<int64_t>{hkv * P * row + kv_pad, P * row, row, 1};
    k_t = make_tensor(cache_shape, strides);
    v_t = make_tensor(cache_shape, strides);
  }
  StridedTensor bt_t = c.strided ? make_tensor({batch, max_pages}, {max_pages + 3, 1}) : compact_tensor({batch, max_pages});
  StridedTensor sl_t = c.strided ? make_tensor({batch}, {2}) : compact_tensor({batch});

  std::vector<int> bt_physical(bt_t.physical_elements, -1), sl_physical(sl_t.physical_elements, -1);
  for (int b = 0; b < batch; ++b) {
    sl_physical[sl_t.offset({b})] = c.seq_lens[b];
    for (int i = 0; i < max_pages; ++i) bt_physical[bt_t.offset({b, i})] = host.block_table[size_t(b) * max_pages + i];
  }

  const bool on_cpu = where.device_type == kDLCPU;
  std::optional<cuda::ScopedDeviceContext> scope;
  if (!on_cpu) scope.emplace(where.device_id);
  CaseMemory memory(where);
  void* q_d = memory.put(scatter_16bit(host.q, q_t, c.dtype));
  void* k_d = put_kv(memory, k_t, host.k, k_quant.codes, c.kv_quant, c.dtype);
  void* v_d = put_kv(memory, v_t, host.v, v_quant.codes, c.kv_quant, c.dtype);
  const DLDataType kv_dtype = kv_storage_dtype(c.kv_quant, c.dtype);
  ScaleTensors scales(memory, k_quant, v_quant, c.per_tensor_scale, c.strided, hkv, D, where);
  void* bt_d = memory.put(bt_physical);
  void* sl_d = memory.put(sl_physical);
  StridedTensor sink_t = make_tensor({hq}, {c.strided ? 2 : 1});
  std::vector<float> sink_physical(sink_t.physical_elements, NAN);
  for (int h = 0; h < hq && c.sink_logits; ++h) sink_physical[sink_t.offset({h})] = host.sink_logits[h];
  DLTensor sink_view = sink_t.view(memory.put(sink_physical), {kDLFloat, 32, 1}, where);
  void* out_d = memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison));

  const DLDevice dev = where;
  const DLDataType dt = dl_dtype(c.dtype);
  DecodeOptions options;
  options.local_window = c.local_window;
  options.global_window = c.global_window;
  options.kv_layout = c.kv_layout;
  options.gqa = c.gqa;
  options.sink_logits = c.sink_logits ? &sink_view : nullptr;
  options.kv_quant = c.kv_quant;
  if (c.q_exponent != 0) options.softmax_scale = float(host.scale);
  if (c.kv_quant != KvQuant::kNone) {
    options.k_scale = &scales.k;
    options.v_scale = &scales.v;
  }
  if (on_cpu) {
    options.cpu_config = cpu_config_of(c);
  } else {
    options.config = c.config;
    options.check_device_args = true;
  }
  CUstream stream = nullptr;
  if (!on_cpu) cuda::check(cuda::driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  struct StreamGuard {
    CUstream s;
    ~StreamGuard() { if (s) cuda::driver().cuStreamDestroy(s); }
  } guard{stream};
  const auto call = [&](void* out) {
    paged_decode(q_t.view(q_d, dt, dev), k_t.view(k_d, kv_dtype, dev), v_t.view(v_d, kv_dtype, dev),
                 bt_t.view(bt_d, {kDLInt, 32, 1}, dev), sl_t.view(sl_d, {kDLInt, 32, 1}, dev), out_t.view(out, dt, dev),
                 stream, options);
  };
  // The fused merge's arrival counters must be back at zero after a call: a first call into a scratch output, then
  // the compared one.
  if (!on_cpu && c.config && c.config->fused_merge)
    call(memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison)));
  call(out_d);
  const std::vector<uint16_t> out_physical = memory.get<uint16_t>(out_d, out_t.physical_elements);

  const std::vector<int64_t> logical = c.q_3d ? std::vector<int64_t>{batch, hq, D} : q_shape;
  return compare_to_reference(out_physical, out_t, logical, ref, c.dtype);
}

std::optional<CpuDecodeConfig> cpu_config_of(const DecodeCase& c) {
  if (!c.config) return std::nullopt;  // the CPU heuristic
  CpuDecodeConfig cpu;
  cpu.block_n = c.config->block_n;  // the forced tile and splits carry over; warps and stages are GPU-only
  if (c.config->num_splits != DecodeConfig::kSplitsFromCapacity)  // the capacity rule sizes GPU grids only
    cpu.num_splits = c.config->num_splits;
  return cpu;
}

void build_in_parallel(size_t count, DLDevice where, int threads,
                       const std::function<void(size_t, const cuda::ScopedDeviceContext*)>& build) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&]() noexcept {
      std::optional<cuda::ScopedDeviceContext> scope;
      try {
        if (where.device_type != kDLCPU) scope.emplace(where.device_id);
      } catch (const std::exception&) {
        return;  // no device: every case reports the same error when it runs
      }
      for (size_t i = next++; i < count; i = next++) {
        try {
          build(i, scope ? &*scope : nullptr);
        } catch (const std::exception&) {
          // Not fatal here: the case meets the same error when it runs and reports it as its own failure.
        }
      }
    });
  for (auto& t : pool) t.join();
}

void precompile_cases(const std::vector<DecodeCase>& cases, DLDevice where, int threads) {
  build_in_parallel(cases.size(), where, threads, [&](size_t i, const cuda::ScopedDeviceContext* scope) {
    const KernelSpec spec = cases[i].spec();
    if (!scope) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
      cpu_decode_kernel(spec, cpu_config_of(cases[i]).value_or(CpuDecodeConfig{}));
#endif
      return;
    }
    const DeviceInfo& device = cuda_device(where.device_id);
    const DecodeCase& c = cases[i];
    DecodeConfig config = c.config ? *c.config : heuristic_decode_config(spec, device);
    // The grid the call runs (paged_decode.cpp with_call_grid, the lengths on the device; each grid is its own
    // module): the visible bound of run_decode_case's block table (a spare page column).
    const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
    const int64_t addressable = int64_t((max_len + c.page_size - 1) / c.page_size + 1) * c.page_size;
    const int visible_bound = visible_kv_bound(addressable, c.local_window, c.q_seqlen, c.global_window);
    config.direct_grid = runs_direct_grid(config, visible_bound, c.seq_lens.size() == 1);
    decode_kernel(spec, config, device, scope->context());
  });
}

}  // namespace swajit
