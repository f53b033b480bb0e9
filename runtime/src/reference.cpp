#include "reference.hpp"

#include <cmath>
#include <limits>

namespace swajit {

bool reference_visible(int p, int j, int local_window, int global_window) {
  if (j < 0 || j > p) return false;
  return local_window <= 0 || p - j < local_window || j < global_window;
}

std::vector<double> reference_paged_decode(const HostPagedDecode& pr) {
  const int D = pr.head_dim, group = pr.num_q_heads / pr.num_kv_heads;
  std::vector<double> out(size_t(pr.batch) * pr.q_seqlen * pr.num_q_heads * D, 0.0);
  const auto kv_index = [&](int page, int slot, int head, int d) -> size_t {
    if (pr.layout == KvLayout::kNHD) return ((size_t(page) * pr.page_size + slot) * pr.num_kv_heads + head) * D + d;
    return ((size_t(page) * pr.num_kv_heads + head) * pr.page_size + slot) * D + d;
  };
  std::vector<double> scores;
  for (int b = 0; b < pr.batch; ++b) {
    const int len = pr.seq_lens[b];
    for (int s = 0; s < pr.q_seqlen; ++s) {
      const int p = len - pr.q_seqlen + s;
      for (int h = 0; h < pr.num_q_heads; ++h) {
        const int kvh = pr.gqa == GqaMapping::kGrouped ? h / group : h % pr.num_kv_heads;
        const float* q = &pr.q[((size_t(b) * pr.q_seqlen + s) * pr.num_q_heads + h) * D];
        double* o = &out[((size_t(b) * pr.q_seqlen + s) * pr.num_q_heads + h) * D];
        scores.assign(len > 0 ? len : 0, -std::numeric_limits<double>::infinity());
        double max_score = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < len; ++j) {
          if (!reference_visible(p, j, pr.local_window, pr.global_window)) continue;
          const int page = pr.block_table[size_t(b) * pr.max_pages_per_seq + j / pr.page_size];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += double(q[d]) * pr.k[kv_index(page, j % pr.page_size, kvh, d)];
          scores[j] = dot * pr.scale;
          max_score = std::max(max_score, scores[j]);
        }
        if (max_score == -std::numeric_limits<double>::infinity()) continue;  // nothing visible: zeros
        // A learned sink adds exp(sink - max) to the denominator and nothing to the numerator.
        double sum = pr.sink_logits.empty() ? 0.0 : std::exp(double(pr.sink_logits[h]) - max_score);
        for (int j = 0; j < len; ++j) {
          if (scores[j] == -std::numeric_limits<double>::infinity()) continue;
          const double w = std::exp(scores[j] - max_score);
          sum += w;
          const int page = pr.block_table[size_t(b) * pr.max_pages_per_seq + j / pr.page_size];
          for (int d = 0; d < D; ++d) o[d] += w * pr.v[kv_index(page, j % pr.page_size, kvh, d)];
        }
        for (int d = 0; d < D; ++d) o[d] /= sum;
      }
    }
  }
  return out;
}

}  // namespace swajit
