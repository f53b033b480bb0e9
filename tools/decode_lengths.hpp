// Sequence lengths of a ragged decode batch for `swajit bench decode`: a list or file (--lengths), or a named
// distribution (--distribution) drawn with a fixed seed, so a peer script can be given the very same batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace swajit::cli {

// "uniform" (every sequence at one --kv-len), "log-uniform:LO:HI" (log of the length uniform in [log LO, log HI]),
// "bimodal:SHORT:LONG:FRACTION" (round(FRACTION x batch), at least 1, sequences in [LONG/2, LONG], the others in
// [SHORT/2, SHORT], in shuffled order). Throws swajit::Error (kInvalidArgument) naming the bad part.
struct LengthDistribution {
  enum class Kind { kUniform, kLogUniform, kBimodal } kind = Kind::kUniform;
  int low = 0, high = 0;   // log-uniform bounds, or bimodal short / long lengths
  double fraction = 0;     // bimodal: share of long sequences
  std::string text;        // as given
  static LengthDistribution parse(const std::string& text);
  // `batch` lengths, each at least `min_len` (q_seqlen: a shorter sequence is invalid input).
  std::vector<int> draw(int batch, int min_len, uint64_t seed) const;
};

// "a,b,c" or the name of a file of whitespace- or comma-separated lengths.
std::vector<int> read_lengths(const std::string& list_or_file);
void write_lengths(const std::string& path, const std::vector<int>& lengths);

// "n 64, min 1, median 900, mean 5123, max 131072; visible (window-clipped) mean 2100, max 4096"
std::string summarize_lengths(const std::vector<int>& lengths, int local_window, int q_seqlen);

}  // namespace swajit::cli
