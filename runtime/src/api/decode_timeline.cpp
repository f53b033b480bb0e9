#include "decode_timeline.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_driver.hpp"
#include "paged_call_params.h"
#include "paged_decode_params.h"
#include "swajit/generator.hpp"

namespace swajit {
namespace {

using Word = unsigned long long;
constexpr size_t kRingBytes = size_t(256) << 20;  // many graph replicas of the largest grids (a few hundred KB a call)
constexpr size_t kKeptLaunches = 1024;

struct RecordedLaunch {
  DecodeTimelineLaunch launch;
  size_t offset = 0;  // words into the ring
  size_t words() const { return size_t(launch.main_blocks) * kTimelineWords + size_t(launch.merge_blocks) * kTimelineMergeWords; }
};

struct Ring {
  std::mutex mutex;
  CUdeviceptr base = 0;
  size_t next = 0;  // words
  std::vector<RecordedLaunch> launches;  // the last kKeptLaunches
  size_t recorded = 0;                   // calls recorded in all
};
Ring& ring() {
  static Ring r;
  return r;
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double max_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

std::vector<Word> read_records(const Ring& r, const RecordedLaunch& l) {
  std::vector<Word> words(l.words());
  cuda::check(cuda::driver().cuMemcpyDtoH(words.data(), r.base + l.offset * sizeof(Word), words.size() * sizeof(Word)),
              "cuMemcpyDtoH(decode timeline)");
  return words;
}

// Microseconds after `t0` of word `word` of every record (`stride` words apart) that has it (0: never passed).
std::vector<double> point_us(const std::vector<Word>& words, size_t first, int records, int stride, int word, Word t0) {
  std::vector<double> us;
  for (int i = 0; i < records; ++i) {
    const Word v = words[first + size_t(i) * stride + word];
    if (v != 0) us.push_back((double(v) - double(t0)) / 1e3);
  }
  return us;
}

}  // namespace

bool decode_timeline_enabled() {
  static const bool enabled = decode_timeline_requested();
  return enabled;
}

unsigned long long* decode_timeline_records(const DecodeTimelineLaunch& launch) {
  Ring& r = ring();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.base == 0) cuda::check(cuda::driver().cuMemAlloc(&r.base, kRingBytes), "cuMemAlloc(decode timeline)");
  RecordedLaunch l{launch, 0};
  if ((r.next + l.words()) * sizeof(Word) > kRingBytes) r.next = 0;
  l.offset = r.next;
  r.next += l.words();
  r.launches.push_back(l);
  ++r.recorded;
  if (r.launches.size() > kKeptLaunches) r.launches.erase(r.launches.begin());
  return reinterpret_cast<unsigned long long*>(r.base) + l.offset;
}

size_t decode_timeline_calls() {
  Ring& r = ring();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.recorded;
}

void print_decode_timeline(size_t call, FILE* out) {
  Ring& r = ring();
  std::lock_guard<std::mutex> lock(r.mutex);
  const size_t first_kept = r.recorded - r.launches.size();
  if (call < first_kept || call >= r.recorded) return;
  const size_t index = call - first_kept;
  const RecordedLaunch& l = r.launches[index];
  const DecodeTimelineLaunch& a = l.launch;
  const std::vector<Word> words = read_records(r, l);
  Word t0 = ~Word(0);
  for (int b = 0; b < a.main_blocks; ++b) t0 = std::min(t0, words[size_t(b) * kTimelineWords + kTimelineEntry]);
  std::fprintf(out, "timeline: %s, %d main blocks x %d threads, %d registers, %d B shared, %d blocks/SM by occupancy, "
               "slots %d, pieces %d; %d merge blocks; us after the first block's entry, median / max over blocks:\n",
               a.config.c_str(), a.main_blocks, a.threads, a.registers, a.shared_bytes, a.blocks_per_sm, a.slots,
               a.sequence_pieces, a.merge_blocks);
  const char* names[] = {"entry", "griddepcontrol.wait done", "seq_lens read (schedule found)", "first item found",
                         "its Q copies issued", "first copies issued (block_table read)", "first K/V tile landed",
                         "first item's loop done", "first item's epilogue done", "block done (last item)"};
  for (int point = kTimelineEntry; point <= kTimelineBlockDone; ++point) {
    const std::vector<double> us = point_us(words, 0, a.main_blocks, kTimelineWords, point, t0);
    std::fprintf(out, "timeline | %-40s | %7.2f | %7.2f | %d blocks\n", names[point], median_of(us), max_of(us), int(us.size()));
  }
  const size_t merge_first = size_t(a.main_blocks) * kTimelineWords;
  const char* merge_names[] = {"merge entry", "merge griddepcontrol.wait done", "merge record found", "merge done"};
  for (int point = kTimelineMergeEntry; point <= kTimelineMergeDone && a.merge_blocks > 0; ++point) {
    const std::vector<double> us = point_us(words, merge_first, a.merge_blocks, kTimelineMergeWords, point, t0);
    std::fprintf(out, "timeline | %-40s | %7.2f | %7.2f | %d blocks\n", merge_names[point], median_of(us), max_of(us), int(us.size()));
  }
  // The call before: when it started and when its grids ended, on the same clock (the period of the chain).
  if (index > 0) {
    const RecordedLaunch& p = r.launches[index - 1];
    const std::vector<Word> before = read_records(r, p);
    const std::vector<double> entry = point_us(before, 0, p.launch.main_blocks, kTimelineWords, kTimelineEntry, t0);
    const std::vector<double> done = point_us(before, 0, p.launch.main_blocks, kTimelineWords, kTimelineBlockDone, t0);
    const std::vector<double> merged = point_us(before, size_t(p.launch.main_blocks) * kTimelineWords,
                                                p.launch.merge_blocks, kTimelineMergeWords, kTimelineMergeDone, t0);
    std::fprintf(out, "timeline: the call before: first entry %.2f, last main block done %.2f, last merge done %.2f\n",
                 entry.empty() ? 0 : *std::min_element(entry.begin(), entry.end()), max_of(done), max_of(merged));
  }
  // Where the blocks sat and what they did.
  std::map<Word, int> per_sm;
  std::vector<double> tiles;
  int busy = 0, most_items = 0, items = 0, most_pieces = 0;
  for (int b = 0; b < a.main_blocks; ++b) {
    const Word* w = &words[size_t(b) * kTimelineWords];
    ++per_sm[w[kTimelineSm]];
    if (w[kTimelineItems] == 0) continue;
    ++busy, items += int(w[kTimelineItems]);
    most_items = std::max(most_items, int(w[kTimelineItems]));
    most_pieces = std::max(most_pieces, int(w[kTimelinePieces]));
    tiles.push_back(double(w[kTimelineTiles]));
  }
  const auto print_spread = [&](const char* grid, const std::map<Word, int>& blocks_on) {
    std::map<int, int> sms_with;  // blocks on an SM -> SMs
    for (const auto& [sm, blocks] : blocks_on) ++sms_with[blocks];
    std::fprintf(out, "timeline: %s blocks on %d SMs (blocks an SM: SMs)", grid, int(blocks_on.size()));
    for (const auto& [blocks, sms] : sms_with) std::fprintf(out, " %d:%d", blocks, sms);
  };
  std::map<Word, int> merge_per_sm;
  for (int m = 0; m < a.merge_blocks; ++m) ++merge_per_sm[words[merge_first + size_t(m) * kTimelineMergeWords + kTimelineMergeSm]];
  if (a.merge_blocks > 0) print_spread("merge", merge_per_sm), std::fprintf(out, "\n");
  print_spread("main", per_sm);
  std::fprintf(out, "; %d blocks with work, items a block max %d mean %.2f, tiles a block median %.0f max %.0f min %.0f, "
               "most pieces of a cut sequence %d\n", busy, most_items, busy ? double(items) / busy : 0.0,
               median_of(tiles), max_of(tiles), tiles.empty() ? 0.0 : *std::min_element(tiles.begin(), tiles.end()),
               most_pieces);
}

}  // namespace swajit
