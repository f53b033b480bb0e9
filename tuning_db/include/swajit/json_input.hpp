// JSON that comes from outside (import files, workload files): read, parsed and checked field by field, so a hostile
// file gets a kInvalidArgument naming the file and field, never a crash, an uncaught nlohmann exception or a value
// that silently wraps when narrowed.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace swajit {

// Deeper nesting is refused before the parser runs: no valid swajit file nests more than a few levels, and
// nlohmann's recursive dump and comparison would overflow the stack on a hostile 100000-level document.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; `what` names the source in errors (e.g. "workload file 'a.json'").
nlohmann::json parse_json_text(std::string_view text, const std::string& what);
// Reads the regular file `path` (a directory, a missing or unreadable file throws kInvalidArgument naming it) and
// parses it as parse_json_text does.
nlohmann::json read_json_file(const std::string& path, const std::string& what);
// Writes `text` to `path` through a temporary file in the same directory renamed over it, so `path` is either
// untouched or complete; any failure (missing directory, a directory at `path`, a full disk) throws kInvalidArgument
// naming `path`, and no temporary file is left behind.
void write_file_atomically(const std::string& path, std::string_view text);

// Typed fields of a JSON object; `where` names the object in errors ("a.json: shapes[3]"). Absent fields return
// `fallback`, or throw "is missing" when there is none. Integers are checked against [min, max] in 64 bits before the
// caller narrows them.
std::int64_t json_integer(const nlohmann::json& object, const std::string& where, const char* name, std::int64_t min,
                          std::int64_t max, std::optional<std::int64_t> fallback = std::nullopt);
std::string json_string(const nlohmann::json& object, const std::string& where, const char* name,
                        std::optional<std::string> fallback = std::nullopt);
bool json_bool(const nlohmann::json& object, const std::string& where, const char* name,
               std::optional<bool> fallback = std::nullopt);

}  // namespace swajit
