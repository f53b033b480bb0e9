#include "swajit/json_input.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "swajit/error.hpp"

namespace swajit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

[[noreturn]] void bad_input(const std::string& message) { throw Error(ErrorCode::kInvalidArgument, message); }

// The deepest [ / { nesting of `text`, brackets inside strings not counted; stops early past the limit.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxJsonDepth) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

const json* find_field(const json& object, const std::string& where, const char* name, bool has_fallback) {
  if (!object.is_object()) bad_input(where + " must be a JSON object (got " + object.type_name() + ")");
  const auto it = object.find(name);
  if (it != object.end()) return &*it;
  if (!has_fallback) bad_input(where + "." + name + " is missing");
  return nullptr;
}

[[noreturn]] void wrong_type(const std::string& where, const char* name, const std::string& expected, const json& got) {
  // got is at most kMaxJsonDepth deep (checked at parse time), so dumping it is safe; long values are cut.
  constexpr std::size_t kShownChars = 80;
  std::string shown = got.dump();
  if (shown.size() > kShownChars) shown = shown.substr(0, kShownChars) + "...";
  bad_input(where + "." + name + " must be " + expected + " (got " + got.type_name() + " " + shown + ")");
}

}  // namespace

json parse_json_text(std::string_view text, const std::string& what) {
  if (nesting_depth(text) > kMaxJsonDepth) {
    bad_input(what + " nests arrays / objects deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) bad_input(what + " is not valid JSON");
  return value;
}

json read_json_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) bad_input(what + " does not exist");
  if (!fs::is_regular_file(status)) bad_input(what + " is not a regular file");
  std::ifstream file(path, std::ios::binary);
  if (!file) bad_input(what + " cannot be read: " + std::strerror(errno));
  const std::string text{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  if (file.bad()) bad_input(what + " cannot be read");
  return parse_json_text(text, what);
}

void write_file_atomically(const std::string& path, std::string_view text) {
  if (path.empty()) bad_input("output file name is empty");
  std::error_code ec;
  if (fs::is_directory(path, ec)) bad_input("'" + path + "' is a directory, not a file name");
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) bad_input("cannot write '" + path + "': directory '" + dir.string() + "' does not exist");
  const std::string temp = (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(getpid()))).string();
  std::FILE* out = std::fopen(temp.c_str(), "wb");
  if (out == nullptr) bad_input("cannot write '" + path + "': " + std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), out) == text.size() && std::fflush(out) == 0 &&
                       fsync(fileno(out)) == 0;
  const int write_errno = errno;
  const bool closed = std::fclose(out) == 0;
  if (!written || !closed) {
    fs::remove(temp, ec);
    bad_input("cannot write '" + path + "': " + std::strerror(written ? errno : write_errno));
  }
  fs::rename(temp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    bad_input("cannot write '" + path + "': " + ec.message());
  }
}

std::int64_t json_integer(const json& object, const std::string& where, const char* name, std::int64_t min,
                          std::int64_t max, std::optional<std::int64_t> fallback) {
  const json* v = find_field(object, where, name, fallback.has_value());
  if (v == nullptr) return *fallback;
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v->is_number_integer()) wrong_type(where, name, range, *v);
  // nlohmann keeps non-negative numbers unsigned: compare those as unsigned so 2^64 - 1 is not read as -1.
  if (v->is_number_unsigned()) {
    const std::uint64_t u = v->get<std::uint64_t>();
    if (max < 0 || u > static_cast<std::uint64_t>(max) || (min > 0 && u < static_cast<std::uint64_t>(min)))
      wrong_type(where, name, range, *v);
    return static_cast<std::int64_t>(u);
  }
  const std::int64_t i = v->get<std::int64_t>();
  if (i < min || i > max) wrong_type(where, name, range, *v);
  return i;
}

std::string json_string(const json& object, const std::string& where, const char* name,
                        std::optional<std::string> fallback) {
  const json* v = find_field(object, where, name, fallback.has_value());
  if (v == nullptr) return *fallback;
  if (!v->is_string()) wrong_type(where, name, "a string", *v);
  return v->get<std::string>();
}

bool json_bool(const json& object, const std::string& where, const char* name, std::optional<bool> fallback) {
  const json* v = find_field(object, where, name, fallback.has_value());
  if (v == nullptr) return *fallback;
  if (!v->is_boolean()) wrong_type(where, name, "true or false", *v);
  return v->get<bool>();
}

}  // namespace swajit
