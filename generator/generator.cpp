#include "swajit/generator.hpp"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "swajit/error.hpp"

namespace swajit {
namespace {

constexpr int kElementBytes = 2;  // bf16 / fp16: q, out, 16-bit K/V and widened 8-bit K/V tiles

// Bytes of one stored K/V element: 16-bit, or 1 for an 8-bit cache.
int kv_element_bytes(const KernelSpec& spec) { return spec.kv_quant == KvQuant::kNone ? kElementBytes : 1; }
// Shared memory of the widened 16-bit K and V tiles an 8-bit cache's tiles of block_n tokens become (else 0).
int widened_kv_bytes(const KernelSpec& spec, int block_n) {
  return spec.kv_quant == KvQuant::kNone ? 0 : 2 * block_n * spec.head_dim * kElementBytes;
}

// Knobs of the decode kernels timed on a device (H200, session 8 runs B and B2; tools/bench/RESULTS.md): the variable
// 1 compiles one in, 0 leaves it out, unset: its default.
// - SWAJIT_DECODE_KV_EVICT_FIRST (on): the every-warp loaders' 16-bit K/V copies carry an L2 evict-first policy
//   (each line is read once a call), so the stream leaves the merge's partial results and the metadata in L2. H200,
//   session 11 (same call, two rounds alternated, against 0): log-uniform q1 / q4 b256 554.6 / 587.3 -> 548.0 / 567.7
//   us, bimodal q4 b128 / b256 142.1 / 260.5 -> 133.3 / 244.1, bimodal q4 b8 19.7 -> 19.4 (FlashInfer 19.4);
//   uniform rows level. Producer-warp kernels never get it (kv_evict_first below).
// The direct grid's merge lets the stream's next kernel be scheduled as it starts (which still waits for the merge to
// end before reading anything), and before that wait every direct-grid block asks L2 (where every SM's writes land:
// nothing stale is read later) for the call's seq_lens, block table and its Q rows: batch 1 10.7 / 11.6 -> 10.3 / 11.2
// us (q1 / q4, session 8 runs B and B2). On the scheduled grid's merge the trigger cost bimodal b8 16.5 -> 21.1 us
// (session 12: log-uniform b8 24.4 -> 31.5, uniform b8 q1 42.3 -> 49.9; batch 32-256 level within 1%).
// Timed there and dropped: the every-warp loaders reading all the prologue's block_table entries first (level or
// slower), the direct grid's pieces merged in a thread block cluster (batch 1 12.2 us), several rows a merge block.
bool decode_experiment(const char* name, bool default_on) {
  const char* text = std::getenv(name);
  if (text && (std::string(text) == "0" || std::string(text) == "1")) return std::string(text) == "1";
  return default_on;
}

// The every-warp loaders' K/V copies with the L2 evict-first hint (SWAJIT_DECODE_KV_EVICT_FIRST above). Not the
// producer warp's copies (producers 1-3 share load_kv_tile): there the hinted cp.async raised CUDA_ERROR_ILLEGAL_INSTRUCTION
// on the H200 (session 8 final run, compute-sanitizer at cp_async_16_evict_first). The SASS shows why: CUDA 13.0's
// ptxas gives those LDGSTS a cache-policy descriptor in uniform registers the kernel never writes (head_dim 256,
// group 2, bn32 wn2 st3, producer 1; ptxas 13.5 names the pair it built). The every-warp loaders' hinted copies name
// registers the kernel writes in every config tools/bench/sass_policy_check.py compiles (20 of them: head_dim
// 64/128/256, q 1-8, groups 1-16, tiles 16-128, both grids, page 1, the fused merge, fp8 and int8), and the whole
// check matrix passed with them on the H200 (sessions 11 and 12).
// 8-bit caches (the same loaders, 16-byte chunks of 1-byte elements) have their own variable,
// SWAJIT_DECODE_KV8_EVICT_FIRST (on): H200, session 12 (same call, two rounds alternated, against 0), uniform grid
// q4 b128 / b256 fp8 306.1 / 601.0 -> 299.6 / 585.7 us, int8 338.8 / 661.3 -> 333.6 / 650.4, bimodal fp8 b256
// 148.0 -> 146.7; q1 and batch 8 / 32 level. Its kernels are in sass_policy_check.py too.
bool kv_evict_first(const KernelSpec& spec, const DecodeConfig& config) {
  if (config.producer != DecodeConfig::kLoadersAllWarps) return false;
  return spec.kv_quant == KvQuant::kNone ? decode_experiment("SWAJIT_DECODE_KV_EVICT_FIRST", true)
                                         : decode_experiment("SWAJIT_DECODE_KV8_EVICT_FIRST", true);
}

}  // namespace

DecodeGeometry decode_geometry(const KernelSpec& spec, const DecodeConfig& config) {
  constexpr int kMmaRows = 16;          // rows of one mma.m16n8k16 tile: one warp row
  constexpr int kWarpSize = 32;
  constexpr int kFloatBytes = 4;
  constexpr int kEpiloguePadFloats = 8; // spreads the epilogue's rows over more banks
  constexpr int kMergeThreads = 128;    // 4 warps merge one row's splits: a merge block
  constexpr int kRowPadBytes = 16;      // bulk-copied rows: one 16-byte shift per row keeps ldmatrix conflict-free
  constexpr int kMbarrierBytes = 8;
  DecodeGeometry g{};
  g.rows = spec.q_seqlen * spec.group;
  g.warps_m = (g.rows + kMmaRows - 1) / kMmaRows;
  const int warps = g.warps_m * config.warps_n;  // compute warps; a producer warp comes on top
  const int rows_padded = g.warps_m * kMmaRows;
  g.threads = (warps + (config.producer != DecodeConfig::kLoadersAllWarps ? 1 : 0)) * kWarpSize;
  g.q_bytes = rows_padded * spec.head_dim * kElementBytes;
  if (config.integer_scores) {  // and Q as int8 hi and lo rows and a float unit per row, up to the stages' 1024-byte alignment
    constexpr int kStageAlignment = 1024;
    g.q_bytes += rows_padded * (2 * spec.head_dim + kFloatBytes);
    g.q_bytes = (g.q_bytes + kStageAlignment - 1) / kStageAlignment * kStageAlignment;
  }
  const bool bulk_rows = config.producer == DecodeConfig::kProducerBulk || config.producer == DecodeConfig::kProducerBulkSplitKv;
  g.stored_row_bytes = spec.head_dim * kv_element_bytes(spec) + (bulk_rows ? kRowPadBytes : 0);
  g.tile_bytes = config.block_n * g.stored_row_bytes;
  g.epilogue_stride = spec.head_dim + kEpiloguePadFloats;
  g.epilogue_bytes = warps * kMmaRows * g.epilogue_stride * kFloatBytes + 2 * config.warps_n * rows_padded * kFloatBytes;
  const int pipeline_bytes = 2 * config.stages * g.tile_bytes;  // K and V; 8-bit tiles are widened in registers
  // A producer's full / empty mbarrier per stage, after everything the epilogue may reuse.
  g.barrier_offset = g.q_bytes + std::max(pipeline_bytes, g.epilogue_bytes);
  const int barriers_per_stage = config.producer == DecodeConfig::kLoadersAllWarps ? 0
                                 : config.producer == DecodeConfig::kProducerBulkSplitKv ? 3  // full K, full V, empty
                                                                                          : 2;  // full, empty
  const int barrier_bytes = barriers_per_stage * config.stages * kMbarrierBytes;
  g.shared_bytes = g.barrier_offset + barrier_bytes;
  g.merge_threads = kMergeThreads;
  return g;
}

namespace {

const char* kv_elem_tag(KvQuant quant) {
  switch (quant) {
    case KvQuant::kInt8: return "int8_kv";
    case KvQuant::kFp8E4M3: return "fp8_e4m3_kv";
    case KvQuant::kNone: break;
  }
  return "unquantized_kv";
}

const char* flag(bool b) { return b ? "true" : "false"; }

// The spec constants every CUDA family reads.
std::string spec_prelude(const KernelSpec& spec) {
  std::ostringstream os;
  os << "// ---- specialization (generated) ----\n"
     << "typedef " << (spec.dtype == DType::kBF16 ? "bf16_tag" : "fp16_tag") << " Elem;\n"
     << "constexpr int kHeadDim = " << spec.head_dim << ";\n"
     << "constexpr int kPageSize = " << spec.page_size << ";\n"
     << "constexpr int kGroup = " << spec.group << ";\n"
     << "constexpr bool kLocalWindow = " << flag(spec.local_window) << ";\n"
     << "constexpr bool kGlobalWindow = " << flag(spec.global_window) << ";\n"
     << "constexpr bool kSinkLogits = " << flag(spec.sink_logits) << ";\n"
     << "constexpr bool kGqaInterleaved = " << flag(spec.gqa == GqaMapping::kInterleaved) << ";\n"
     << "typedef " << kv_elem_tag(spec.kv_quant) << " KvElem;\n"
     << "constexpr int kKvQuant = " << static_cast<int>(spec.kv_quant) << ";  // 0: 16-bit cache, 1: int8, 2: fp8 e4m3\n"
     << "constexpr int kKvBytes = " << kv_element_bytes(spec) << ";\n";
  return os.str();
}

}  // namespace

bool decode_timeline_requested() { return decode_experiment("SWAJIT_DECODE_TIMELINE", false); }

namespace {

std::string decode_prelude(const KernelSpec& spec, const DecodeConfig& config, const DecodeGeometry& g,
                           const std::string& kernel_symbol, const std::string& merge_symbol) {
  std::ostringstream os;
  os << spec_prelude(spec)
     << "constexpr int kQSeqlen = " << spec.q_seqlen << ";\n"
     << "constexpr bool kCausal = true;  // decode queries are the last q_seqlen positions\n"
     << "// config " << config.compile_key() << "\n"
     << "constexpr int kBlockN = " << config.block_n << ";\n"
     << "constexpr int kWarpsN = " << config.warps_n << ";\n"
     << "constexpr int kStages = " << config.stages << ";\n"
     << "constexpr int kProducer = " << config.producer << ";  // 0: every warp loads, 1: producer warp (cp.async), 2: producer warp (bulk rows), 3: as 2, K and V on their own barriers, 4: TMA pages\n"
     << "constexpr bool kFusedMerge = " << flag(config.fused_merge) << ";  // split-KV: the last block of a (sequence, kv head) merges it\n"
     << "constexpr bool kPagesFirst = " << flag(config.pages_first) << ";  // cp.async loaders: a tile's block_table reads first\n"
     << "constexpr bool kPagesAhead = " << flag(config.pages_ahead) << ";  // every-warp loaders: ... a tile step ahead\n"
     << "constexpr bool kEarlyTiles = " << flag(config.early_tiles) << ";  // producer warp: an item's first tiles before its Q wait\n"
     << "constexpr int kMinBlocks = " << config.min_blocks << ";  // blocks per SM the registers are capped for\n"
     << "constexpr bool kIntegerScores = " << flag(config.integer_scores) << ";  // int8 K: scores on the integer tensor cores\n"
     << "constexpr bool kDirectGrid = " << flag(config.direct_grid) << ";  // the kernel's grid: direct (else scheduled)\n"
     << "constexpr bool kTimeline = " << flag(decode_timeline_requested()) << ";  // SWAJIT_DECODE_TIMELINE: blocks stamp %globaltimer\n"
     << "constexpr bool kEarlyTrigger = " << flag(config.direct_grid) << ";  // the direct grid's merge lets the next kernel be scheduled at once\n"
     << "constexpr bool kMergeLeavesUncut = " << flag(decode_experiment("SWAJIT_DECODE_MERGE_LEAVES_UNCUT", true)) << ";  // the scheduled grid's merge blocks leave before their wait when the call cuts nothing (cut_flag)\n"
     << "constexpr bool kKvEvictFirst = " << flag(kv_evict_first(spec, config)) << ";  // K/V copies evict-first in L2\n"
     << "constexpr bool kPrefetchMetadata = " << flag(config.direct_grid) << ";  // the direct grid: L2 prefetch of seq_lens, block table, Q before the wait\n"
     << "// launch geometry, shared with the host launcher\n"
     << "constexpr int kRows = " << g.rows << ";\n"
     << "constexpr int kWarpsM = " << g.warps_m << ";\n"
     << "constexpr int kThreads = " << g.threads << ";\n"
     << "constexpr int kQBytes = " << g.q_bytes << ";\n"
     << "constexpr int kTileBytes = " << g.tile_bytes << ";\n"
     << "constexpr int kStoredRowBytes = " << g.stored_row_bytes << ";\n"
     << "constexpr int kBarrierOffset = " << g.barrier_offset << ";\n"
     << "constexpr int kEpilogueStride = " << g.epilogue_stride << ";\n"
     << "constexpr int kEpilogueBytes = " << g.epilogue_bytes << ";\n"
     << "constexpr int kSharedBytes = " << g.shared_bytes << ";\n"
     << "constexpr int kMergeThreads = " << g.merge_threads << ";  // a merge block's, merging one row\n"
     << "#define SWAJIT_DECODE_KERNEL " << kernel_symbol << "\n"
     << "#define SWAJIT_MERGE_KERNEL " << merge_symbol << "\n";
  return os.str();
}

// The embedded file, framed by comments naming it, so a reader of `swajit gen` output knows where each part lives.
std::string section(std::string_view name) {
  return "// ==== templates/" + std::string(name) + " ====\n" + std::string(template_text(name)) + "\n";
}

// A generated kernel's names (cache key; main and merge symbols, with `symbol_prefix`) and the header of its source.
GeneratedKernel named_kernel(const KernelSpec& spec, const std::string& compile_key, const std::string& symbol_prefix,
                             std::string_view backend_note, std::ostringstream& os) {
  GeneratedKernel out;
  out.cache_key = spec.key() + "__" + compile_key;
  out.kernel_symbol = symbol_prefix + out.cache_key;
  out.merge_symbol = out.kernel_symbol + "_merge";
  os << "// Generated by swajit" << backend_note << ". Do not edit: change templates/ and regenerate.\n"
     << "// spec:   " << spec.key() << "\n"
     << "// config: " << compile_key << "\n\n";
  return out;
}

}  // namespace

GeneratedKernel generate_paged_decode_cuda(const KernelSpec& spec, const DecodeConfig& config) {
  spec.validate();
  if (spec.family != KernelFamily::kPagedDecode)
    throw Error(ErrorCode::kInvalidArgument, "generate_paged_decode_cuda needs a paged_decode spec, got " + spec.key());
  config.validate(spec);
  const DecodeGeometry g = decode_geometry(spec, config);
  std::ostringstream os;
  GeneratedKernel out = named_kernel(spec, config.compile_key(), "swajit_", "", os);
  os << section("tile_ops.cuh") << section("paged_call_params.h") << section("paged_decode_params.h")
     << decode_prelude(spec, config, g, out.kernel_symbol, out.merge_symbol) << "\n"
     << section("window_mask.h") << section("decode_schedule.h") << section("attention_tile.cuh")
     << section("kv8_fragments.cuh")
     << section("paged_decode.cuh");
  out.source = os.str();
  return out;
}

namespace {

// "{%first, ..., %(first + count - 1)}"
std::string register_list(int first, int count) {
  std::string list = "{";
  for (int i = 0; i < count; ++i) list += (i ? ", %" : "%") + std::to_string(first + i);
  return list + "}";
}
// "+f"(d[0][0]), ... for an accumulator float d[count / 4][4]
std::string accumulator_operands(int count) {
  std::string ops;
  for (int i = 0; i < count; ++i)
    ops += std::string(i ? ", " : "") + "\"+f\"(d[" + std::to_string(i / 4) + "][" + std::to_string(i % 4) + "])";
  return ops;
}

// One Hopper warpgroup MMA (m64 n<n> k16, fp32 accumulators) written out as a device function `name` (the PTX
// instruction names its N, and its accumulator is one register operand per float: d[n / 8][4], `fragments` being
// that extent as the template spells it). Scores: A and B K-major in shared memory, D = or += by `accumulate`.
// Otherwise A from four registers (P) and B N-major (transposed) in shared memory, always D +=; or with
// `b_k_major` (scores with Q in registers) B K-major and D = or += by `accumulate`.
// `accumulate_by_default`: an A-in-registers wrapper takes `accumulate` as an argument defaulting to 1 (D += A.B;
// 0: D = A.B, whatever D held).
std::string wgmma_wrapper(const std::string& name, const std::string& fragments, const KernelSpec& spec, int n,
                          bool a_in_registers, bool b_k_major = false, bool accumulate_by_default = false) {
  const std::string type = spec.dtype == DType::kBF16 ? "bf16" : "f16";
  const int regs = n / 2;  // floats per thread: 64 rows x n / 128 threads
  const bool takes_accumulate = !a_in_registers || b_k_major || accumulate_by_default;
  std::ostringstream os;
  os << "SWAJIT_DEVICE void " << name << "(float (&d)[" << fragments << "][4], "
     << (a_in_registers ? "const u32 (&a)[4], u64 b" : "u64 a, u64 b")
     << (takes_accumulate ? (accumulate_by_default ? ", int accumulate = 1" : ", int accumulate") : "") << ") {\n"
     << "#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a\n"
     << "  asm volatile(\"{ .reg .pred p; setp.ne.b32 p, %" << regs + (a_in_registers ? 5 : 2) << ", 0; \"\n"
     << "               \"wgmma.mma_async.sync.aligned.m64n" << n << "k16.f32." << type << "." << type << " \"\n"
     << "               \"" << register_list(0, regs) << ", ";
  if (a_in_registers)
    os << register_list(regs, 4) << ", %" << regs + 4 << ", p, 1, 1, " << (b_k_major ? 0 : 1) << "; }\"\n"
       << "               : " << accumulator_operands(regs) << "\n"
       << "               : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"l\"(b), \"r\"("
       << (takes_accumulate ? "accumulate" : "1") << "));\n";
  else
    os << "%" << regs << ", %" << regs + 1 << ", p, 1, 1, 0, 0; }\"\n"
       << "               : " << accumulator_operands(regs) << "\n"
       << "               : \"l\"(a), \"l\"(b), \"r\"(accumulate));\n";
  os << "#else\n  __trap();\n#endif\n}\n";
  return os.str();
}

// S[64 x n] (+)= A . B^T on the 8-bit tensor cores (m64 n<n> k32, B K-major in shared memory, which is all 8-bit B
// operands take), D = or += by `accumulate`: e4m3 into fp32 accumulators, or (`integer`) s8 into s32 ones held in the
// float array as their bits (moves between the two register types cost nothing). A: K-major in shared memory, or
// (`a_in_registers`, e4m3 only: P of the 8-bit P.V) four registers, `accumulate` then defaulting to 1.
std::string wgmma_8bit_wrapper(const std::string& name, const std::string& fragments, int n, bool integer,
                               bool a_in_registers = false) {
  const int regs = n / 2;  // accumulators per thread: 64 rows x n / 128 threads
  std::string accumulators;  // "+f"(d[0][0]), ... or "+r"(bits[0][0]), ...
  for (int i = 0; i < regs; ++i)
    accumulators += std::string(i ? ", " : "") + (integer ? "\"+r\"(bits[" : "\"+f\"(d[") + std::to_string(i / 4) + "][" +
                    std::to_string(i % 4) + "])";
  const std::string each = "  for (int i = 0; i < " + fragments + "; ++i)\n    for (int c = 0; c < 4; ++c) ";
  const int a_operands = a_in_registers ? 4 : 1;
  std::ostringstream os;
  os << "SWAJIT_DEVICE void " << name << "(float (&d)[" << fragments << "][4], "
     << (a_in_registers ? "const u32 (&a)[4], u64 b, int accumulate = 1" : "u64 a, u64 b, int accumulate") << ") {\n"
     << "#ifdef __CUDA_ARCH_FEAT_SM90_ALL  // sm_90a\n";
  if (integer) os << "  u32 bits[" << fragments << "][4];\n" << each << "bits[i][c] = __float_as_uint(d[i][c]);\n";
  os << "  asm volatile(\"{ .reg .pred p; setp.ne.b32 p, %" << regs + a_operands + 1 << ", 0; \"\n"
     << "               \"wgmma.mma_async.sync.aligned.m64n" << n << "k32." << (integer ? "s32.s8.s8" : "f32.e4m3.e4m3") << " \"\n"
     << "               \"" << register_list(0, regs) << ", "
     << (a_in_registers ? register_list(regs, 4) : "%" + std::to_string(regs)) << ", %" << regs + a_operands << ", p"
     << (integer ? "" : ", 1, 1") << "; }\"\n"
     << "               : " << accumulators << "\n"
     << "               : "
     << (a_in_registers ? "\"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3])" : "\"l\"(a)")
     << ", \"l\"(b), \"r\"(accumulate));\n";
  if (integer) os << each << "d[i][c] = __uint_as_float(bits[i][c]);\n";
  os << "#else\n  __trap();\n#endif\n}\n";
  return os.str();
}

// The two warpgroup MMAs the wgmma prefill path issues, for this spec's tile sizes.
std::string wgmma_wrappers(const KernelSpec& prefill_spec, const PrefillConfig& config) {
  KernelSpec spec = prefill_spec;  // the MMAs' operand type: the spec's, or fp16 (f16_mma)
  if (config.f16_mma) spec.dtype = DType::kFP16;
  return "// S[64 x kBlockN] (+)= Q . K^T: A and B K-major in shared memory (templates/tile_ops.cuh WgmmaTile).\n" +
         wgmma_wrapper("wgmma_scores", "kBlockN / 8", spec, config.block_n, false) +
         "// O[64 x kHeadDim] (+)= P . V: P from registers, V N-major in shared memory.\n" +
         wgmma_wrapper("wgmma_pv", "kOutFrags", spec, spec.head_dim, true, false, true) +
         "// S[64 x kBlockN] (+)= Q8 . K8^T in e4m3 or s8 (kStoredKScores): Q's hi or lo tile and the stored K tile.\n" +
         wgmma_8bit_wrapper("wgmma_scores_e4m3", "kBlockN / 8", config.block_n, false) +
         wgmma_8bit_wrapper("wgmma_scores_s8", "kBlockN / 8", config.block_n, true) +
         "// O[64 x kHeadDim] (+)= P8 . V8^T in e4m3 (kStoredV): P's hi or lo bytes and the transposed V tile.\n" +
         wgmma_8bit_wrapper("wgmma_pv_e4m3", "kOutFrags", spec.head_dim, false, true);
}

// The two of the MLA sparse decode kernel (templates/sparse_decode_mla.cuh): a warpgroup's scores
// S[64 x block_n / 2] = Q . K^T and its O[64 x head_dim_v / 2] += P . V.
// (warp_specialize: the scoring warpgroup's S over the whole tile, sparse_decode_mla_ws.cuh, with Q from registers
// where the geometry leaves it no shared memory; split_scores: also each warpgroup's S[64 x block_n] over half the
// columns, mla_wgmma_split_scores, which seesaw's warpgroups use for a whole tile's S over all the columns.)
std::string mla_wgmma_wrappers(const KernelSpec& spec, const SparseDecodeConfig& config) {
  constexpr int kWarpgroups = 2;
  const int score_n = config.warp_specialize ? config.block_n : config.block_n / kWarpgroups;
  const int out_n = spec.head_dim_v / kWarpgroups;
  const bool q_in_registers = sparse_decode_geometry(spec, config).q_bytes == 0;
  return std::string("#define SWAJIT_MLA_Q_IN_REGISTERS ") + (q_in_registers ? "1" : "0") +
         "  // the scorer's A operand: Q fragments in registers (else the Q tile in shared memory)\n" +
         "constexpr bool kMlaCopyAhead = " + (config.copy_ahead ? "true" : "false") +
         ";  // config copy_ahead: tile t + 2's copies right after tile t's P V\n" +
         "constexpr bool kMlaScoreAhead = " + (config.score_ahead ? "true" : "false") +
         ";  // config score_ahead: tile t + 1's scores issued before tile t's softmax\n" +
         "constexpr bool kMlaSplitScores = " + (config.split_scores ? "true" : "false") +
         ";  // config split_scores: the warpgroups split S's columns, each over the whole tile\n" +
         wgmma_wrapper("mla_wgmma_scores", std::to_string(score_n / 8), spec, score_n, q_in_registers, q_in_registers) +
         wgmma_wrapper("mla_wgmma_split_scores", std::to_string(config.block_n / 8), spec, config.block_n, false, false) +
         wgmma_wrapper("mla_wgmma_pv", std::to_string(out_n / 8), spec, out_n, true);
}

}  // namespace

PrefillGeometry prefill_geometry(const KernelSpec& spec, const PrefillConfig& config) {
  constexpr int kMmaRows = 16;      // one warp per 16 query rows
  constexpr int kWarpSize = 32;
  constexpr int kWarpgroupThreads = 128;
  constexpr int kBarrierBytes = 8;         // one mbarrier
  constexpr int kRegistersPerSm = 65536;   // sm_90 (the only target of the warp-specialized wgmma path)
  constexpr int kRegisterGranule = 8;      // registers per thread are allocated (and setmaxnreg'd) in steps of 8
  constexpr int kMaxRegisters = 255;       // per thread at launch
  constexpr int kProducerRegisters = 56;   // the row gathers' addresses without spilling (24 and 40 spill)
  constexpr int kMaxConsumerRegisters = 240;
  PrefillGeometry g{};
  const int compute_threads = config.block_m / (kMmaRows * config.m_tiles) * kWarpSize;
  const bool specialized = config.warp_specialize > 0;
  g.threads = compute_threads + (specialized ? kWarpgroupThreads : 0);
  g.q_bytes = config.block_m * spec.head_dim * kElementBytes;
  // 8-bit K/V, warp specialized: the stages hold the tiles the producer widened to 16 bits, and the 2 x 2 stored
  // 8-bit tiles it stages them through (double buffered) take the place of the all-warps path's widened pair.
  g.tile_bytes = config.block_n * spec.head_dim * (specialized ? kElementBytes : kv_element_bytes(spec));
  // stored_k_scores: K's stages hold the stored 8-bit tiles, so the half each leaves takes V one stage deeper, and V's
  // widening runs further ahead of the consumers (session 15 call 8, kv 8, against 2 V stages, TFLOP/s: fp8 seq 4096 /
  // 8192 455.8 / 491.2 against 450.1 / 489.6 with the compute warps folding Q, seq 32768 495.4 against 496.4 with the
  // producer folding it; int8 412.4 / 445.4 against 400.9 / 437.6, 442.5 against 438.3)
  const bool deeper_v = config.stored_k_scores;
  g.k_tile_bytes = deeper_v ? config.block_n * spec.head_dim * kv_element_bytes(spec) : g.tile_bytes;
  g.v_stages = config.stages + (deeper_v ? 1 : 0);
  // 8-bit K/V: the all-warps path widens into one 16-bit K and V tile pair; the warp-specialized producer stages the
  // stored 8-bit K and V tiles of `stages` tiles ahead (their copies in flight while it widens an earlier one), or with
  // TMA two pairs (a tile's TMA copy in flight while the one before is widened), one on the persistent grid (its
  // second Q buffer takes the room: the d128 tile's 2 Q buffers, 2 stages of 64 KB and one pair fill 227 KB).
  const bool kv8 = spec.kv_quant != KvQuant::kNone;
  const int staged_tiles = !kv8 ? 0 : !config.tma ? config.stages : config.persistent ? 1 : 2;
  // f16_mma: after the staged pairs, the producer warps' maxima of Q (4 floats) and each Q buffer's score factor;
  // stored_k_scores: then each Q buffer's per-row score factors
  constexpr int kF16MmaScratchBytes = 32, kFloatBytes = 4;
  const int q_buffers = config.persistent ? 2 : 1;
  const int row_factor_bytes = config.stored_k_scores ? q_buffers * config.block_m * kFloatBytes : 0;
  g.dequant_bytes = specialized ? staged_tiles * 2 * config.block_n * spec.head_dim * kv_element_bytes(spec) +
                                      (config.f16_mma ? kF16MmaScratchBytes + row_factor_bytes : 0)
                                : widened_kv_bytes(spec, config.block_n);
  // full and empty barriers of K and V per stage, q_full and q_empty per Q buffer (two when persistent); 8-bit K/V
  // on TMA: staged and staging_free of K and V per staged pair
  const int staging_barriers = kv8 && config.tma ? 4 * staged_tiles : 0;
  const int item_slots = config.dynamic_items ? q_buffers : 0;  // the claimed item of each Q buffer (8 bytes each)
  g.barrier_bytes =
      specialized ? (2 * config.stages + 2 * g.v_stages + 2 * q_buffers + staging_barriers + item_slots) * kBarrierBytes : 0;
  // Q, K and V stages (as stored), widened K/V (8-bit KV), barriers (warp specialized)
  g.shared_bytes = q_buffers * g.q_bytes + config.stages * g.k_tile_bytes + g.v_stages * g.tile_bytes + g.dequant_bytes +
                   g.barrier_bytes;
  if (specialized) {
    // __launch_bounds__(threads, min_blocks) caps every thread at `entry` registers; the producer hands back what
    // it does not need and the consumers share it out (setmaxnreg moves registers only within the block's pool).
    const int entry = std::min(kMaxRegisters, kRegistersPerSm / (g.threads * config.min_blocks)) / kRegisterGranule *
                      kRegisterGranule;
    const int producer_registers = config.producer_registers > 0 ? config.producer_registers : kProducerRegisters;
    g.producer_registers = std::min(producer_registers, entry);  // setmaxnreg.dec never raises
    const int pool = entry * g.threads - g.producer_registers * kWarpgroupThreads;
    g.consumer_registers =
        std::max(entry, std::min(kMaxConsumerRegisters, pool / compute_threads / kRegisterGranule * kRegisterGranule));
  }
  return g;
}

// SWAJIT_PREFILL_ITEM_CLOCK=1: the persistent prefill kernel prints each item's %globaltimer span (a device-run
// experiment placing the grid's tail: tools/bench/item_clock.py). The cache key does not change: use a fresh database.
bool prefill_item_clock() {
  const char* text = std::getenv("SWAJIT_PREFILL_ITEM_CLOCK");
  return text && std::string(text) == "1";
}

GeneratedKernel generate_prefill_cuda(const KernelSpec& spec, const PrefillConfig& config) {
  spec.validate();
  if (spec.family != KernelFamily::kPrefill)
    throw Error(ErrorCode::kInvalidArgument, "generate_prefill_cuda needs a prefill spec, got " + spec.key());
  config.validate(spec);
  const PrefillGeometry g = prefill_geometry(spec, config);
  GeneratedKernel out;
  out.cache_key = spec.key() + "__" + config.compile_key();
  out.kernel_symbol = "swajit_" + out.cache_key;
  std::ostringstream os;
  os << "// Generated by swajit. Do not edit: change templates/ and regenerate.\n"
     << "// spec:   " << spec.key() << "\n"
     << "// config: " << config.compile_key() << "\n\n"
     << section("tile_ops.cuh") << section("prefill_params.h") << spec_prelude(spec)
     << "constexpr bool kContiguousKv = " << flag(spec.is_contiguous_kv()) << ";  // else paged (kPageSize)\n"
     << "constexpr bool kCausal = " << flag(spec.causal) << ";\n"
     << "// config " << config.compile_key() << "\n"
     << "constexpr int kBlockM = " << config.block_m << ";\n"
     << "constexpr int kBlockN = " << config.block_n << ";\n"
     << "constexpr int kStages = " << config.stages << ";\n"
     << "constexpr int kMTiles = " << config.m_tiles << ";\n"
     << "constexpr bool kWgmma = " << flag(config.wgmma) << ";  // Hopper warpgroup MMA instead of mma.sync\n"
     << "constexpr int kMinBlocksPerSm = " << config.min_blocks << ";  // __launch_bounds__: caps registers\n"
     << "constexpr int kWarpSpecialize = " << config.warp_specialize
     << ";  // 0: all warps load; 1: producer + consumer warpgroups; 2: and S(t+1) before softmax(t)\n"
     << "constexpr bool kTma = " << flag(config.tma) << ";  // K/V tiles moved by the TMA engine (warp specialized)\n"
     << "constexpr bool kPersistent = " << flag(config.persistent) << ";  // blocks take the work items in turn\n"
     << "constexpr bool kSnakeOrder = " << flag(config.snake_order) << ";  // every other round of items backwards\n"
     << "constexpr bool kOverlapItems = " << flag(config.overlap_items) << ";  // an item's last P.V goes with the next's S(0)\n"
     << "constexpr bool kDynamicItems = " << flag(config.dynamic_items) << ";  // blocks claim their next item\n"
     << "constexpr bool kTmaStore = " << flag(config.tma_store) << ";  // the output rows by a TMA store\n"
     << "constexpr int kSoftmaxChains = " << (config.softmax_chains ? 4 : 1) << ";  // independent chains of a row's max and sum\n"
     << "constexpr bool kF16Mma = " << flag(config.f16_mma) << ";  // 8-bit K/V: the MMAs in fp16 (bf16 q)\n"
     << "constexpr bool kStoredKScores = " << flag(config.stored_k_scores) << ";  // Q.K^T in fp8: Q as e4m3 hi + lo, K as stored\n"
     << "constexpr bool kStoredV = " << flag(config.stored_v) << ";  // P.V in fp8: P as e4m3 hi + lo, V transposed as stored\n"
     << "constexpr bool kConsumerFold = " << flag(config.consumer_fold) << ";  // the compute warps fold Q's rows into 8-bit tiles\n"
     << "constexpr bool kWidenRows = " << flag(config.widen_rows) << ";  // 8 lanes widen 8 rows of a chunk column\n"
     << "constexpr bool kWidenAhead = " << flag(config.widen_ahead) << ";  // a lane's next chunk loaded before this one's stores\n"
     << "typedef " << (config.f16_mma ? "fp16_tag" : "Elem") << " MmaElem;  // the MMAs' 16-bit operand format\n"
     << "constexpr bool kItemClock = " << flag(prefill_item_clock()) << ";  // experiment: per-item %globaltimer stamps\n"
     << "// launch geometry, shared with the host launcher\n"
     << "constexpr int kThreads = " << g.threads << ";\n"
     << "constexpr int kQBytes = " << g.q_bytes << ";\n"
     << "constexpr int kTileBytes = " << g.tile_bytes << ";\n"
     << "constexpr int kKTileBytes = " << g.k_tile_bytes << ";  // one K stage\n"
     << "constexpr int kVStages = " << g.v_stages << ";  // V's stages (K's: kStages)\n"
     << "constexpr int kDequantBytes = " << g.dequant_bytes << ";\n"
     << "constexpr int kBarrierBytes = " << g.barrier_bytes << ";  // mbarriers after the K/V stages\n"
     << "constexpr int kSharedBytes = " << g.shared_bytes << ";\n"
     << "constexpr int kProducerRegisters = " << g.producer_registers << ", kConsumerRegisters = "
     << g.consumer_registers << ";  // setmaxnreg targets\n"
     << "#define SWAJIT_PREFILL_KERNEL " << out.kernel_symbol << "\n\n"
     << section("window_mask.h") << section("attention_tile.cuh");
  os << "// ---- warpgroup MMA wrappers (generated for this tile size; used when kWgmma) ----\n"
     << wgmma_wrappers(spec, config) << "\n" << section("prefill.cuh");
  out.source = os.str();
  return out;
}

SparseDecodeGeometry sparse_decode_geometry(const KernelSpec& spec, const SparseDecodeConfig& config) {
  constexpr int kWarps = 4, kWarpSize = 32;  // enough warps to keep a tile's gathers in flight
  constexpr int kMaxRowsPerBlock = 16;       // q heads per block: bounds each lane's accumulators
  constexpr int kRowPadBytes = 16;           // shifts row t + 1 by one 16-byte bank group from row t
  constexpr int kFloatBytes = 4, kMergeThreads = 128;
  constexpr int kTileRowBytes = 24;          // templates/sparse_decode.cuh's TileRow: K and V offsets, bias, padding
  // mma: 16-row tiles of q heads; a warp accumulates at most 128 V columns of one tile (64 fp32 registers), and up
  // to 64 q heads share a block's gathered rows (more would need over 512 threads or spill the accumulators).
  constexpr int kMmaRows = 16, kMmaMaxRowsPerBlock = 64, kMmaMaxSliceColumns = 128, kMmaProbPad = 8;
  SparseDecodeGeometry g{};
  g.rows = spec.q_seqlen * spec.group;
  g.k_row_bytes = spec.head_dim * kv_element_bytes(spec) + kRowPadBytes;
  g.v_row_bytes = spec.shared_kv ? 0 : spec.head_dim_v * kv_element_bytes(spec) + kRowPadBytes;
  g.stage_bytes = config.block_n * (g.k_row_bytes + g.v_row_bytes);
  g.merge_threads = kMergeThreads;
  g.meta_bytes = (config.stages + 1) * config.block_n * kTileRowBytes;
  g.col_slices = 1;
  if (config.mla) {
    // templates/sparse_decode_mla.cuh: two warpgroups over 64 q heads, each scoring half of a tile's tokens and
    // accumulating half of V's columns; Q and the latent tiles unpadded (wgmma's swizzled layout). After them: each
    // stage's candidate biases, the warpgroups' tile row maxima and their P fragments (a uint4 per thread and k16 step).
    constexpr int kWarpgroups = 2, kWarpgroupThreads = 128, kMlaRows = 64, kMmaK = 16, kUint4Bytes = 16;
    g.threads = kWarpgroups * kWarpgroupThreads;
    g.rows_per_block = std::min(spec.group, kMlaRows);
    g.q_rows = kMlaRows;
    g.col_slices = kWarpgroups;
    g.k_row_bytes = spec.head_dim * kv_element_bytes(spec);
    g.stage_bytes = config.block_n * g.k_row_bytes;
    g.q_bytes = kMlaRows * g.k_row_bytes;
    const int probs_bytes = g.threads * (config.block_n / kWarpgroups / kMmaK) * kUint4Bytes;
    g.softmax_bytes = config.stages * config.block_n * kFloatBytes + kWarpgroups * kMlaRows * kFloatBytes + probs_bytes;
    if (config.warp_specialize) {
      // templates/sparse_decode_mla_ws.cuh: a scoring warpgroup beside the two accumulating ones. After the stages:
      // prob_buffers exchanges of P (a uint4 per scorer thread and k16 step of a tile) and of the rescale factors (a
      // float2 per scorer thread) in the 8 KB (of P) that fit beside Q and the stages, each stage's biases, and the
      // mbarriers (full per stage, full and empty per exchange).
      constexpr int kProbExchangeBytes = 8192, kFloat2Bytes = 8, kBarrierBytes = 8;
      const int probs_per_tile = kWarpgroupThreads * (config.block_n / kMmaK) * kUint4Bytes;
      g.threads = (1 + kWarpgroups) * kWarpgroupThreads;
      g.prob_buffers = std::max(1, kProbExchangeBytes / probs_per_tile);
      // Q (72 KB) and 128 gathered rows (144 KB) fill shared memory: more rows than that, and the scorer keeps Q in
      // its registers instead (as wgmma A fragments).
      constexpr int kMaxRowsBesideQ = 128;
      if (config.stages * config.block_n > kMaxRowsBesideQ) g.q_bytes = 0;
      g.softmax_bytes = g.prob_buffers * (probs_per_tile + kWarpgroupThreads * kFloat2Bytes) +
                        config.stages * config.block_n * kFloatBytes +
                        (config.stages + 2 * g.prob_buffers) * kBarrierBytes;
    }
    g.row_blocks = (spec.group + g.rows_per_block - 1) / g.rows_per_block;
    g.shared_bytes = g.q_bytes + config.stages * g.stage_bytes + g.softmax_bytes;  // no lookup ring (meta_bytes)
    return g;
  }
  if (config.token_split) {
    // One 16-row tile of q heads; each warp takes 16 or more of a tile's candidates. The warps' (max, sum, output)
    // are combined at the end in the stage buffers, plus whatever they lack.
    // (narrow_warps: 8 candidates a warp, P V on m16n8k8, up to 8 warps)
    constexpr int kMmaK = 16, kMaxWarps = 4, kNarrowMmaK = 8, kNarrowMaxWarps = 8;
    const int warps = config.narrow_warps ? std::min(kNarrowMaxWarps, config.block_n / kNarrowMmaK)
                                          : std::min(kMaxWarps, config.block_n / kMmaK);
    g.threads = warps * kWarpSize;
    g.rows_per_block = std::min(spec.group, kMmaRows);
    g.q_rows = kMmaRows;
    g.q_bytes = 0;  // each warp loads its Q fragments from global memory
    const int combine_bytes = warps * kMmaRows * (spec.head_dim_v + 2) * kFloatBytes;
    g.softmax_bytes = std::max(0, combine_bytes - config.stages * g.stage_bytes);
  } else if (config.mma) {
    g.rows_per_block = std::min(spec.group, kMmaMaxRowsPerBlock);
    g.q_rows = (g.rows_per_block + kMmaRows - 1) / kMmaRows * kMmaRows;
    const int row_tiles = g.q_rows / kMmaRows;
    g.col_slices = (spec.head_dim_v + kMmaMaxSliceColumns - 1) / kMmaMaxSliceColumns;
    while (row_tiles * g.col_slices < kWarps && spec.head_dim_v % (2 * g.col_slices * kMmaRows) == 0) g.col_slices *= 2;
    g.threads = row_tiles * g.col_slices * kWarpSize;
    g.q_bytes = g.q_rows * (spec.head_dim * 2 + kRowPadBytes);
    const int stats_bytes = 3 * g.q_rows * kFloatBytes;  // row max, row sum, the tile's rescale
    g.softmax_bytes = g.q_rows * config.block_n * kFloatBytes + g.q_rows * (config.block_n + kMmaProbPad) * 2 + stats_bytes;
  } else {
    g.threads = kWarps * kWarpSize;
    g.rows_per_block = std::min(spec.group, kMaxRowsPerBlock);
    g.q_rows = (g.rows_per_block + kWarps - 1) / kWarps * kWarps;
    g.q_bytes = g.q_rows * spec.head_dim * kFloatBytes;
  }
  g.row_blocks = (spec.group + g.rows_per_block - 1) / g.rows_per_block;
  g.shared_bytes = g.q_bytes + config.stages * g.stage_bytes + g.meta_bytes + g.softmax_bytes;
  return g;
}

namespace {
// With config.l2_prefetch: the largest L2 prefetch size (256 or 128 bytes) that divides every stored K and V row, so
// that a row's copies fetch whole blocks of it and nothing of its neighbours; 0 without (or for no such size).
int l2_prefetch_bytes(const KernelSpec& spec, const SparseDecodeConfig& config) {
  const int k_row = spec.head_dim * kv_element_bytes(spec), v_row = spec.shared_kv ? k_row : spec.head_dim_v * kv_element_bytes(spec);
  if (!config.l2_prefetch) return 0;
  for (int block : {256, 128})
    if (k_row % block == 0 && v_row % block == 0) return block;
  return 0;
}
}  // namespace

GeneratedKernel generate_sparse_decode_cuda(const KernelSpec& spec, const SparseDecodeConfig& config) {
  spec.validate();
  config.validate(spec);
  const SparseDecodeGeometry g = sparse_decode_geometry(spec, config);
  std::ostringstream os;
  GeneratedKernel out = named_kernel(spec, config.compile_key(), "swajit_", "", os);
  os << section("tile_ops.cuh") << section("paged_call_params.h") << section("sparse_decode_params.h")
     << "// ---- specialization (generated) ----\n"
     << "typedef " << (spec.dtype == DType::kBF16 ? "bf16_tag" : "fp16_tag") << " Elem;\n"
     << "constexpr int kHeadDim = " << spec.head_dim << ", kHeadDimV = " << spec.head_dim_v << ";\n"
     << "constexpr int kPageSize = " << spec.page_size << ";\n"
     << "constexpr int kQSeqlen = " << spec.q_seqlen << ";\n"
     << "constexpr int kGroup = " << spec.group << ";\n"
     << "constexpr bool kLocalWindow = " << flag(spec.local_window) << ";\n"
     << "constexpr bool kGlobalWindow = false, kCausal = true;  // what window_mask.h asks; sparse_decode has neither\n"
     << "constexpr bool kSharedKv = " << flag(spec.shared_kv) << ";\n"
     << "constexpr bool kScoreBias = " << flag(spec.score_bias) << ";\n"
     << "constexpr bool kSinkLogits = " << flag(spec.sink_logits) << ";\n"
     << "constexpr bool kGqaInterleaved = " << flag(spec.gqa == GqaMapping::kInterleaved) << ";\n"
     << "typedef " << kv_elem_tag(spec.kv_quant) << " KvElem;\n"
     << "constexpr int kKvQuant = " << static_cast<int>(spec.kv_quant) << ";  // 0: 16-bit cache, 1: int8, 2: fp8 e4m3\n"
     << "constexpr int kKvBytes = " << kv_element_bytes(spec) << ";\n"
     << "// config " << config.compile_key() << " and the launch geometry the host uses too\n"
     << "constexpr int kBlockN = " << config.block_n << ", kStages = " << config.stages << ";\n"
     << "constexpr int kThreads = " << g.threads << ";\n"
     << "constexpr int kRowsPerBlock = " << g.rows_per_block << ", kQRows = " << g.q_rows
     << ", kRowBlocks = " << g.row_blocks << ", kRows = " << g.rows << ";\n"
     << "constexpr int kQBytes = " << g.q_bytes << ", kKRowBytes = " << g.k_row_bytes << ", kVRowBytes = " << g.v_row_bytes
     << ", kStageBytes = " << g.stage_bytes << ";\n"
     << "constexpr int kSharedBytes = " << g.shared_bytes << ";\n"
     << "constexpr int kMergeThreads = " << g.merge_threads << ";\n"
     << (config.mma ? "#define SWAJIT_SPARSE_MMA 1  // tensor cores: templates/sparse_decode_mma.cuh is the main kernel\n" : "")
     << "#define SWAJIT_L2_PREFETCH_BYTES " << l2_prefetch_bytes(spec, config)
     << "  // the L2 block each gathered row's copies ask for (0: none)\n"
     << "constexpr bool kL2Ahead = " << flag(config.l2_ahead) << ", kTablePrefetch = " << flag(config.table_prefetch)
     << ";  // the gather's L2 prefetches: rows an iteration ahead, the block_table row\n"
     << "constexpr bool kPersistent = " << flag(config.persistent) << ";  // blocks take the (sequence, kv head, split) items in turn\n"
     << "constexpr bool kNarrowWarps = " << flag(config.narrow_warps) << ";  // token split: 8 candidates a warp, at most 128 registers\n"
     << "constexpr bool kStaggerV = " << flag(config.stagger_v) << ";  // the gather copies V rows half a tile from K rows\n"
     << "constexpr int kColSlices = " << g.col_slices << ", kMetaBytes = " << g.meta_bytes
     << ", kSoftmaxBytes = " << g.softmax_bytes << ", kProbBuffers = " << g.prob_buffers << ";\n"
     << "#define SWAJIT_SPARSE_KERNEL " << out.kernel_symbol << "\n"
     << "#define SWAJIT_MERGE_KERNEL " << out.merge_symbol << "\n\n"
     << section("window_mask.h") << section("attention_tile.cuh") << section("sparse_decode.cuh");
  if (config.token_split) os << section("sparse_decode_tokens.cuh");
  else if (config.mla)
    os << mla_wgmma_wrappers(spec, config) << "\n" << section("sparse_decode_mla_common.cuh")
       << section(config.warp_specialize ? "sparse_decode_mla_ws.cuh"
                  : config.seesaw        ? "sparse_decode_mla_seesaw.cuh"
                                         : "sparse_decode_mla.cuh");
  else if (config.mma) os << section("sparse_decode_mma.cuh");
  out.source = os.str();
  return out;
}

int cpu_scratch_floats(const KernelSpec& spec, const CpuDecodeConfig& config) {
  if (spec.family == KernelFamily::kSparseDecode) {
    // Must match the carving at the top of sparse_item() in templates/sparse_decode_cpu.cpp: q and accumulators of
    // one query token's q heads, widened K and V tiles, the heads' scores, the tile's biases, each head's max and sum.
    const int heads = spec.group, n = config.block_n;
    return heads * (spec.head_dim + spec.head_dim_v) + n * (spec.head_dim + spec.head_dim_v) + heads * n + n + 2 * heads;
  }
  const int rows = spec.q_seqlen * spec.group;
  // Must match the carving at the top of decode_item() in templates/paged_decode_cpu.cpp: q and accumulators per
  // row, widened K and V tiles, every row's scores for the tile, and each row's max and sum.
  return 2 * rows * spec.head_dim + 2 * config.block_n * spec.head_dim + rows * config.block_n + 2 * rows;
}

namespace {

// What the CPU kernels of every family start with: their names, the header, cpu_base.h, the family's argument struct
// and the specialization constants they share; the caller adds its family's own constants and template.
GeneratedKernel cpu_kernel_start(const KernelSpec& spec, const CpuDecodeConfig& config, std::string_view params_header,
                                 std::ostringstream& os) {
  GeneratedKernel out = named_kernel(spec, config.compile_key(), "swajit_cpu_", " for the CPU backend", os);
  os << section("cpu_base.h") << section("paged_call_params.h") << section(params_header)
     << "// ---- specialization (generated) ----\n"
     << "constexpr bool kIsBf16 = " << flag(spec.dtype == DType::kBF16) << ";\n"
     << "constexpr int kPageSize = " << spec.page_size << ";\n"
     << "constexpr int kQSeqlen = " << spec.q_seqlen << ";\n"
     << "constexpr int kGroup = " << spec.group << ";\n"
     << "constexpr bool kLocalWindow = " << flag(spec.local_window) << ";\n"
     << "constexpr bool kSinkLogits = " << flag(spec.sink_logits) << ";\n"
     << "constexpr bool kGqaInterleaved = " << flag(spec.gqa == GqaMapping::kInterleaved) << ";\n"
     << "constexpr int kKvQuant = " << static_cast<int>(spec.kv_quant) << ";  // 0: 16-bit cache, 1: int8, 2: fp8 e4m3\n"
     << "// config " << config.compile_key() << "\n"
     << "constexpr int kBlockN = " << config.block_n << ";\n"
     << "constexpr int kRows = " << spec.q_seqlen * spec.group << ";\n"
     << "#define SWAJIT_CPU_KERNEL " << out.kernel_symbol << "\n"
     << "#define SWAJIT_CPU_MERGE " << out.merge_symbol << "\n";
  return out;
}

}  // namespace

GeneratedKernel generate_paged_decode_cpu(const KernelSpec& spec, const CpuDecodeConfig& config) {
  spec.validate();
  if (spec.family != KernelFamily::kPagedDecode)
    throw Error(ErrorCode::kInvalidArgument, "generate_paged_decode_cpu needs a paged_decode spec, got " + spec.key());
  config.validate(spec);
  std::ostringstream os;
  GeneratedKernel out = cpu_kernel_start(spec, config, "paged_decode_params.h", os);
  os << "constexpr int kHeadDim = " << spec.head_dim << ";\n"
     << "constexpr bool kCausal = true;  // decode queries are the last q_seqlen positions\n"
     << "constexpr bool kGlobalWindow = " << flag(spec.global_window) << ";\n\n"
     << section("cpu_math.h") << section("window_mask.h") << section("decode_schedule.h")
     << section("paged_decode_cpu.cpp");
  out.source = os.str();
  return out;
}

GeneratedKernel generate_sparse_decode_cpu(const KernelSpec& spec, const CpuDecodeConfig& config) {
  spec.validate();
  if (spec.family != KernelFamily::kSparseDecode)
    throw Error(ErrorCode::kInvalidArgument, "generate_sparse_decode_cpu needs a sparse_decode spec, got " + spec.key());
  config.validate(spec);
  std::ostringstream os;
  GeneratedKernel out = cpu_kernel_start(spec, config, "sparse_decode_params.h", os);
  os << "constexpr int kHeadDim = " << spec.head_dim << ", kHeadDimV = " << spec.head_dim_v << ";\n"
     << "constexpr bool kSharedKv = " << flag(spec.shared_kv) << ";\n"
     << "constexpr bool kScoreBias = " << flag(spec.score_bias) << ";\n\n"
     << section("cpu_math.h") << section("sparse_decode_cpu.cpp");
  out.source = os.str();
  return out;
}

}  // namespace swajit
