#include "shipped_tuning.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include "shared_library.hpp"

namespace swajit::shipped {
namespace fs = std::filesystem;

std::string file_name(const std::string& sku) {
  std::string slug;
  for (unsigned char c : sku) {
    if (std::isalnum(c)) slug += char(std::tolower(c));
    else if (!slug.empty() && slug.back() != '-') slug += '-';
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug + ".json";
}

std::optional<fs::path> directory(std::string* why) {
  const auto say = [&](const std::string& text) {
    if (why) *why = text;
    return std::nullopt;
  };
  if (const char* on = std::getenv("SWAJIT_SHIPPED"); on && (std::string(on) == "0" || std::string(on) == "off"))
    return say("turned off by SWAJIT_SHIPPED=" + std::string(on));
  std::error_code ec;
  if (const char* given = std::getenv("SWAJIT_SHIPPED_DIR"); given && *given) {
    if (fs::is_directory(given, ec)) return fs::path(given);
    return say(std::string("SWAJIT_SHIPPED_DIR=") + given + " is not a directory");
  }
  std::vector<fs::path> candidates;
  if (const fs::path here = dl::directory_of(reinterpret_cast<const void*>(&file_name)); !here.empty()) {
    candidates.push_back(here / "shipped");
    candidates.push_back(here.parent_path() / "share" / "swajit" / "shipped");
  }
  candidates.push_back(SWAJIT_SHIPPED_SOURCE_DIR);  // a build tree: the tools and tests of this checkout
  for (const auto& c : candidates)
    if (fs::is_directory(c, ec)) return c;
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
  return say("no shipped tuning data found (looked in " + tried + ")");
}

std::optional<fs::path> file_for(const std::string& sku) {
  const auto dir = directory();
  if (!dir) return std::nullopt;
  std::error_code ec;
  fs::path file = *dir / file_name(sku);
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  return file;
}

namespace {

// Every winner of one shipped file (all its SKUs); a file that cannot be read or parsed yields none.
std::vector<db::WinnerRecord> read_file(const fs::path& file) {
  std::vector<db::WinnerRecord> rows;
  try {
    std::ifstream in(file);
    const nlohmann::json doc = nlohmann::json::parse(in);
    if (doc.value("format", "") != "swajit-tuning-db")
      throw std::runtime_error("not a swajit-tuning-db export (no \"format\": \"swajit-tuning-db\")");
    for (const auto& w : doc.at("winners")) {
      db::WinnerRecord r;
      r.device_sku = w.at("device_sku").get<std::string>();
      r.spec_key = w.at("spec_key").get<std::string>();
      r.bucket = w.at("bucket").get<std::string>();
      r.config = w.at("config");
      if (!r.config.is_object()) throw std::runtime_error("a winner's \"config\" is not an object");
      r.time_us = w.value("time_us", 0.0);
      r.samples = w.value("samples", std::int64_t(1));
      r.created_at = w.value("created_at", "");
      r.tool_version = w.value("tool_version", "");
      r.origin = w.value("origin", "");
      rows.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swajit: ignoring shipped tuning data %s: %s\n", file.string().c_str(), e.what());
    rows.clear();
  }
  return rows;
}

struct Cache {
  std::mutex mutex;
  std::map<std::string, std::vector<db::WinnerRecord>> by_file;  // path -> that SKU's rows (missing file: none)
};
Cache& cache() {
  static Cache c;
  return c;
}

}  // namespace

const std::vector<db::WinnerRecord>& winners(const std::string& sku) {
  static const std::vector<db::WinnerRecord> kNone;
  const auto file = file_for(sku);
  if (!file) return kNone;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto [it, fresh] = c.by_file.try_emplace(file->string());
  if (fresh) {
    for (auto& row : read_file(*file))
      if (row.device_sku == sku) it->second.push_back(std::move(row));
  }
  return it->second;  // map nodes never move, and entries are never erased
}

std::optional<nlohmann::json> config(const std::string& sku, const std::string& spec_key, const std::string& bucket) {
  for (const auto& w : winners(sku))
    if (w.spec_key == spec_key && w.bucket == bucket) return w.config;
  return std::nullopt;
}

std::vector<SourcedWinner> winners_beneath(const std::vector<db::WinnerRecord>& user_rows) {
  std::vector<SourcedWinner> listed;
  std::set<std::string> taken;
  const auto key = [](const db::WinnerRecord& w) { return w.device_sku + "|" + w.spec_key + "|" + w.bucket; };
  for (const auto& w : user_rows) {
    listed.push_back({w, "user"});
    taken.insert(key(w));
  }
  const auto dir = directory();
  if (!dir) return listed;
  std::error_code ec;
  std::set<fs::path> files;  // sorted: a stable listing
  for (const auto& entry : fs::directory_iterator(*dir, ec))
    if (entry.path().extension() == ".json") files.insert(entry.path());
  for (const auto& file : files)
    for (auto& w : read_file(file))
      if (!taken.count(key(w))) listed.push_back({std::move(w), "shipped:" + file.filename().string()});
  return listed;
}

}  // namespace swajit::shipped
