// libFuzzer target: the JSON that comes from outside -- `swajit db import` files and `swajit tune --workload` files.
// Every input must end in a parsed document or a swajit::Error; anything else (a crash, an ASan report, another
// exception type escaping) is a finding. Built and run by tools/sanitize.sh (clang-19, -fsanitize=fuzzer,address).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "checked_input.hpp"
#include "swajit/error.hpp"
#include "swajit/json_input.hpp"
#include "swajit/tuning_db.hpp"

namespace {
// Imports accumulate in the in-memory database; a fresh one now and then keeps each run's memory bounded.
constexpr int kInputsPerDatabase = 1000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<swajit::db::TuningDb> db;
  static int inputs = 0;
  if (!db || ++inputs % kInputsPerDatabase == 0) db = std::make_unique<swajit::db::TuningDb>(":memory:");
  nlohmann::json document;
  try {
    document = swajit::parse_json_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz input");
  } catch (const swajit::Error&) {
    return 0;  // not JSON, or too deep: refused cleanly
  }
  try {
    db->import_json(document, "fuzz", swajit::db::WinnerPolicy::kKeepFaster);
  } catch (const swajit::Error&) {
  }
  try {
    swajit::cli::decode_shapes_from_json(document, "fuzz input");
  } catch (const swajit::Error&) {
  }
  return 0;
}
