// Tuning data shipped with swajit: one JSON export (`swajit db export`) per device SKU, committed under
// tuning_db/shipped/<sku slug>.json and installed with the library and the Python package. It is read-only and lies
// beneath the user's database: a winner is looked up there only when the user's database has none for the key.
// A SKU's file is parsed on its first lookup, once per process; no other file is read on the way.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "swajit/tuning_db.hpp"

namespace swajit::shipped {

// "NVIDIA H100 80GB HBM3 sm_90 x132" -> "nvidia-h100-80gb-hbm3-sm-90-x132.json": lower-case letters and digits, every
// other run of characters one '-'.
std::string file_name(const std::string& sku);

// Where the shipped files are: $SWAJIT_SHIPPED_DIR when set; else the first existing of <binary holding libswajit>/
// shipped (the Python package), <that>/../share/swajit/shipped (CMake install), the source tree's tuning_db/shipped.
// Empty when SWAJIT_SHIPPED is "0" or "off" (turned off) or none exists; `why` then says which.
std::optional<std::filesystem::path> directory(std::string* why = nullptr);

// The file shipped for `sku`, if this installation has one.
std::optional<std::filesystem::path> file_for(const std::string& sku);

// The shipped winners of `sku` (parsed once, then cached; thread-safe). A file that does not parse is reported once
// on stderr and treated as empty: shipped data never fails a call.
const std::vector<db::WinnerRecord>& winners(const std::string& sku);
std::optional<nlohmann::json> config(const std::string& sku, const std::string& spec_key, const std::string& bucket);

// A winner with where it came from: "user" (the user's database) or "shipped:<file name>".
struct SourcedWinner {
  db::WinnerRecord winner;
  std::string source;
};
// The user's rows, then every shipped row (of every shipped file) that no user row shadows: what a call would use.
std::vector<SourcedWinner> winners_beneath(const std::vector<db::WinnerRecord>& user_rows);

}  // namespace swajit::shipped
