// TuningStore's state and its with_db template (included at the end of tuning_store.hpp).
#pragma once
#include <map>
#include <memory>
#include <mutex>

namespace swajit {

struct TuningStore::State {
  std::mutex mutex;
  std::string path;                      // empty: TuningDb::default_path()
  bool tried = false;                    // an open was attempted (and its failure reported)
  std::unique_ptr<db::TuningDb> db;
  std::map<std::string, std::optional<nlohmann::json>> winners;  // memoized lookups of config JSON, misses included
};

template <class F>
bool TuningStore::with_db(F&& f) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  db::TuningDb* db = open_locked();
  if (!db) return false;
  f(*db);
  return true;
}

}  // namespace swajit
