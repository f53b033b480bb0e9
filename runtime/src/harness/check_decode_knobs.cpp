// Decode check cases of the loader and 8-bit KV knobs (DecodeConfig::integer_scores, pages_first, pages_ahead,
// early_tiles, min_blocks), apart from check_decode.cpp to keep each file short.
#include "check.hpp"

namespace swajit {
namespace {

// int8 scores on the integer tensor cores (DecodeConfig::integer_scores): Q quantized per row (rows of very different
// size in one block: tiny / huge q, 16 heads of a group), every head_dim (d256 reads Q from shared memory), every
// loader, masked edges and sinks, q_seqlen 1..8, per-tensor and per-channel scales.
void add_integer_score_cases(const DecodeCaseAdder& add) {
  const auto integer = [](DecodeConfig config) { config.integer_scores = true; return config; };
  add("integer scores, int8 KV, q4, sinks, bn128 wn4 st3, capacity", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {4, 129, 1000, 4099};
    c.local_window = 4096; c.config = integer(DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity});
  });
  add("integer scores, int8 KV, bn64 wn2 st4, window 300, per-tensor scale", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.per_tensor_scale = true; c.seq_lens = {0, 1, 129, 1000}; c.local_window = 300;
    c.config = integer(DecodeConfig{64, 2, 4, 2});
  });
  // (128 rows at head_dim 256 do not fit beside their int8 Q operands: 64 rows here.)
  add("integer scores, int8 KV, head_dim 256, group 8 q8 (64 rows), sinks", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.head_dim = 256; c.group = 8; c.q_seqlen = 8; c.num_kv_heads = 1;
    c.sink_logits = true; c.seq_lens = {8, 300}; c.config = integer(DecodeConfig{64, 1, 3, 1});
  });
  add("integer scores, int8 KV, head_dim 64, HND strided, page 7, fp16", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.head_dim = 64; c.dtype = DType::kFP16; c.kv_layout = KvLayout::kHND; c.strided = true;
    c.page_size = 7; c.seq_lens = {0, 700, 2100}; c.local_window = 1000; c.config = integer(DecodeConfig{64, 4, 3, 1});
  });
  add("integer scores, int8 KV, tiny q", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.q_exponent = -20; c.sink_logits = true; c.config = integer(DecodeConfig{128, 4, 3, 1});
  });
  add("integer scores, int8 KV, huge q, q3", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kInt8; c.q_exponent = 27; c.q_seqlen = 3; c.config = integer(DecodeConfig{128, 4, 3, 1});
  });
  for (int producer : {DecodeConfig::kProducerBulk, DecodeConfig::kProducerTma})
    add("integer scores, int8 KV, producer " + std::to_string(producer) + ", q4, sinks, capacity", [&](DecodeCase& c) {
      c.kv_quant = KvQuant::kInt8; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {4, 129, 1000, 4099};
      c.local_window = 4096; c.config = integer(DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity, producer});
    });
}

// Pages-first loads (DecodeConfig::pages_first): every loader that gathers by cp.async (all warps, the producer warp,
// the TMA producer's fallback for tails), tiles past the end, pages of 7, HND strided, 8-bit and 16-bit caches.
void add_pages_first_cases(const DecodeCaseAdder& add) {
  const auto first = [](DecodeConfig config) { config.pages_first = true; return config; };
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string kv = quant == KvQuant::kNone ? "" : quant == KvQuant::kInt8 ? ", int8 KV" : ", fp8 KV";
    add("pages first" + kv + ", q4, sinks, capacity", [&](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099}; c.local_window = 4096;
      c.config = first(DecodeConfig{quant == KvQuant::kNone ? 64 : 128, 4, 3, DecodeConfig::kSplitsFromCapacity});
    });
    add("pages first" + kv + ", page_size 7, HND strided, bn64 wn2 st4, window 300", [&](DecodeCase& c) {
      c.kv_quant = quant; c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; c.seq_lens = {1, 95, 400, 1000};
      c.local_window = 300; c.config = first(DecodeConfig{64, 2, 4, 2});
    });
    for (int producer : {DecodeConfig::kProducerCpAsync, DecodeConfig::kProducerTma})
      add("pages first" + kv + ", producer " + std::to_string(producer) + ", q2, 3 splits", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = 2; c.seq_lens = {2, 33, 700, 2100}; c.local_window = 1000;
        c.config = first(DecodeConfig{64, 2, 3, 3, producer});
      });
    // Registers capped for 2 blocks an SM (DecodeConfig::min_blocks), the producer configs it is for.
    add("min blocks 2" + kv + ", producer 4, q4, sinks, capacity", [&](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099}; c.local_window = 4096;
      c.config = DecodeConfig{quant == KvQuant::kNone ? 64 : 128, 4, 3, DecodeConfig::kSplitsFromCapacity, DecodeConfig::kProducerTma};
      c.config->min_blocks = 2;
    });
  }
}

// Block_table entries read a tile step ahead (DecodeConfig::pages_ahead, every warp loading): pages of one token (an
// entry per row), of 7 (tiles over page boundaries), HND strided, kv lengths 0 and 1, windows past the sequence, the
// schedule's cut items (their first tiles read in the prologue), 8-bit and 16-bit caches, head_dim 64 and 256.
void add_pages_ahead_cases(const DecodeCaseAdder& add) {
  const auto ahead = [](DecodeConfig config) { config.pages_ahead = true; return config; };
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string kv = quant == KvQuant::kNone ? "" : quant == KvQuant::kInt8 ? ", int8 KV" : ", fp8 KV";
    add("pages ahead" + kv + ", page 1, q4, sinks, capacity", [&](DecodeCase& c) {
      c.kv_quant = quant; c.page_size = 1; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099};
      c.local_window = 4096; c.config = ahead(DecodeConfig{quant == KvQuant::kNone ? 64 : 128, 4, 3, DecodeConfig::kSplitsFromCapacity});
    });
    add("pages ahead" + kv + ", page 1, bn32 wn2 st4, window 300, 3 splits", [&](DecodeCase& c) {
      c.kv_quant = quant; c.page_size = 1; c.seq_lens = {1, 2, 95, 1000}; c.local_window = 300;
      c.config = ahead(DecodeConfig{32, 2, 4, 3});
    });
    add("pages ahead" + kv + ", page_size 7, HND strided, bn64 wn2 st4, window 300", [&](DecodeCase& c) {
      c.kv_quant = quant; c.page_size = 7; c.kv_layout = KvLayout::kHND; c.strided = true; c.seq_lens = {1, 95, 400, 1000};
      c.local_window = 300; c.config = ahead(DecodeConfig{64, 2, 4, 2});
    });
  }
  add("pages ahead, fp8 KV, page 16, pages first, bn128 wn4 st3 (the fp8 default), q4, sinks, capacity", [&](DecodeCase& c) {
    c.kv_quant = KvQuant::kFp8E4M3; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099, 5000};
    c.local_window = 4096; c.config = ahead(DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity});
    c.config->pages_first = true;
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3})
    add(std::string("pages ahead, ") + (quant == KvQuant::kInt8 ? "int8" : "fp8") +
            " KV, page 16, pages first, bn64 wn2 st3 (the 8-bit default from 64 sequences), q4, sinks, capacity",
        [&](DecodeCase& c) {
          c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099, 5000};
          c.local_window = 4096; c.config = ahead(DecodeConfig{64, 2, 3, DecodeConfig::kSplitsFromCapacity});
          c.config->pages_first = true;
        });
  add("pages ahead, page 1, head_dim 256, group 2, window 1024, capacity", [&](DecodeCase& c) {
    c.head_dim = 256; c.group = 2; c.page_size = 1; c.seq_lens = {3, 1100, 2500}; c.local_window = 1024;
    c.config = ahead(DecodeConfig{32, 2, 3, DecodeConfig::kSplitsFromCapacity});
  });
  add("pages ahead, page 1, head_dim 64, group 8, sinks, q2, pages first too", [&](DecodeCase& c) {
    c.head_dim = 64; c.group = 8; c.page_size = 1; c.q_seqlen = 2; c.sink_logits = true; c.seq_lens = {2, 130, 700};
    c.local_window = 128; c.config = ahead(DecodeConfig{64, 4, 3, 1});
    c.config->pages_first = true;
  });
  // Gemma 3's shape on the tile its batch-8 default now takes (heuristic.cpp, schedule_allows): TMA pages bn32 wn2 st3
  // over capacity splits, 8 sequences with a tail past the last whole tile, kv 0 and 1.
  add("gemma 3 shape, head_dim 256, group 2, window 1024, producer 4 bn32 wn2 st3, capacity", [&](DecodeCase& c) {
    c.head_dim = 256; c.group = 2; c.num_kv_heads = 4; c.global_window = 0; c.local_window = 1024;
    c.seq_lens = {0, 1, 100, 1024, 1500, 2049, 3000, 4099};
    c.config = DecodeConfig{32, 2, 3, DecodeConfig::kSplitsFromCapacity, DecodeConfig::kProducerTma};
  });
}

// An item's first tiles issued before the block waits for Q (DecodeConfig::early_tiles, producer warps): every
// producer, items shorter than the pipeline (kv 0, 1, a window of a few tokens), the schedule's cut items and several
// items a block, 8-bit (whose Q preparation has block barriers the producer joins late) and head_dim 256.
void add_early_tiles_cases(const DecodeCaseAdder& add) {
  const auto early = [](DecodeConfig config) { config.early_tiles = true; return config; };
  add("early tiles, gemma 3 shape, head_dim 256, group 2, window 1024, producer 4 bn32 wn2 st3, capacity", [&](DecodeCase& c) {
    c.head_dim = 256; c.group = 2; c.num_kv_heads = 4; c.global_window = 0; c.local_window = 1024;
    c.seq_lens = {0, 1, 100, 1024, 1500, 2049, 3000, 4099};
    c.config = early(DecodeConfig{32, 2, 3, DecodeConfig::kSplitsFromCapacity, DecodeConfig::kProducerTma});
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string kv = quant == KvQuant::kInt8 ? ", int8 KV" : ", fp8 KV";
    add("early tiles" + kv + ", producer 4 oc2, q4, sinks, capacity", [&](DecodeCase& c) {
      c.kv_quant = quant; c.q_seqlen = 4; c.sink_logits = true; c.seq_lens = {0, 4, 129, 1000, 4099}; c.local_window = 4096;
      c.config = early(DecodeConfig{128, 4, 3, DecodeConfig::kSplitsFromCapacity, DecodeConfig::kProducerTma});
      c.config->min_blocks = 2;
    });
  }
  for (int producer : {DecodeConfig::kProducerCpAsync, DecodeConfig::kProducerBulk, DecodeConfig::kProducerBulkSplitKv})
    add("early tiles, producer " + std::to_string(producer) + ", page_size 7, window 20, 3 splits", [&](DecodeCase& c) {
      c.page_size = 7; c.seq_lens = {1, 2, 30, 95, 1000}; c.local_window = 20;
      c.config = early(DecodeConfig{32, 2, 4, 3, producer});
    });
}

// Blocks of exactly 8 rows, whose softmax skips the padding half of their row tile (attention_tile.cuh, kLiveHalves):
// q1 x group 8 and q2 x group 4, masked window edges, sinks, a fully masked row (kv 0), 16-bit and 8-bit caches.
void add_padding_row_cases(const DecodeCaseAdder& add) {
  for (KvQuant quant : {KvQuant::kNone, KvQuant::kFp8E4M3})
    for (int q_seqlen : {1, 2}) {
      const std::string kv = quant == KvQuant::kNone ? "" : ", fp8 KV";
      add("padding rows, 8 rows (q" + std::to_string(q_seqlen) + ")" + kv + ", sinks, window 300, capacity", [&](DecodeCase& c) {
        c.kv_quant = quant; c.q_seqlen = q_seqlen; c.group = 8 / q_seqlen; c.sink_logits = true;
        c.seq_lens = {0, 2, 77, 300, 1000}; c.local_window = 300;
      });
    }
}

}  // namespace

void add_decode_knob_cases(const DecodeCaseAdder& add) {
  add_padding_row_cases(add);
  add_integer_score_cases(add);
  add_pages_first_cases(add);
  add_pages_ahead_cases(add);
  add_early_tiles_cases(add);
}

}  // namespace swajit
