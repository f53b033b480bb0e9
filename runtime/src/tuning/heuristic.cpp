#include "heuristic.hpp"

#include <algorithm>

#include "swajit/error.hpp"
#include "swajit/generator.hpp"

namespace swajit {

DecodeConfig heuristic_decode_config(const KernelSpec& spec, int max_shared_per_block, int max_shared_per_sm, int producer) {
  constexpr int kTargetWarps = 4;          // enough warps to keep cp.async traffic and tensor cores busy (16-bit)
  constexpr int kBlockN16Bit = 64;         // tokens of a 16-bit tile
  constexpr int kTilesInFlight16Bit = 2;   // 16-bit tiles in flight while one is consumed (3 stages)
  constexpr int kBlocksPerSmWanted = 2;    // so one block's epilogue overlaps another's loads
  constexpr int kMaxTokensPerWarp = 32;    // per tile: more score fragments than this spill registers (many rows)
  const int per_block_budget = std::min(max_shared_per_block, max_shared_per_sm / kBlocksPerSmWanted);
  // Tiles of kBlockN16Bit * widening tokens over kTargetWarps warps. What hides memory latency is
  // bytes in flight, not a stage count: the pipeline keeps kTilesInFlight16Bit 16-bit tiles' bytes in flight, or the
  // deepest shallower one that still leaves room for kBlocksPerSmWanted blocks per SM.
  const auto pipeline = [&](int widening) {
    DecodeConfig config;
    config.block_n = kBlockN16Bit * widening;
    config.stages = 2;
    config.producer = producer;
    const DecodeGeometry geometry = decode_geometry(spec, config);
    config.warps_n = std::max(1, kTargetWarps / geometry.warps_m);
    const int bytes_in_flight = kTilesInFlight16Bit * spec.head_dim * kBlockN16Bit * int(sizeof(uint16_t));
    const int tile_data_bytes = config.block_n * spec.head_dim * (spec.kv_quant == KvQuant::kNone ? 2 : 1);  // no padding
    config.stages = 1 + bytes_in_flight / tile_data_bytes;
    while (config.stages > 2 && decode_geometry(spec, config).shared_bytes > per_block_budget) --config.stages;
    return config;
  };
  // 8-bit tiles hold twice the tokens (the bytes of a 16-bit tile): a tile's time is mostly its fixed per-warp path
  // (barrier, loads issued, softmax reductions and rescale, dependent mma chains), not its bytes: at block_n 64 an
  // 8-bit tile took as long as a 16-bit one with half the bytes (41-48% of the halved floor, device run B), and
  // halving a 16-bit block's warps (bn32 wn2) cut its tile time only to 0.8x. 32 tokens per warp pay that path once
  // for twice the tokens, with 4 independent score chains instead of 2. Where such a pipeline would drop below 3
  // stages or 2 blocks per SM (head_dim 256), or give a warp more than kMaxTokensPerWarp tokens (more than 16 rows:
  // fewer warp columns), 8-bit tiles keep the 16-bit width and get a deeper pipeline instead.
  DecodeConfig config = pipeline(1);
  if (spec.kv_quant != KvQuant::kNone) {
    const DecodeConfig wide = pipeline(2);
    if (wide.stages >= 1 + kTilesInFlight16Bit && decode_geometry(spec, wide).shared_bytes <= per_block_budget &&
        wide.block_n / wide.warps_n <= kMaxTokensPerWarp)
      config = wide;
  }
  // A block that still does not fit the device gets a narrower tile (and no more warp columns than k16 steps).
  while (config.block_n > 16 && decode_geometry(spec, config).shared_bytes > max_shared_per_block) {
    config.block_n /= 2;
    config.warps_n = std::max(1, std::min(config.warps_n, config.block_n / 16));
  }
  config.num_splits = DecodeConfig::kSplitsFromCapacity;  // the work schedule fills the grid's resident blocks
  return config;
}

DecodeConfig heuristic_decode_config(const KernelSpec& spec, const DeviceInfo& device, int64_t sequence_heads) {
  const DecodeConfig config = heuristic_decode_config(spec, device.max_shared_per_block_optin, device.max_shared_per_sm);
  // 16-bit head_dim 256: the 64-token tile leaves 2 stages and one block per SM (Gemma 3 on the H200, device run B:
  // 57-59% of the floor at batch 32-128). 32-token tiles of 3 stages, two blocks per SM, moved by the producer warp's
  // bulk row copies (512-byte rows: half as many copies per byte as at head_dim 128, where the producer is 2x slower)
  // reach 75-78% (b32 211.6 -> 159.3 us, b128 817.9 -> 613.4); the same tiles loaded by every warp were 4-6% slower
  // than the default, and with fewer pairs than SMs (b8: 128 pairs) 1.5x slower (55.5 -> 82.1 us): the default stays.
  //
  // 16-bit head_dim 128 when the pairs alone fill two blocks per SM: 32-token tiles over 2 warps (4 blocks of half
  // the warps per SM, each meeting at its own barrier) were the tuner's winners on the H200 (runs C/D: batch 128 q1
  // 529.2 us against the heuristic's 558.5, q4 542.9 against 580.5) and on the H100 (Gemma-like batch 32).
  constexpr int kRowBytes16Bit = 2 * 128;  // head_dim 128
  constexpr int kBlocksPerSm = 2;
  const int row_bytes = spec.head_dim * 2;
  if (spec.kv_quant != KvQuant::kNone) return config;
  //
  // Those head_dim 256 tiles moved as TMA boxes of whole pages (producer 4) instead of row copies: 83% / 91% of the
  // floor at batch 32 / 128 (session 5 run B2: 144.3 / 528.4 us against 173.7 / 660.1 for the default), where page
  // sizes allow it (else the row copies; paged_decode.cpp also falls back when a call's layout does not suit TMA).
  DecodeConfig narrow{32, 2, 3, DecodeConfig::kSplitsFromCapacity};
  if (row_bytes > kRowBytes16Bit && device.cc_major >= 9 && sequence_heads >= device.sm_count) {
    narrow.producer = DecodeConfig::kProducerTma;
    try {
      narrow.validate(spec);
    } catch (const Error&) {
      narrow.producer = DecodeConfig::kProducerBulk;  // pages TMA boxes cannot fill
    }
  } else if (!(row_bytes == kRowBytes16Bit && sequence_heads >= int64_t(kBlocksPerSm) * device.sm_count))
    return config;
  narrow.warps_n = std::max(1, std::min(narrow.warps_n, config.warps_n));  // many rows: fewer warp columns
  const DecodeGeometry geometry = decode_geometry(spec, narrow);
  const int budget = std::min(device.max_shared_per_block_optin, device.max_shared_per_sm / kBlocksPerSm -
                                                                     device.reserved_shared_per_block);
  return geometry.shared_bytes <= budget ? narrow : config;
}

int merge_spreading_bytes(const DeviceInfo& device, int64_t merge_blocks) {
  const int64_t per_sm = (merge_blocks + device.sm_count - 1) / device.sm_count;
  if (per_sm > kMaxMergeBlocksPerSm) return 0;
  const int64_t share = device.max_shared_per_sm / (per_sm + 1) + 1 - device.reserved_shared_per_block;
  return int(std::clamp<int64_t>(share, 0, device.max_shared_per_block_optin));
}

}  // namespace swajit
