// The sparse top-k decode check matrix (issue 16's list) and how one case runs: random selections per query token,
// compared with reference_sparse_decode; invalid indices must be reported and their rows zeroed.
#include "check.hpp"

#include <algorithm>
#include <random>
#include <tuple>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "check_data.hpp"
#include "cuda_driver.hpp"
#include "kernel_cache.hpp"
#include "sparse_decode_problem.hpp"
#include "swajit/swajit.hpp"

namespace swajit {

using namespace check_data;

std::vector<SparseCase> sparse_check_matrix(DLDevice where) {
  std::vector<SparseCase> cases;
  const auto add = [&](std::string name, auto&& edit) {
    SparseCase c;
    c.name = std::move(name);
    edit(c);
    for (int& len : c.seq_lens)  // a sequence shorter than q_seqlen is invalid input (tested separately)
      if (len > 0 && len < c.q_seqlen) len = c.q_seqlen;
    cases.push_back(std::move(c));
  };
  using Selection = SparseCase::Selection;
  for (int topk : {1, 64, 2048})
    add("topk " + std::to_string(topk), [&](SparseCase& c) { c.topk = topk; c.seq_lens = {0, 1, 90, 3000}; });
  add("topk 100 (padded bucket)", [](SparseCase& c) { c.topk = 100; });
  add("all slots unused", [](SparseCase& c) { c.selection = Selection::kAllUnused; });
  add("all slots unused, sinks", [](SparseCase& c) { c.selection = Selection::kAllUnused; c.sink_logits = true; });
  add("last token and token 0", [](SparseCase& c) { c.selection = Selection::kEdges; c.q_seqlen = 1; });
  add("selection overlapping the window", [](SparseCase& c) { c.local_window = 32; c.seq_lens = {1, 40, 100}; c.topk = 48; });
  add("window larger than the sequence", [](SparseCase& c) { c.local_window = 5000; c.topk = 16; });
  add("window 1", [](SparseCase& c) { c.local_window = 1; c.selection = Selection::kEdges; });
  add("window only (all slots unused)", [](SparseCase& c) { c.local_window = 20; c.selection = Selection::kAllUnused; });
  for (int qs : {1, 4, 8})
    add("q_seqlen " + std::to_string(qs) + ", a selection per row", [&](SparseCase& c) { c.q_seqlen = qs; });
  for (int group : {1, 16, 128})
    add("group " + std::to_string(group), [&](SparseCase& c) {
      c.group = group;
      c.num_kv_heads = group > 16 ? 1 : 2;
      c.seq_lens = {5, 700};
    });
  for (DType dtype : {DType::kBF16, DType::kFP16})
    for (int d : {64, 128, 256})
      add("head_dim " + std::to_string(d) + " " + std::string(to_string(dtype)), [&](SparseCase& c) {
        c.dtype = dtype;
        c.head_dim = d;
      });
  add("shared K/V 576 / 512 (MLA), group 16", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 16; c.num_kv_heads = 1; c.q_seqlen = 1;
    c.seq_lens = {3, 600};
  });
  add("shared K/V 576 / 512 (MLA), group 128, topk 2048, window, sinks", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 128; c.num_kv_heads = 1; c.q_seqlen = 1;
    c.topk = 2048; c.local_window = 128; c.sink_logits = true; c.seq_lens = {2500};
  });
  add("MLA 576 / 512, group 100 (a partial 64-head block), q_seqlen 3, page 1, bias, window 16, strided", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 100; c.num_kv_heads = 1; c.q_seqlen = 3;
    c.page_size = 1; c.score_bias = true; c.local_window = 16; c.strided = true; c.topk = 150; c.seq_lens = {0, 2, 333};
  });
  add("MLA 576 / 512, group 64, invalid indices reported, sinks, HND page 17", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 64; c.num_kv_heads = 1; c.q_seqlen = 2;
    c.selection = Selection::kInvalid; c.sink_logits = true; c.page_size = 17; c.kv_layout = KvLayout::kHND;
    c.seq_lens = {40, 200};
  });
  add("shared K/V 128 / 64, q_seqlen 4, HND", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim_v = 64; c.q_seqlen = 4; c.kv_layout = KvLayout::kHND;
  });
  for (int page : {1, 16, 64, 17})
    add("page_size " + std::to_string(page), [&](SparseCase& c) {
      c.page_size = page;
      c.kv_layout = page % 2 ? KvLayout::kHND : KvLayout::kNHD;
      c.seq_lens = {0, 1, 257, 613};
    });
  add("sinks", [](SparseCase& c) { c.sink_logits = true; });
  add("bias", [](SparseCase& c) { c.score_bias = true; });
  add("sinks, bias, window, strided", [](SparseCase& c) {
    c.sink_logits = true; c.score_bias = true; c.local_window = 16; c.strided = true;
  });
  add("interleaved GQA, bias", [](SparseCase& c) { c.gqa = GqaMapping::kInterleaved; c.score_bias = true; c.num_kv_heads = 3; });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string name = quant == KvQuant::kInt8 ? "int8 KV" : "fp8 KV";
    add(name + ", per-channel scales", [&](SparseCase& c) { c.kv_quant = quant; });
    add(name + ", per-tensor scale, HND, strided", [&](SparseCase& c) {
      c.kv_quant = quant; c.per_tensor_scale = true; c.kv_layout = KvLayout::kHND; c.strided = true;
    });
    add(name + ", shared 576 / 512, group 16", [&](SparseCase& c) {
      c.kv_quant = quant; c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 16; c.num_kv_heads = 1;
      c.seq_lens = {300};
    });
  }
  add("strided", [](SparseCase& c) { c.strided = true; c.q_seqlen = 3; });
  add("MLA 576 / 512, group 128, split 5, bias, fp16", [](SparseCase& c) {
    c.shared_kv = true; c.head_dim = 576; c.head_dim_v = 512; c.group = 128; c.num_kv_heads = 1; c.q_seqlen = 2;
    c.dtype = DType::kFP16; c.score_bias = true; c.topk = 200; c.seq_lens = {1, 900};
    c.cpu_config = CpuDecodeConfig{32, 5, 0}; c.config = SparseDecodeConfig{32, 2, 5, true};
  });
  add("forced splits 3, window, sinks", [](SparseCase& c) {
    c.cpu_config = CpuDecodeConfig{16, 3, 0}; c.config = SparseDecodeConfig{32, 2, 3, true};
    c.local_window = 40; c.sink_logits = true; c.seq_lens = {0, 1, 500};
  });
  add("token split bn32 st3 (two warps), splits 2, window, bias, sinks", [](SparseCase& c) {
    c.config = SparseDecodeConfig{32, 3, 2, true, true};
    c.local_window = 24; c.score_bias = true; c.sink_logits = true; c.seq_lens = {0, 7, 400};
  });
  // The deepest pipelines validate() allows: five tiles in flight per block, a lookup ring of seven slots.
  add("token split bn32 st6 (deep pipeline), splits 2, window, bias, sinks", [](SparseCase& c) {
    c.config = SparseDecodeConfig{32, 6, 2, true, true};
    c.local_window = 24; c.score_bias = true; c.sink_logits = true; c.seq_lens = {0, 7, 400};
  });
  add("token split bn32 st6 (deep pipeline), topk 2048", [](SparseCase& c) {
    c.config = SparseDecodeConfig{32, 6, 1, true, true};
    c.topk = 2048; c.seq_lens = {2, 3000};
  });
  // 8 candidates a warp (P V on m16n8k8), up to 8 warps a block.
  add("token split narrow warps bn64 st3 (8 warps), topk 2048", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 64, .stages = 3, .num_splits = 1, .mma = true, .token_split = true, .narrow_warps = true};
    c.topk = 2048; c.seq_lens = {2, 3000};
  });
  add("token split narrow warps bn32 st3 (4 warps), splits 3, window, bias, sinks, fp16", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 32, .stages = 3, .num_splits = 3, .mma = true, .token_split = true, .narrow_warps = true};
    c.local_window = 24; c.score_bias = true; c.sink_logits = true; c.seq_lens = {0, 7, 400}; c.dtype = DType::kFP16;
  });
  add("token split narrow warps bn64 st2, head_dim 64, q_seqlen 2, interleaved GQA, invalid indices reported", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 64, .stages = 2, .num_splits = 2, .mma = true, .token_split = true, .narrow_warps = true};
    c.head_dim = 64; c.head_dim_v = 64; c.q_seqlen = 2; c.gqa = GqaMapping::kInterleaved; c.num_kv_heads = 3;
    c.selection = Selection::kInvalid;
  });
  // V rows copied half a tile away from K rows: the token split, 64-row mma and CUDA-core kernels' gather.
  add("staggered V, token split bn64 st3, topk 2048, page 16", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 64, .stages = 3, .num_splits = 1, .mma = true, .token_split = true, .stagger_v = true};
    c.topk = 2048; c.seq_lens = {2, 3000}; c.page_size = 16;
  });
  add("staggered V, token split narrow warps bn32 st3, splits 2, window, bias, sinks", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 32, .stages = 3, .num_splits = 2, .mma = true, .token_split = true,
                                  .narrow_warps = true, .stagger_v = true};
    c.local_window = 24; c.score_bias = true; c.sink_logits = true; c.seq_lens = {0, 7, 400};
  });
  add("staggered V, mma bn32 st4, splits 3, group 16, interleaved", [](SparseCase& c) {
    c.config = SparseDecodeConfig{.block_n = 32, .stages = 4, .num_splits = 3, .mma = true, .stagger_v = true};
    c.group = 16; c.num_kv_heads = 2; c.gqa = GqaMapping::kInterleaved; c.seq_lens = {5, 700};
  });
  add("forced splits 7, all unused, sinks", [](SparseCase& c) {
    c.cpu_config = CpuDecodeConfig{8, 7, 2}; c.config = SparseDecodeConfig{32, 3, 7, true};
    c.selection = Selection::kAllUnused; c.sink_logits = true;
  });
  // More (sequence, kv head, token) items than any GPU holds blocks at once: a persistent grid's blocks take several
  // in turn (the [persistent] copies below), the invalid one in the middle of a block's stream.
  const auto many_sequences = [](SparseCase& c) {
    c.num_kv_heads = 4;
    c.seq_lens.clear();
    for (int b = 0; b < 300; ++b) c.seq_lens.push_back(b % 7 == 3 ? 0 : 2 + (b * 37) % 500);
  };
  add("300 sequences", many_sequences);
  add("300 sequences, invalid indices reported, bias, sinks", [&](SparseCase& c) {
    many_sequences(c);
    c.selection = Selection::kInvalid; c.score_bias = true; c.sink_logits = true;
  });
  add("kv length 0 everywhere", [](SparseCase& c) { c.seq_lens = {0, 0}; });
  add("kv length 1", [](SparseCase& c) { c.seq_lens = {1}; c.q_seqlen = 1; c.selection = Selection::kEdges; });
  add("invalid indices reported", [](SparseCase& c) { c.selection = Selection::kInvalid; });
  add("invalid indices reported, split", [](SparseCase& c) {
    c.selection = Selection::kInvalid; c.cpu_config = CpuDecodeConfig{16, 4, 0}; c.config = SparseDecodeConfig{32, 2, 4, true};
    c.sink_logits = true;
  });
  add("invalid indices reported, token split, splits 3 (one share rejected, the merge zeroes the row)", [](SparseCase& c) {
    c.selection = Selection::kInvalid; c.topk = 200; c.seq_lens = {0, 300, 900};
    c.cpu_config = CpuDecodeConfig{16, 3, 0}; c.config = SparseDecodeConfig{32, 2, 3, true, true};
  });
  // On CUDA, the same cases forced onto the CUDA-core kernel where the default (the heuristic, or the forced configs
  // above) runs on tensor cores: both paths must pass. Two splits, so that the merge runs on this path too.
  if (where.device_type == kDLCPU) return cases;
  const size_t defaults = cases.size();
  for (size_t i = 0; i < defaults; ++i) {
    if (cases[i].kv_quant != KvQuant::kNone) continue;  // 8-bit caches run on CUDA cores already
    SparseCase c = cases[i];
    c.name += " [CUDA cores]";
    constexpr int kSplits = 2;
    c.config = SparseDecodeConfig{64, 2, kSplits, false};
    cases.push_back(std::move(c));
  }
  // The gather's L2 prefetches (rows an iteration ahead, the block_table row) on each kernel that has the gather:
  // token split (its 16-bit default for groups up to 16), the 64-row mma kernel and the CUDA-core one (any cache).
  const auto forced = [](SparseCase c, const SparseDecodeConfig& config, const std::string& kernel) {
    c.name += " [" + kernel + " " + config.key() + "]";
    c.config = config;
    return c;
  };
  const auto with_prefetches = [&](const SparseCase& c, SparseDecodeConfig config, const std::string& kernel) {
    config.l2_ahead = config.table_prefetch = true;
    return forced(c, config, kernel);
  };
  for (size_t i = 0; i < defaults; ++i) {
    const SparseCase base = cases[i];  // a copy: the pushes below may move the vector
    if (base.shared_kv && base.head_dim == 576) continue;  // the MLA kernel has its own prefetch (l2_prefetch)
    const KernelSpec spec = base.spec();
    const bool token_split = spec.group <= 16 && spec.head_dim_v <= 128;  // (SparseDecodeConfig::validate)
    const bool page_sizes = base.name.rfind("page_size", 0) == 0, selections = base.name.rfind("invalid", 0) == 0;
    if (base.kv_quant != KvQuant::kNone) {
      cases.push_back(with_prefetches(base, SparseDecodeConfig{.block_n = 64, .stages = 3, .num_splits = 2}, "CUDA cores"));
    } else if (page_sizes || selections || base.local_window > 0 || base.strided) {
      if (token_split)
        for (int splits : {1, 3})
          cases.push_back(with_prefetches(base, SparseDecodeConfig{.block_n = 64, .stages = 2, .num_splits = splits,
                                                                   .mma = true, .token_split = true}, "token split"));
      cases.push_back(with_prefetches(base, SparseDecodeConfig{.block_n = 32, .stages = 4, .num_splits = 2, .mma = true}, "mma"));
    }
    // The persistent token-split kernel (no window): whole items and split ones, with and without the prefetches.
    if (base.kv_quant == KvQuant::kNone && base.local_window == 0 && token_split) {
      const SparseDecodeConfig persistent{.block_n = 64, .stages = 2, .num_splits = 1, .mma = true, .token_split = true,
                                          .persistent = true};
      cases.push_back(forced(base, persistent, "persistent"));
      SparseDecodeConfig split = persistent;
      split.block_n = 32;
      split.stages = 3;
      split.num_splits = 3;
      cases.push_back(with_prefetches(base, split, "persistent"));
    }
  }
  // The MLA cases (16-bit shared 576 / 512) again on the MLA kernel (sm_90a; skipped elsewhere), whole and split
  // (the heuristic takes it for groups above 32 on sm_90a, so the defaults above run it too).
  for (size_t i = 0; i < defaults; ++i) {
    if (!cases[i].shared_kv || cases[i].head_dim != 576 || cases[i].kv_quant != KvQuant::kNone) continue;
    for (int splits : {1, 3}) {
      SparseCase c = cases[i];
      c.name += " [MLA kernel, " + std::to_string(splits) + (splits == 1 ? " split]" : " splits]");
      c.config = SparseDecodeConfig{.block_n = 64, .stages = 2, .num_splits = splits, .mma = true, .mla = true};
      cases.push_back(std::move(c));
    }
    // its warp-specialized variant in each of its tiles (32 x 6: Q in the scorer's registers); both with the L2
    // prefetch of the next tile's rows; the two-warpgroup one copying two tiles ahead
    for (const auto& [block_n, stages, splits, warp_specialize, l2_prefetch, copy_ahead, score_ahead, split_scores] :
         {std::tuple{32, 4, 1, true, false, false, false, false}, std::tuple{32, 4, 3, true, false, false, false, false},
          std::tuple{64, 2, 1, true, false, false, false, false}, std::tuple{32, 6, 1, true, false, false, false, false},
          std::tuple{32, 6, 3, true, true, false, false, false}, std::tuple{64, 2, 1, false, true, false, false, false},
          std::tuple{64, 2, 1, false, false, true, false, false}, std::tuple{64, 2, 3, false, false, true, false, false},
          std::tuple{64, 2, 1, false, false, true, true, false}, std::tuple{64, 2, 3, false, false, true, true, false},
          std::tuple{64, 2, 1, false, false, false, false, true}, std::tuple{64, 2, 3, false, false, true, false, true}}) {
      SparseCase c = cases[i];
      c.config = SparseDecodeConfig{.block_n = block_n, .stages = stages, .num_splits = splits, .mma = true,
                                    .l2_prefetch = l2_prefetch, .mla = true, .warp_specialize = warp_specialize,
                                    .copy_ahead = copy_ahead, .score_ahead = score_ahead, .split_scores = split_scores};
      c.name += " [MLA kernel " + c.config->compile_key() + ", " + std::to_string(splits) + (splits == 1 ? " split]" : " splits]");
      cases.push_back(std::move(c));
    }
    for (const auto& [block_n, stages, splits] : {std::tuple{64, 2, 1}, std::tuple{64, 2, 3}, std::tuple{32, 4, 1}, std::tuple{32, 4, 3}}) {
      SparseCase c = cases[i];  // the seesaw schedule in each of its tiles, whole and split
      c.config = SparseDecodeConfig{.block_n = block_n, .stages = stages, .num_splits = splits, .mma = true, .mla = true, .seesaw = true};
      c.name += " [MLA kernel " + c.config->compile_key() + ", " + std::to_string(splits) + (splits == 1 ? " split]" : " splits]");
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

namespace {

// Each query row's selection of the case's kind; the invalid kind puts seq_len into the first slot of one row.
std::vector<int> random_selection(const SparseCase& c, std::mt19937_64& rng) {
  const int batch = int(c.seq_lens.size());
  std::vector<int> indices(size_t(batch) * c.q_seqlen * c.topk, -1);
  if (c.selection == SparseCase::Selection::kAllUnused) return indices;
  std::uniform_int_distribution<int> unused(0, 7);
  for (int b = 0; b < batch; ++b)
    for (int s = 0; s < c.q_seqlen; ++s) {
      const int len = c.seq_lens[b];
      int* row = &indices[(size_t(b) * c.q_seqlen + s) * c.topk];
      if (len == 0) continue;  // only -1 is valid
      std::uniform_int_distribution<int> position(0, len - 1);
      for (int i = 0; i < c.topk; ++i) row[i] = unused(rng) == 0 ? -1 : position(rng);
      if (c.selection == SparseCase::Selection::kEdges) {
        row[0] = len - 1;
        if (c.topk > 1) row[c.topk - 1] = 0;
      }
    }
  if (c.selection == SparseCase::Selection::kInvalid) {
    const int b = batch - 1, s = c.q_seqlen - 1;
    indices[(size_t(b) * c.q_seqlen + s) * c.topk] = c.seq_lens[b];
  }
  return indices;
}

// Pages of every sequence drawn from a shuffled pool with spares, so neighbours are not adjacent; unused table
// entries point at a spare page.
void fill_block_table(HostPagedDecode& host, std::mt19937_64& rng) {
  const int P = host.page_size;
  int used_pages = 0;
  for (int len : host.seq_lens) used_pages += (len + P - 1) / P;
  host.num_pages = used_pages + 3;
  std::vector<int> pool(host.num_pages);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  host.block_table.assign(size_t(host.batch) * host.max_pages_per_seq, 0);
  int next = 0;
  for (int b = 0; b < host.batch; ++b)
    for (int i = 0; i < host.max_pages_per_seq; ++i)
      host.block_table[size_t(b) * host.max_pages_per_seq + i] =
          i < (host.seq_lens[b] + P - 1) / P ? pool[next++] : pool.back();
}

// A selection tensor [batch, q_seqlen, topk]; strided: rows padded by 3 slots.
StridedTensor selection_tensor(int batch, int q_seqlen, int topk, bool strided) {
  if (!strided) return compact_tensor({batch, q_seqlen, topk});
  return make_tensor({batch, q_seqlen, topk}, {q_seqlen * (topk + 3) + 1, topk + 3, 1});
}

}  // namespace

void precompile_sparse_cases(const std::vector<SparseCase>& cases, DLDevice where, int threads) {
  build_in_parallel(cases.size(), where, threads, [&](size_t i, const cuda::ScopedDeviceContext* scope) {
    const KernelSpec spec = cases[i].spec();
    if (!scope) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
      cpu_decode_kernel(spec, cases[i].cpu_config.value_or(CpuDecodeConfig{}));
#endif
      return;
    }
    const DeviceInfo& device = cuda_device(where.device_id);
    if (cases[i].config && cases[i].config->mla && device.arch() != "sm_90a") return;  // skipped when run
    const SparseDecodeConfig config =
        cases[i].config ? *cases[i].config : sparse_decode_heuristic(spec, device);
    cuda_kernel(spec, config, device, scope->context());
    // the pipelines the default takes instead for a grid of one block per item (sparse_decode_default_config)
    if (!cases[i].config)
      for (const SparseDecodeConfig& pipeline : sparse_decode_pipelines(spec, config, device))
        cuda_kernel(spec, pipeline, device, scope->context());
  });
}

CaseResult run_sparse_case(const SparseCase& c, DLDevice where, uint64_t seed) {
  if (c.config && c.config->mla && where.device_type != kDLCPU && cuda_device(where.device_id).arch() != "sm_90a") {
    CaseResult skipped;
    skipped.passed = true;
    skipped.detail = "skipped: the MLA kernel (wgmma) needs sm_90a";
    return skipped;
  }
  std::mt19937_64 rng(seed);
  const KernelSpec spec = c.spec();
  const int batch = int(c.seq_lens.size());
  const int hq = c.group * c.num_kv_heads, hkv = c.num_kv_heads, D = c.head_dim, Dv = spec.head_dim_v;
  const int P = c.page_size, Qs = c.q_seqlen;
  const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());

  HostSparseDecode sparse;
  HostPagedDecode& host = sparse.paged;
  host.batch = batch; host.q_seqlen = Qs; host.num_q_heads = hq; host.num_kv_heads = hkv; host.head_dim = D;
  host.page_size = P; host.layout = c.kv_layout; host.local_window = c.local_window; host.gqa = c.gqa;
  host.max_pages_per_seq = (max_len + P - 1) / P + 1;  // one spare column: wider than any sequence needs
  host.scale = 1.0 / std::sqrt(double(D));
  host.seq_lens = c.seq_lens;
  fill_block_table(host, rng);
  host.q = random_values(size_t(batch) * Qs * hq * D, c.dtype, rng);
  const size_t cache_elems = size_t(host.num_pages) * P * hkv * D;
  QuantizedCache k_quant, v_quant;
  if (c.kv_quant == KvQuant::kNone) {
    host.k = random_values(cache_elems, c.dtype, rng);
    if (!c.shared_kv) host.v = random_values(cache_elems, c.dtype, rng);
  } else {
    const QuantizedLayout layout{c.kv_quant, c.per_tensor_scale, hkv, D, P, c.kv_layout};
    k_quant = random_quantized_cache(cache_elems, layout, rng);
    host.k = k_quant.values;
    if (!c.shared_kv) {
      v_quant = random_quantized_cache(cache_elems, layout, rng);
      host.v = v_quant.values;
    } else {
      v_quant = k_quant;  // one cache: V's scale is K's
    }
  }
  if (c.sink_logits) {
    std::uniform_real_distribution<float> sink(-1.f, 3.f);  // comparable to the scores, so the sinks matter
    for (int h = 0; h < hq; ++h) host.sink_logits.push_back(sink(rng));
  }
  sparse.head_dim_v = Dv;
  sparse.shared_kv = c.shared_kv;
  sparse.topk = c.topk;
  sparse.indices = random_selection(c, rng);
  if (c.score_bias) {
    std::uniform_real_distribution<float> bias(-2.f, 2.f);
    sparse.score_bias.resize(sparse.indices.size());
    for (float& x : sparse.score_bias) x = bias(rng);
    sparse.score_bias[0] = -INFINITY;  // padding, as DeepSeek's bias marks it
  }
  const std::vector<double> ref = reference_sparse_decode(sparse);

  // Device layouts.
  const int64_t pad = c.strided ? kVectorBytes / 2 : 0;  // 16-bit tensors
  const int64_t kv_pad = row_padding(c.strided, c.kv_quant != KvQuant::kNone);
  StridedTensor q_t = c.strided ? make_tensor({batch, Qs, hq, D}, {Qs * hq * (D + pad) + 2 * pad, hq * (D + pad), D + pad, 1})
                                : compact_tensor({batch, Qs, hq, D});
  const std::vector<int64_t> out_shape = {batch, Qs, hq, Dv};
  StridedTensor out_t = c.strided ? make_tensor(out_shape, {hq * Dv, int64_t(batch) * hq * Dv, Dv, 1}) : compact_tensor(out_shape);
  const std::vector<int64_t> cache_shape = c.kv_layout == KvLayout::kNHD ? std::vector<int64_t>{host.num_pages, P, hkv, D}
                                                                         : std::vector<int64_t>{host.num_pages, hkv, P, D};
  StridedTensor k_t = compact_tensor(cache_shape);
  if (c.strided) {
    const int64_t row = D + kv_pad;
    k_t = make_tensor(cache_shape, c.kv_layout == KvLayout::kNHD ? std::vector<int64_t>{P * hkv * row + kv_pad, hkv * row, row, 1}
                                                                 : std::vector<int64_t>{hkv * P * row + kv_pad, P * row, row, 1});
  }
  StridedTensor bt_t = c.strided ? make_tensor({batch, host.max_pages_per_seq}, {host.max_pages_per_seq + 3, 1})
                                 : compact_tensor({batch, host.max_pages_per_seq});
  StridedTensor sl_t = c.strided ? make_tensor({batch}, {2}) : compact_tensor({batch});
  StridedTensor idx_t = selection_tensor(batch, Qs, c.topk, c.strided);
  StridedTensor bias_t = selection_tensor(batch, Qs, c.topk, c.strided);

  CaseMemory memory(where);
  std::optional<cuda::ScopedDeviceContext> scope;
  if (!memory.on_cpu()) scope.emplace(where.device_id);
  void* q_d = memory.put(scatter_16bit(host.q, q_t, c.dtype));
  void* k_d = put_kv(memory, k_t, host.k, k_quant.codes, c.kv_quant, c.dtype);
  void* v_d = c.shared_kv ? nullptr : put_kv(memory, k_t, host.v, v_quant.codes, c.kv_quant, c.dtype);
  const DLDataType kv_dtype = kv_storage_dtype(c.kv_quant, c.dtype);
  ScaleTensors scales(memory, k_quant, v_quant, c.per_tensor_scale, c.strided, hkv, D, where);
  void* bt_d = memory.put(scatter<int>(bt_t, -7, [&](size_t n) { return host.block_table[n]; }));
  void* sl_d = memory.put(scatter<int>(sl_t, -7, [&](size_t n) { return c.seq_lens[n]; }));
  void* idx_d = memory.put(scatter<int>(idx_t, -7, [&](size_t n) { return sparse.indices[n]; }));
  void* bias_d = memory.put(scatter<float>(bias_t, NAN, [&](size_t n) { return c.score_bias ? sparse.score_bias[n] : 0.f; }));
  StridedTensor sink_t = make_tensor({hq}, {c.strided ? 2 : 1});
  DLTensor sink_view = sink_t.view(memory.put(scatter<float>(sink_t, NAN, [&](size_t n) {
    return c.sink_logits ? host.sink_logits[n] : 0.f;
  })), {kDLFloat, 32, 1}, where);
  void* out_d = memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison));

  const DLDataType dt = dl_dtype(c.dtype);
  SparseDecodeOptions options;
  options.local_window = c.local_window;
  options.kv_layout = c.kv_layout;
  options.gqa = c.gqa;
  options.sink_logits = c.sink_logits ? &sink_view : nullptr;
  DLTensor bias_view = bias_t.view(bias_d, {kDLFloat, 32, 1}, where);
  options.score_bias = c.score_bias ? &bias_view : nullptr;
  options.kv_quant = c.kv_quant;
  if (c.kv_quant != KvQuant::kNone) {
    options.k_scale = &scales.k;
    options.v_scale = &scales.v;
  }
  options.cpu_config = c.cpu_config;
  options.config = c.config;
  options.check_device_args = true;
  const DLTensor v_view = k_t.view(v_d, kv_dtype, where);
  bool reported = false;
  try {
    sparse_decode(q_t.view(q_d, dt, where), k_t.view(k_d, kv_dtype, where), c.shared_kv ? nullptr : &v_view,
                  bt_t.view(bt_d, {kDLInt, 32, 1}, where), sl_t.view(sl_d, {kDLInt, 32, 1}, where),
                  idx_t.view(idx_d, {kDLInt, 32, 1}, where), out_t.view(out_d, dt, where), nullptr, options);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kDeviceArgument || c.selection != SparseCase::Selection::kInvalid) throw;
    reported = true;
  }
  const std::vector<uint16_t> out_physical = memory.get<uint16_t>(out_d, out_t.physical_elements);
  CaseResult result = compare_to_reference(out_physical, out_t, out_shape, ref, c.dtype);
  if (c.selection == SparseCase::Selection::kInvalid && !reported) {
    result.passed = false;
    result.detail = "the invalid index was not reported";
  }
  return result;
}

}  // namespace swajit
