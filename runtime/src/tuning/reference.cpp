#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <limits>

namespace swajit {

double tolerance_for(DType dtype) { return dtype == DType::kBF16 ? 1e-2 : 2e-3; }

bool reference_visible(int p, int j, int local_window, int global_window, bool causal) {
  if (j < 0 || (causal && j > p)) return false;
  return local_window <= 0 || p - j < local_window || j < global_window;
}

namespace {

// out[d] = softmax-weighted sum of the visible keys' values for one query row; key(j) / value(j) point at head_dim
// floats. Nothing visible leaves zeros; a learned sink adds exp(sink - max) to the denominator only.
template <class Key, class Value>
void attend_row(const float* q, int kv_len, int p, const HostPrefill& mask, double scale, const float* sink, int D,
                Key key, Value value, std::vector<double>& scores, double* out) {
  scores.assign(kv_len > 0 ? kv_len : 0, -std::numeric_limits<double>::infinity());
  double max_score = -std::numeric_limits<double>::infinity();
  for (int j = 0; j < kv_len; ++j) {
    if (!reference_visible(p, j, mask.local_window, mask.global_window, mask.causal)) continue;
    const float* k = key(j);
    double dot = 0;
    for (int d = 0; d < D; ++d) dot += double(q[d]) * k[d];
    scores[j] = dot * scale;
    max_score = std::max(max_score, scores[j]);
  }
  if (max_score == -std::numeric_limits<double>::infinity()) return;  // nothing visible: zeros
  double sum = sink ? std::exp(double(*sink) - max_score) : 0.0;
  for (int j = 0; j < kv_len; ++j) {
    if (scores[j] == -std::numeric_limits<double>::infinity()) continue;
    const double w = std::exp(scores[j] - max_score);
    sum += w;
    const float* v = value(j);
    for (int d = 0; d < D; ++d) out[d] += w * v[d];
  }
  for (int d = 0; d < D; ++d) out[d] /= sum;
}

}  // namespace

std::vector<double> reference_paged_decode(const HostPagedDecode& pr) {
  const int D = pr.head_dim, group = pr.num_q_heads / pr.num_kv_heads;
  std::vector<double> out(size_t(pr.batch) * pr.q_seqlen * pr.num_q_heads * D, 0.0);
  const auto kv_index = [&](int page, int slot, int head) -> size_t {
    if (pr.layout == KvLayout::kNHD) return ((size_t(page) * pr.page_size + slot) * pr.num_kv_heads + head) * D;
    return ((size_t(page) * pr.num_kv_heads + head) * pr.page_size + slot) * D;
  };
  HostPrefill mask;
  mask.local_window = pr.local_window;
  mask.global_window = pr.global_window;
  std::vector<double> scores;
  for (int b = 0; b < pr.batch; ++b) {
    const int len = pr.seq_lens[b];
    const auto slot_of = [&](int j, int kvh) {
      return kv_index(pr.block_table[size_t(b) * pr.max_pages_per_seq + j / pr.page_size], j % pr.page_size, kvh);
    };
    for (int s = 0; s < pr.q_seqlen; ++s)
      for (int h = 0; h < pr.num_q_heads; ++h) {
        const int kvh = pr.gqa == GqaMapping::kGrouped ? h / group : h % pr.num_kv_heads;
        const size_t row = (size_t(b) * pr.q_seqlen + s) * pr.num_q_heads + h;
        attend_row(&pr.q[row * D], len, len - pr.q_seqlen + s, mask, pr.scale,
                   pr.sink_logits.empty() ? nullptr : &pr.sink_logits[h], D,
                   [&](int j) { return &pr.k[slot_of(j, kvh)]; }, [&](int j) { return &pr.v[slot_of(j, kvh)]; },
                   scores, &out[row * D]);
      }
  }
  return out;
}

std::vector<double> reference_sparse_decode(const HostSparseDecode& sp) {
  const HostPagedDecode& pr = sp.paged;
  const int D = pr.head_dim, Dv = sp.head_dim_v, group = pr.num_q_heads / pr.num_kv_heads;
  std::vector<double> out(size_t(pr.batch) * pr.q_seqlen * pr.num_q_heads * Dv, 0.0);
  const auto kv_index = [&](int page, int slot, int head) -> size_t {
    if (pr.layout == KvLayout::kNHD) return ((size_t(page) * pr.page_size + slot) * pr.num_kv_heads + head) * D;
    return ((size_t(page) * pr.num_kv_heads + head) * pr.page_size + slot) * D;
  };
  const std::vector<float>& v_cache = sp.shared_kv ? pr.k : pr.v;
  for (int b = 0; b < pr.batch; ++b)
    for (int s = 0; s < pr.q_seqlen; ++s) {
      const int len = pr.seq_lens[b], p = len - pr.q_seqlen + s;
      const size_t slots = (size_t(b) * pr.q_seqlen + s) * sp.topk;
      // The positions the row attends to, each with its bias: the selection outside the window, then the window.
      std::vector<std::pair<int, double>> seen;
      bool valid = true;
      for (int i = 0; i < sp.topk; ++i) {
        const int j = sp.indices[slots + i];
        if (j < -1 || j >= len) valid = false;
        const bool in_window = pr.local_window > 0 && p - j < pr.local_window;
        if (j >= 0 && j <= p && !in_window) seen.emplace_back(j, sp.score_bias.empty() ? 0.0 : sp.score_bias[slots + i]);
      }
      if (!valid) continue;  // zeros
      for (int j = std::max(0, pr.local_window > 0 ? p - pr.local_window + 1 : p + 1); j <= p; ++j) seen.emplace_back(j, 0.0);
      for (int h = 0; h < pr.num_q_heads; ++h) {
        const int kvh = pr.gqa == GqaMapping::kGrouped ? h / group : h % pr.num_kv_heads;
        const size_t row = (size_t(b) * pr.q_seqlen + s) * pr.num_q_heads + h;
        const float* q = &pr.q[row * D];
        const auto at = [&](int j) {
          return kv_index(pr.block_table[size_t(b) * pr.max_pages_per_seq + j / pr.page_size], j % pr.page_size, kvh);
        };
        std::vector<double> scores(seen.size());
        double max_score = -std::numeric_limits<double>::infinity();
        for (size_t n = 0; n < seen.size(); ++n) {
          const float* k = &pr.k[at(seen[n].first)];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[d]) * k[d];
          scores[n] = dot * pr.scale + seen[n].second;
          max_score = std::max(max_score, scores[n]);
        }
        if (seen.empty()) continue;  // nothing visible: zeros, with or without a sink
        double sum = pr.sink_logits.empty() ? 0.0 : std::exp(double(pr.sink_logits[h]) - max_score);
        double* o = &out[row * Dv];
        for (size_t n = 0; n < seen.size(); ++n) {
          const double w = std::exp(scores[n] - max_score);
          sum += w;
          const float* v = &v_cache[at(seen[n].first)];
          for (int d = 0; d < Dv; ++d) o[d] += w * v[d];
        }
        for (int d = 0; d < Dv; ++d) o[d] /= sum;
      }
    }
  return out;
}

std::vector<double> reference_prefill(const HostPrefill& pr) {
  const int D = pr.head_dim, group = pr.num_q_heads / pr.num_kv_heads;
  std::vector<double> out(pr.q.size(), 0.0);
  std::vector<double> scores;
  for (size_t b = 0; b + 1 < pr.cu_seqlens_q.size(); ++b) {
    const int q_begin = pr.cu_seqlens_q[b], q_len = pr.cu_seqlens_q[b + 1] - q_begin;
    const int k_begin = pr.cu_seqlens_k[b], kv_len = pr.cu_seqlens_k[b + 1] - k_begin;
    for (int i = 0; i < q_len; ++i)
      for (int h = 0; h < pr.num_q_heads; ++h) {
        const int kvh = pr.gqa == GqaMapping::kGrouped ? h / group : h % pr.num_kv_heads;
        const size_t row = size_t(q_begin + i) * pr.num_q_heads + h;
        const auto at = [&](const std::vector<float>& t, int j) { return &t[(size_t(k_begin + j) * pr.num_kv_heads + kvh) * D]; };
        attend_row(&pr.q[row * D], kv_len, kv_len - q_len + i, pr, pr.scale,
                   pr.sink_logits.empty() ? nullptr : &pr.sink_logits[h], D, [&](int j) { return at(pr.k, j); },
                   [&](int j) { return at(pr.v, j); }, scores, &out[row * D]);
      }
  }
  return out;
}

}  // namespace swajit
