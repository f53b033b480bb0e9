// swajit: what a kernel is specialized for (KernelSpec) and how it is tuned (DecodeConfig).
// A KernelSpec is a plain value with one canonical string form, its key. The key is the tuning-DB key, the suffix
// of the kernel's symbol, and what `swajit gen` prints in the source header.
#pragma once
#include <string>
#include <string_view>

namespace swajit {

enum class KernelFamily { kPagedDecode, kPrefill, kSparseDecode };
enum class DType { kBF16, kFP16 };
enum class KvLayout { kNHD, kHND };  // NHD: [pages, page_size, kv_heads, head_dim]; HND: [pages, kv_heads, page_size, head_dim]
// Which kv head query head h reads: grouped h / group (Llama, Mistral), or interleaved h % num_kv_heads.
enum class GqaMapping { kGrouped, kInterleaved };
// Storage of the K/V cache: the q/out dtype (none), or 8 bits dequantized with float scales.
enum class KvQuant { kNone, kInt8, kFp8E4M3 };

std::string_view to_string(KernelFamily family);
std::string_view to_string(DType dtype);
std::string_view to_string(KvLayout layout);
std::string_view to_string(KvQuant quant);
std::string_view to_string(GqaMapping gqa);
KernelFamily parse_family(std::string_view text);  // throws kInvalidArgument listing the accepted names
DType parse_dtype(std::string_view text);
KvLayout parse_kv_layout(std::string_view text);
KvQuant parse_kv_quant(std::string_view text);     // none | int8 | fp8
GqaMapping parse_gqa(std::string_view text);       // grouped | interleaved

// Allowed ranges, one place.
struct SpecLimits {
  static constexpr int kHeadDims[] = {64, 128, 256};
  static constexpr int kMinPageSize = 1, kMaxPageSize = 256;
  static constexpr int kMinQSeqlen = 1, kMaxQSeqlen = 8;
  static constexpr int kMinGroup = 1, kMaxGroup = 16;
  // sparse_decode: DeepSeek runs 16-128 q heads over one latent head; its selections hold up to 2048 positions,
  // specialized by a power-of-two bucket of at least one tile; the shared (MLA) cache row of 576 columns.
  static constexpr int kMaxSparseGroup = 128;
  static constexpr int kMinTopkBucket = 16, kMaxTopk = 2048;
  static constexpr int kSharedKvHeadDim = 576;
};
// The topk bucket a selection of `topk` slots is specialized for: the next power of two, at least one tile.
int topk_bucket(int topk);

struct KernelSpec {
  KernelFamily family = KernelFamily::kPagedDecode;
  DType dtype = DType::kBF16;          // q, k, v and out
  int head_dim = 128;
  int page_size = 16;                  // prefill only: 0 = contiguous K/V (cu_seqlens_k), no pages
  KvLayout kv_layout = KvLayout::kNHD;
  int q_seqlen = 1;                    // decode: query tokens per sequence (speculative decode: > 1); prefill: 1
  bool causal = true;                  // prefill only: false drops "j <= p" (the windows still apply)
  int group = 1;                       // num_q_heads / num_kv_heads
  bool local_window = false;           // a sliding window limits what each query sees
  bool global_window = false;          // leading sink tokens are always visible
  bool sink_logits = false;            // learned per-head sink logits join each row's softmax denominator
  GqaMapping gqa = GqaMapping::kGrouped;
  KvQuant kv_quant = KvQuant::kNone;
  // sparse_decode only (0 / false elsewhere):
  int topk = 0;                        // topk bucket (topk_bucket): the selection's slots, padded
  int head_dim_v = 0;                  // columns of V and out (== head_dim unless shared_kv)
  bool shared_kv = false;              // one cache: its rows are K, their first head_dim_v columns are V (MLA)
  bool score_bias = false;             // a float32 bias per selected slot is added to the scaled score

  // e.g. "paged_decode_bf16_d128_p16_nhd_q4_g4_local_global", "prefill_bf16_d128_contig_g4_local"; the windows
  // part is full|local|global|local_global, then optional flags in this order: noncausal (prefill), attnsink
  // (learned sink logits), gqai (interleaved GQA), kvint8 | kvfp8 (8-bit KV cache). sparse_decode:
  // "sparse_decode_bf16_d576_v512_p64_nhd_q1_g128_k2048_local_sharedkv_bias_attnsink" (d, v, k: head_dim,
  // head_dim_v, topk bucket; windows full|local; flags sharedkv and bias before the common ones).
  std::string key() const;
  bool is_contiguous_kv() const;  // prefill over K/V packed by cu_seqlens_k rather than pages
  static KernelSpec from_key(std::string_view key);  // inverse of key(); throws kInvalidArgument
  void validate() const;  // throws kInvalidArgument / kUnsupported naming the field and its allowed range
  bool operator==(const KernelSpec&) const = default;
};

// A call as its kernel is specialized for it, in the call's own terms: window sizes (the spec records only whether
// each window is there). Each family has one builder from it to its KernelSpec; the API's argument validation, the CLI
// flags, the check cases and the workloads all go through them instead of filling a KernelSpec field by field.
struct AttentionCall {
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;                  // prefill: 0 = contiguous K/V
  KvLayout kv_layout = KvLayout::kNHD; // of a paged cache
  int q_seqlen = 1;                    // decode only: query tokens per sequence
  int group = 1;                       // num_q_heads / num_kv_heads
  int local_window = 0;                // > 0: a sliding window of this many positions
  int global_window = 0;               // > 0: this many leading sink tokens
  bool sink_logits = false;
  GqaMapping gqa = GqaMapping::kGrouped;
  KvQuant kv_quant = KvQuant::kNone;
  bool causal = true;                  // prefill only
  // sparse_decode only:
  int topk = 0;                        // slots of the selection per query token (1..2048)
  int head_dim_v = 0;                  // 0: head_dim
  bool shared_kv = false;
  bool score_bias = false;
};
// The builders, validated (throw like KernelSpec::validate).
KernelSpec paged_decode_kernel_spec(const AttentionCall& call);  // CUDA and CPU backends
KernelSpec prefill_kernel_spec(const AttentionCall& call);       // q_seqlen 1 (lengths come at run time); contiguous K/V: NHD
KernelSpec sparse_decode_kernel_spec(const AttentionCall& call); // topk -> its bucket; head_dim_v 0 -> head_dim

// Tuning knobs of the paged decode family.
struct DecodeConfig {
  int block_n = 64;     // KV tokens per pipeline tile (independent of page_size)
  int warps_n = 4;      // warps that split each tile's tokens, each with its own softmax state
  int stages = 3;       // cp.async pipeline depth (tiles in flight)
  int num_splits = 1;   // 1: one block per (sequence, kv head). > 1: about that many work items per (sequence, kv head)
                        // on average, cut by length (the work schedule) and merged. kSplitsFromCapacity (0, the
                        // heuristic's): items of equal cost sized for the grid's resident blocks, a uniform batch's
                        // none once its (sequence, kv head) pairs fill them (templates/decode_schedule.h). Launch-time only.
  // Who moves K/V tiles into the stages. kLoadersAllWarps (0): every warp issues cp.async row chunks and the block
  // meets at one barrier per tile. kProducerCpAsync (1, sm_90+): an extra producer warp issues the cp.async chunks, the
  // compute warps wait on per-stage mbarriers (full / empty), no block barrier in the loop. kProducerBulk (2, sm_90+):
  // as 1, each token row moved by one bulk copy (cp.async.bulk, counted on the stage's mbarrier) into rows padded by
  // 16 bytes (ldmatrix conflict-free unswizzled). kProducerBulkSplitKv (3): as 2, K and V landing on their own barriers.
  // kProducerTma (4, sm_90+; 8-bit K/V from head_dim 128): tiles on a kBlockN-aligned grid, each page's rows of a kv head moved by one
  // TMA box per 128 bytes of channels (cp.async.bulk.tensor over tensor maps the host encodes per call) into
  // 128-byte-swizzled tiles; a tile reaching past the sequence's last token or over an invalid block_table entry is
  // gathered by cp.async instead. Needs page_size a multiple of 8 dividing block_n, or a multiple of block_n.
  int producer = 0;
  // Split-KV only: who combines a cut sequence's partial results. false: a merge grid launched after the main one.
  // true: the main grid itself, the last block to finish a (sequence, kv head)'s items merging them (an arrival
  // counter per pair): no second launch and no gap between the grids (key suffix "_fm").
  bool fused_merge = false;
  // The all-warps and cp.async loaders read every block_table entry of a tile before checking any (key suffix "_pf"),
  // so a thread's reads overlap instead of each waiting behind the checks of the one before.
  bool pages_first = false;
  // Every-warp loaders only: a tile's block_table entries read a tile step before its copies (key suffix "_pa"), so
  // their latency passes during a tile's math (pages of one token: one entry, often a DRAM round trip, per row).
  bool pages_ahead = false;
  // Producer-warp loaders only: the producer issues an item's first `stages` tiles before the block waits for its Q
  // tile (key suffix "_et"), so the first tile's latency passes with Q's instead of after it (an item starts with one
  // memory round trip, not two).
  bool early_tiles = false;
  // Blocks per SM the kernel's registers are capped for (__launch_bounds__; key suffix "_oc<B>" when > 1): the
  // producer configs' compute path fits two blocks of 160 threads (168 registers, no spills) where the compiler
  // otherwise takes 240 and one block fills the SM's register file.
  int min_blocks = 1;
  // int8 K/V only: the scores on the integer tensor cores (mma s8, key suffix "_is"): each Q row (times the K scale)
  // quantized to 128 hi + lo with int8 hi and lo (14 bits), the int8 K bytes fed to the mma as stored, no widening.
  bool integer_scores = false;
  // Which grid the module's kernel runs (key suffix "_dg"): false, the scheduled grid (templates/decode_schedule.h:
  // fixed blocks walking equal-cost ranges of a ragged batch); true, the direct grid (a block per (sequence, kv head)
  // or per even piece of it, no schedule). Not a tuning knob: paged_decode picks it per call (num_splits 1, batch 1,
  // equal lengths the host knows: direct), so each module holds one copy of the item body (NVRTC time).
  bool direct_grid = false;
  static constexpr int kLoadersAllWarps = 0, kProducerCpAsync = 1, kProducerBulk = 2, kProducerBulkSplitKv = 3,
                       kProducerTma = 4;
  static constexpr int kSplitsFromCapacity = 0;
  static constexpr int kMaxSplits = 1024;  // far past any useful split; bounds the workspace a call can ask for

  std::string compile_key() const;  // the part that changes the generated code, e.g. "bn64_wn4_st3", "bn64_wn4_st3_pw2_fm"
  std::string key() const;          // compile_key() + "_sp<num_splits>"
  static DecodeConfig from_key(std::string_view key);
  void validate(const KernelSpec& spec) const;  // throws kInvalidArgument naming the field and its allowed range
  bool operator==(const DecodeConfig&) const = default;
};

// Tuning knobs of the prefill family.
struct PrefillConfig {
  int block_m = 128;    // query rows per block
  int block_n = 64;     // KV tokens per pipeline tile (independent of page_size)
  int stages = 2;       // cp.async pipeline depth (K/V tiles in flight)
  int m_tiles = 1;      // 16-row mma tiles per warp (1 or 2): more reuse of each K/V fragment, more registers
  bool wgmma = false;   // Hopper (sm_90a) warpgroup MMA from shared memory instead of mma.sync; block_m % 64 == 0
  int min_blocks = 1;   // blocks per SM the compiler must leave room for (__launch_bounds__): caps registers
  // wgmma only. 0: every warp loads and computes (one __syncthreads per tile). 1: warp specialized, a producer
  // warpgroup loads K/V into the stages and consumer warpgroups (64 rows each) compute, synchronized by mbarriers,
  // registers moved to the consumers (setmaxnreg). 2: as 1, and each consumer issues S(t+1) = Q.K^T before the
  // softmax of tile t, so its tensor cores work during its own softmax. 3: as 2, and the two consumer warpgroups of
  // block_m = 128 take turns issuing their MMAs (ping-pong), so one's softmax overlaps the other's MMAs.
  int warp_specialize = 0;
  // warp_specialize > 0 only: the producer moves K/V tiles with the TMA engine (cp.async.bulk.tensor against tensor
  // maps the host encodes, mbarrier transaction counts) instead of per-row cp.async gathers. Paged caches need
  // page_size a multiple of block_n, or block_n a multiple of page_size with page_size a multiple of 8. 8-bit K/V
  // (head_dim a multiple of 128): the stored bytes by TMA, widened to 16 bits in shared memory by two producer warps.
  bool tma = false;
  // tma only: a persistent grid of as many blocks as fit the device at once, each taking the work items (query tile,
  // q head, sequence) in the same longest-first order in turn; the producer loads the next item's Q (into a second
  // Q buffer) and K/V while the consumers finish the current one, so no block start, Q load or first K/V tile is
  // left uncovered between items.
  bool persistent = false;
  // persistent only: every other round of items walked backwards (block i takes the round's (blocks - 1 - i)-th item),
  // so the blocks that took the longest items of one round take the shortest of the next (key suffix _sn)
  bool snake_order = false;
  // persistent with warp_specialize 2 only: the consumers carry an item's last P.V into the next item, issued with its
  // first Q.K^T, so no item starts or ends with the tensor cores idle through a softmax (key suffix _ov)
  bool overlap_items = false;
  // persistent only: after its first item a block claims the next unclaimed item of the longest-first order (a
  // counter in device memory) whenever its producer comes free, so the blocks that drew short items take more,
  // whatever the items really cost (FA3's dynamic scheduler); replaces snake_order's static rounds (key suffix _dy)
  bool dynamic_items = false;
  // tma only, not overlap_items: the consumers write an item's normalized rows into its Q buffer (their Q.K^T are
  // done) and one thread a warpgroup stores them with the TMA engine (full tiles of an output laid out [token, head,
  // channel]; else the rows go straight from the registers): one shared-memory store a value pair instead of a
  // global one, the global writes coalesced and off the consumers' path (key suffix _ts)
  bool tma_store = false;
  // each row's max and sum over a tile as 4 independent chains, combined at the end (templates/attention_tile.cuh
  // online_softmax kChains): the consumers' softmax is latency-bound (session 8 run B ncu, seq 4096: stall_wait 33%
  // of the consumers' samples, the row max a chain of 32 FMNMX) (key suffix _ch)
  bool softmax_chains = false;
  // 8-bit K/V with tma and bf16 q only: both MMAs in fp16. The producer rescales each item's Q (times the K scale) by
  // a power of 2 into fp16's range (the scores take the inverse in the softmax scale), K/V widen exactly to fp16 (1-2
  // instructions a pair of values against 5-6 for bf16) and P is packed as fp16: fp16 holds Q and P with 3 more
  // mantissa bits than bf16.
  bool f16_mma = false;
  // 8-bit K/V with tma only: the producer warps widen a staged tile with each group of 8 lanes on 8 consecutive rows
  // of one chunk column (key suffix _wr): the 16-bit stores hit 8 distinct bank groups, where one row's 8 chunks a
  // group (the default) store two 16-bit chunks into each of 4 (a 2-way conflict on every store).
  bool widen_rows = false;
  // 8-bit K/V with tma only: each widening lane loads its next staged chunk before it converts and stores this one
  // (key suffix _wa): the load's latency hides behind the conversion (ncu, session 8 run B: the widening warps stalled
  // most on the conversion waiting for its shared-memory load).
  bool widen_ahead = false;
  // f16_mma with head_dim 128 only: S = Q.K^T on the 8-bit tensor cores straight from the stored K tile (key suffix
  // _sk): K is never widened. The producer splits each item's Q (times the K scale and a power of 2) into two 8-bit
  // tiles hi and lo, which the consumers issue against K into one accumulator: fp8 K/V e4m3 hi + lo = e4m3(q - hi)
  // (about 8 mantissa bits together, bf16's precision); int8 K/V integers hi, lo with q = 128 hi + lo to 14 bits, the
  // accumulator shifted by 7 bits between them (exact in int32). 8-bit MMAs run at twice the fp16 rate, so the two
  // take the time of one fp16 Q.K^T. P.V stays fp16 from widened V.
  bool stored_k_scores = false;
  // stored_k_scores with fp8 K/V only, block_n 128: O += P.V on the 8-bit tensor cores from the stored V tile (key
  // suffix _sv): V is never widened. The producer's V warps transpose each staged tile into a K-major e4m3 tile
  // (the layout 8-bit wgmma operands need, keys in the order of P's accumulator registers), and the consumers split
  // P (times 2^8, kept out of e4m3's subnormals) into e4m3 hi + lo = e4m3(p - hi), two MMA chains into the output.
  bool stored_v = false;
  // stored_k_scores only: the compute warps fold the K scale into their own Q rows (8-bit hi and lo, a power of 2 per
  // row) after the Q tile lands, instead of the producer warps before it is announced (key suffix _cf): the producer
  // then never pauses V's widening at an item's start (faster where items are short, the causal ramp), at the cost
  // of the consumers' time.
  bool consumer_fold = false;
  // warp_specialize > 0 only: the producer warpgroup's registers a thread after setmaxnreg (a multiple of 8, 24..56;
  // 0: the generator's 56, what the row gathers need without spilling); the consumers share out the rest.
  int producer_registers = 0;

  std::string compile_key() const;  // e.g. "bm128_bn64_st2_mt1", "bm128_bn64_st2_mt1_wg_ws2_tma_pt_sn_ov_dy_ts_ch_f16_sk_sv_cf_wr_wa_pr40_oc2" (flags: _wg, _ws<N>, _tma, _pt, _sn, _ov, _dy, _ts, _ch, _f16, _sk, _sv, _cf, _wr, _wa, _pr<N> and _oc<N> if set / > 0 / > 0 / > 1)
  std::string key() const { return compile_key(); }
  static PrefillConfig from_key(std::string_view key);
  void validate(const KernelSpec& spec) const;
  bool operator==(const PrefillConfig&) const = default;

 private:
  void validate_tma(const KernelSpec& spec) const;
};

// Tuning knobs of the sparse top-k decode family (CUDA).
struct SparseDecodeConfig {
  int block_n = 64;     // selected rows gathered per pipeline tile
  int stages = 2;       // cp.async pipeline depth
  int num_splits = 1;   // blocks per (sequence, kv head) sharing the selection; > 1 adds a merge. Launch-time only.
  bool mma = false;     // tensor cores (mma.sync, 16-bit caches); false: the CUDA-core kernel (any cache)
  bool token_split = false;  // mma with group <= 16, head_dim_v <= 128: the warps split each tile's candidates,
                             // scores and softmax in registers (templates/sparse_decode_tokens.cuh)
  bool l2_prefetch = false;  // each gathered row's copies ask L2 for its whole 256-byte (128-byte) aligned block at once;
                             // mla: the gather asks L2 for the rows of the tile after the one it copies
  bool mla = false;     // mma on sm_90a for the shared-KV MLA shape (head_dim 576, head_dim_v 512): blocks of 64 q
                        // heads on two warpgroups (wgmma), each owning half of V's columns (templates/sparse_decode_mla.cuh);
                        // key flag "_mla" after "_mma"
  bool warp_specialize = false;  // mla: a scoring warpgroup beside the two accumulating ones, mbarriers between them
                                 // (templates/sparse_decode_mla_ws.cuh); key flag "_ws" after "_mla"
  bool copy_ahead = false;  // mla without warp_specialize: tile t + 2's copies issue right after tile t's P V (one
                            // block barrier more per tile), so two tiles are in flight while one is awaited (else
                            // tile t + 1's issue once tile t landed); key flag "_ca" after "_mla"
  bool score_ahead = false;  // mla with copy_ahead: tile t + 1's S = Q K^T issued before tile t's softmax, so the tensor
                             // cores compute it under the softmax; key flag "_sa" after "_ca"
  bool split_scores = false;  // mla without warp_specialize or score_ahead: the two warpgroups split S's 576 columns
                              // (each m64 n64 over the whole tile, partial sums swapped through shared memory) instead
                              // of the tile's tokens (each m64 n32); key flag "_ss" after "_sa"
  bool seesaw = false;  // mla without warp_specialize or the schedules above: FlashMLA's seesaw, each warpgroup scoring
                        // every other tile whole while the other's softmax runs (templates/sparse_decode_mla_seesaw.cuh);
                        // key flag "_sw" after "_ss"
  bool l2_ahead = false;        // not mla: each candidate's K and V rows are prefetched into L2 when its lookup is
                                // stored, an iteration before its copies (a tile more in flight than the stages hold); "_la"
  bool table_prefetch = false;  // not mla: the block asks L2 for its sequence's block_table row at its start, beside the
                                // first index loads (the page lookups then hit L2); key flag "_tp"
  bool persistent = false;      // token_split without a local window: one block per resident slot taking its (sequence,
                                // kv head, split) items in turn, the gather running on into the next item's tiles while
                                // one finishes (no pipeline fill per item); key flag "_pe"
  bool narrow_warps = false;    // token_split: each warp takes 8 of a tile's candidates (P V on m16n8k8), up to 8 warps a
                                // block and at most 128 registers a thread: twice the warps per SM on the same shared
                                // memory (more latency hidden); key flag "_nw"
  bool stagger_v = false;       // not mla: the gather copies a tile's V rows half a tile away from its K rows (row t's V
                                // beside row t + block_n / 2's K), so that no copy instruction asks for a token's K and
                                // V at once (their addresses may share DRAM banks); key flag "_sv"

  std::string compile_key() const;  // e.g. "bn64_st2", "bn64_st2_mma", "bn64_st2_mma_ts", "bn64_st2_mma_ts_l2_la_tp_pe_nw"
  std::string key() const;          // compile_key() + "_sp<num_splits>"
  static SparseDecodeConfig from_key(std::string_view key);
  void validate(const KernelSpec& spec) const;
  bool operator==(const SparseDecodeConfig&) const = default;

 private:
  void validate_mla(const KernelSpec& spec) const;
};

// Tuning knobs of the paged decode family on the CPU backend.
struct CpuDecodeConfig {
  int block_n = 64;     // KV tokens widened to float at once and shared by every query row
  int num_splits = 1;   // work items per (sequence, kv head) on average, as DecodeConfig::num_splits. Run-time only.
  int threads = 0;      // worker threads; 0: every hardware thread. Run-time only.

  std::string compile_key() const;  // the part that changes the generated code, e.g. "cpu_bn64"
  std::string key() const;          // e.g. "cpu_bn64_sp1_th0"
  void validate(const KernelSpec& spec) const;
  bool operator==(const CpuDecodeConfig&) const = default;
};

}  // namespace swajit
