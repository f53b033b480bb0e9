#include "decode_lengths.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "swajit/error.hpp"

namespace swajit::cli {
namespace {

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); }

int parse_length(const std::string& s, const std::string& where) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty() || v < 0 || v > (1LL << 30))
    bad(where + ": '" + s + "' is not a length in [0, 2^30]");
  return int(v);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

}  // namespace

LengthDistribution LengthDistribution::parse(const std::string& text) {
  const std::vector<std::string> parts = split(text, ':');
  LengthDistribution d;
  d.text = text;
  const std::string usage = "--distribution " + text + " (uniform | log-uniform:LO:HI | bimodal:SHORT:LONG:FRACTION)";
  if (parts.size() == 1 && parts[0] == "uniform") return d;
  if (parts.size() == 3 && parts[0] == "log-uniform") {
    d.kind = Kind::kLogUniform;
    d.low = parse_length(parts[1], usage);
    d.high = parse_length(parts[2], usage);
    if (d.low < 1 || d.high < d.low) bad(usage + ": needs 1 <= LO <= HI");
    return d;
  }
  if (parts.size() == 4 && parts[0] == "bimodal") {
    d.kind = Kind::kBimodal;
    d.low = parse_length(parts[1], usage);
    d.high = parse_length(parts[2], usage);
    try {
      d.fraction = std::stod(parts[3]);
    } catch (const std::exception&) {
      d.fraction = -1;
    }
    if (d.low < 1 || d.high < d.low || !(d.fraction >= 0 && d.fraction <= 1))
      bad(usage + ": needs 1 <= SHORT <= LONG and FRACTION in [0, 1]");
    return d;
  }
  bad(usage + ": unknown distribution");
}

std::vector<int> LengthDistribution::draw(int batch, int min_len, uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::vector<int> lengths(batch, high);
  const auto in = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  if (kind == Kind::kLogUniform) {
    std::uniform_real_distribution<double> log_length(std::log(double(low)), std::log(double(high)));
    for (int& len : lengths) len = std::clamp(int(std::lround(std::exp(log_length(rng)))), low, high);
  } else if (kind == Kind::kBimodal) {
    const int long_count = std::clamp(int(std::lround(fraction * batch)), 1, batch);
    for (int b = 0; b < batch; ++b) lengths[b] = b < long_count ? in(std::max(1, high / 2), high) : in(std::max(1, low / 2), low);
    std::shuffle(lengths.begin(), lengths.end(), rng);
  }
  for (int& len : lengths) len = std::max(len, min_len);
  return lengths;
}

std::vector<int> read_lengths(const std::string& list_or_file) {
  std::string text = list_or_file;
  if (list_or_file.find_first_not_of("0123456789, ") != std::string::npos) {  // not a list: a file
    std::ifstream file(list_or_file);
    if (!file) bad("--lengths " + list_or_file + ": neither a comma-separated list nor a readable file");
    std::stringstream all;
    all << file.rdbuf();
    text = all.str();
  }
  std::replace_if(text.begin(), text.end(), [](char c) { return c == ',' || c == '\n' || c == '\t' || c == '\r'; }, ' ');
  std::vector<int> lengths;
  std::stringstream in(text);
  for (std::string token; in >> token;) lengths.push_back(parse_length(token, "--lengths " + list_or_file));
  if (lengths.empty()) bad("--lengths " + list_or_file + ": no lengths");
  return lengths;
}

void write_lengths(const std::string& path, const std::vector<int>& lengths) {
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::error_code ignored;  // a folder that cannot be made shows as the open failing below
  if (!folder.empty()) std::filesystem::create_directories(folder, ignored);
  std::ofstream out(path);
  for (int len : lengths) out << len << "\n";
  if (!out) bad("cannot write the lengths file " + path);
}

std::string summarize_lengths(const std::vector<int>& lengths, int local_window, int q_seqlen) {
  std::vector<int> sorted = lengths;
  std::sort(sorted.begin(), sorted.end());
  const auto visible = [&](int len) { return local_window > 0 ? std::min(len, local_window + q_seqlen - 1) : len; };
  double total = 0, visible_total = 0;
  int visible_max = 0;
  for (int len : sorted) {
    total += len;
    visible_total += visible(len);
    visible_max = std::max(visible_max, visible(len));
  }
  const double n = double(sorted.size());
  char line[256];
  std::snprintf(line, sizeof line, "n %zu, min %d, median %d, mean %.0f, max %d; visible (window-clipped) mean %.0f, max %d",
                sorted.size(), sorted.front(), sorted[sorted.size() / 2], total / n, sorted.back(), visible_total / n,
                visible_max);
  return line;
}

}  // namespace swajit::cli
