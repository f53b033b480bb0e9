// Tests for the SQLite tuning database: schema, records, policies, import/export, recovery, concurrency.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sha256.hpp"
#include "swajit/error.hpp"
#include "swajit/json_input.hpp"
#include "swajit/tuning_db.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using swajit::Error;
using swajit::ErrorCode;
using namespace swajit::db;

namespace {

constexpr int kWritesPerWriter = 200;  // per process / thread in the concurrency tests
constexpr int kImportBatch = 20;       // winners per import_json call in the thread test

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto salt = std::random_device{}();
    dir_ = fs::temp_directory_path() /
           ("swajit_tdb_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(salt));
    fs::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  const fs::path& dir() const { return dir_; }

  // The "<name>.corrupt-<time>" files next to `name` (not their -wal / -shm companions).
  std::vector<fs::path> moved_aside(const std::string& name) const {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      const std::string f = entry.path().filename().string();
      if (f.starts_with(name + ".corrupt-") && !f.ends_with("-wal") && !f.ends_with("-shm"))
        out.push_back(entry.path());
    }
    return out;
  }

 private:
  fs::path dir_;
};

// Direct SQLite access, to build files that TuningDb would never write.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
  const std::string error = message != nullptr ? message : "";
  sqlite3_free(message);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, error);
}

std::string raw_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_random_bytes(const std::string& path, std::size_t count) {
  std::mt19937 rng(1234);
  std::string bytes(count, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  std::ofstream(path, std::ios::binary) << bytes;
}

// Runs f and returns the message of the swajit::Error it throws, checking its code.
template <class F>
std::string expect_error(ErrorCode code, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK(e.code() == code);
    return e.what();
  }
  FAIL_CHECK("expected a swajit::Error");
  return "";
}

DeviceRecord make_device(const std::string& sku) {
  DeviceRecord d;
  d.sku = sku;
  d.name = "NVIDIA H100 80GB HBM3";
  d.backend = "cuda";
  d.cc_major = 9;
  d.cc_minor = 0;
  d.sm_count = 132;
  d.memory_bytes = 85'520'809'984;
  d.driver_version = 12040;
  d.compiler_version = 12040;
  d.extra = {{"clock_mhz", 1980}, {"ecc", true}};
  return d;
}

WinnerRecord make_winner(const std::string& sku, const std::string& spec, const std::string& bucket, double time_us) {
  WinnerRecord w;
  w.device_sku = sku;
  w.spec_key = spec;
  w.bucket = bucket;
  w.config = {{"block_n", 64}, {"warps", 4}, {"stages", 3}, {"splits", 2}};
  w.time_us = time_us;
  w.samples = 50;
  w.created_at = "2024-05-01T12:00:00Z";
  w.tool_version = "0.1.0";
  w.origin = "tuned on test host";
  return w;
}

BinaryRecord make_binary(const std::string& hash, std::int64_t compiler, std::int64_t driver) {
  BinaryRecord b;
  b.hash = hash;
  b.arch = "sm_90a";
  b.compiler_version = compiler;
  b.driver_version = driver;
  b.blob = {0x7f, 'E', 'L', 'F', 0, 1, 2, 0xff};
  return b;
}

struct EnvGuard {  // restores one environment variable
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("tuning_db: a new database has the latest schema version, WAL mode and our application id") {
  TempDir tmp;
  const std::string path = tmp.file("nested/dir/tuning.db");
  {
    TuningDb db(path);
    CHECK(TuningDb::latest_schema_version() == 2);
    CHECK(db.schema_version() == TuningDb::latest_schema_version());
    CHECK(db.path() == path);
    CHECK(raw_text(path, "PRAGMA journal_mode") == "wal");
    CHECK(raw_text(path, "PRAGMA user_version") == std::to_string(TuningDb::latest_schema_version()));
    CHECK(raw_text(path, "PRAGMA application_id") != "0");
  }
  TuningDb again(path);  // reopening an existing database keeps it
  CHECK(again.schema_version() == TuningDb::latest_schema_version());
  CHECK(tmp.moved_aside("tuning.db").empty());
  CHECK(expect_error(ErrorCode::kInvalidArgument, [] { TuningDb empty(""); }).find("empty") != std::string::npos);
}

TEST_CASE("tuning_db: default_path follows SWAJIT_DB, then XDG_CACHE_HOME, then HOME") {
  EnvGuard g1("SWAJIT_DB"), g2("XDG_CACHE_HOME"), g3("HOME");
  setenv("SWAJIT_DB", "/tmp/x/explicit.db", 1);
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  CHECK(TuningDb::default_path() == "/tmp/x/explicit.db");
  unsetenv("SWAJIT_DB");
  CHECK(TuningDb::default_path() == "/xdg/swajit/tuning.db");
  setenv("XDG_CACHE_HOME", "relative/cache", 1);  // the XDG spec says to ignore relative paths
  CHECK(TuningDb::default_path() == "/home/u/.cache/swajit/tuning.db");
  unsetenv("XDG_CACHE_HOME");
  CHECK(TuningDb::default_path() == "/home/u/.cache/swajit/tuning.db");
}

TEST_CASE("tuning_db: every record type round-trips") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));

  SUBCASE("devices") {
    const DeviceRecord d = make_device("h100");
    db.upsert_device(d);
    REQUIRE(db.get_device("h100").has_value());
    CHECK(*db.get_device("h100") == d);
    DeviceRecord changed = d;
    changed.driver_version = 12050;
    changed.extra = json::object();
    db.upsert_device(changed);
    CHECK(*db.get_device("h100") == changed);
    db.upsert_device(make_device("a100"));
    const auto all = db.list_devices();
    REQUIRE(all.size() == 2);
    CHECK(all[0].sku == "a100");  // ordered by sku
    CHECK(all[1] == changed);
    CHECK_FALSE(db.get_device("nope").has_value());
    DeviceRecord bad = d;
    bad.backend = "rocm";
    CHECK(expect_error(ErrorCode::kInvalidArgument, [&] { db.upsert_device(bad); }).find("backend") !=
          std::string::npos);
  }

  SUBCASE("winners") {
    db.upsert_device(make_device("h100"));
    db.upsert_device(make_device("a100"));
    const WinnerRecord w = make_winner("h100", "decode_hd128_ps16", "b<=8", 12.5);
    CHECK(db.put_winner(w));
    REQUIRE(db.get_winner("h100", "decode_hd128_ps16", "b<=8").has_value());
    CHECK(*db.get_winner("h100", "decode_hd128_ps16", "b<=8") == w);
    CHECK_FALSE(db.get_winner("h100", "decode_hd128_ps16", "b<=16").has_value());

    WinnerRecord undated = make_winner("a100", "decode_hd64_ps16", "", 3.0);
    undated.created_at.clear();
    db.put_winner(undated);
    const auto stored = db.get_winner("a100", "decode_hd64_ps16", "");
    REQUIRE(stored.has_value());
    CHECK(stored->created_at.size() == std::string("2024-05-01T12:00:00Z").size());
    CHECK(stored->created_at.back() == 'Z');

    CHECK(db.list_winners().size() == 2);
    CHECK(db.list_winners("h100").size() == 1);
    CHECK(db.list_winners("none").empty());

    // Winners belong to a known device (foreign key), and invalid values are rejected before SQLite sees them.
    CHECK(expect_error(ErrorCode::kDatabaseError, [&] {
            db.put_winner(make_winner("ghost", "s", "b", 1.0));
          }).find("FOREIGN KEY") != std::string::npos);
    WinnerRecord bad = w;
    bad.time_us = -1.0;
    CHECK(expect_error(ErrorCode::kInvalidArgument, [&] { db.put_winner(bad); }).find("time_us") != std::string::npos);
    bad = w;
    bad.samples = 0;
    CHECK(expect_error(ErrorCode::kInvalidArgument, [&] { db.put_winner(bad); }).find("samples") != std::string::npos);
    bad = w;
    bad.config = json::array({1, 2});
    CHECK(expect_error(ErrorCode::kInvalidArgument, [&] { db.put_winner(bad); }).find("config") != std::string::npos);
    CHECK(db.get_winner("h100", "decode_hd128_ps16", "b<=8")->time_us == 12.5);
  }

  SUBCASE("trials") {
    db.upsert_device(make_device("h100"));
    TrialRecord ok;
    ok.device_sku = "h100";
    ok.spec_key = "s";
    ok.bucket = "b";
    ok.config = {{"block_n", 32}};
    ok.time_us = 7.25;
    ok.status = TrialStatus::kOk;
    ok.created_at = "2024-05-01T12:00:00Z";
    TrialRecord failed = ok;
    failed.time_us.reset();
    failed.status = TrialStatus::kCompileFailed;
    failed.detail = "error: too many registers";
    ok.id = db.add_trial(ok);
    failed.id = db.add_trial(failed);
    CHECK(failed.id > ok.id);
    const auto trials = db.list_trials("h100", "s", "b");
    REQUIRE(trials.size() == 2);
    CHECK(trials[0] == ok);
    CHECK(trials[1] == failed);
    CHECK_FALSE(trials[1].time_us.has_value());
    CHECK(db.count_trials() == 2);
    CHECK(db.count_trials({.device_sku = "h100"}) == 2);
    CHECK(db.count_trials({.status = TrialStatus::kCompileFailed}) == 1);
    CHECK(db.count_trials({.device_sku = "h100", .spec_key = "s", .bucket = "other"}) == 0);
    CHECK(db.list_trials("h100", "s", "other").empty());
    CHECK(std::string(trial_status_name(TrialStatus::kRejectedResources)) == "rejected_resources");
    CHECK(parse_trial_status("rejected_wrong") == TrialStatus::kRejectedWrong);
    expect_error(ErrorCode::kInvalidArgument, [] { parse_trial_status("great"); });
  }

  SUBCASE("binaries") {
    BinaryRecord b = make_binary("abc123", 12040, 12040);
    b.created_at = "2024-05-01T12:00:00Z";
    db.put_binary(b);
    const auto got = db.get_binary("abc123");
    REQUIRE(got.has_value());
    b.size = static_cast<std::int64_t>(b.blob.size());  // filled in by put_binary, as is the checksum
    b.sha256 = sha256_hex(b.blob);
    CHECK(*got == b);
    BinaryRecord empty = make_binary("empty", 1, 1);
    empty.blob.clear();
    db.put_binary(empty);
    REQUIRE(db.get_binary("empty").has_value());
    CHECK(db.get_binary("empty")->blob.empty());
    CHECK(db.get_binary("empty")->size == 0);
    CHECK_FALSE(db.get_binary("missing").has_value());
  }
}

TEST_CASE("tuning_db: kKeepFaster keeps the faster winner, kReplace always stores") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  db.upsert_device(make_device("h100"));
  const auto time_of = [&] { return db.get_winner("h100", "s", "b")->time_us; };
  CHECK(db.put_winner(make_winner("h100", "s", "b", 10.0)));
  CHECK_FALSE(db.put_winner(make_winner("h100", "s", "b", 12.0)));  // slower: kept the old one
  CHECK(time_of() == 10.0);
  CHECK_FALSE(db.put_winner(make_winner("h100", "s", "b", 10.0)));  // a tie keeps the existing row
  CHECK(db.put_winner(make_winner("h100", "s", "b", 8.0)));
  CHECK(time_of() == 8.0);
  CHECK(db.put_winner(make_winner("h100", "s", "b", 9.0), WinnerPolicy::kReplace));
  CHECK(time_of() == 9.0);
  CHECK(db.list_winners().size() == 1);
}

TEST_CASE("tuning_db: export then import into a fresh database gives identical winners") {
  TempDir tmp;
  TuningDb source(tmp.file("a.db"));
  source.upsert_device(make_device("h100"));
  source.upsert_device(make_device("a100"));
  for (int i = 0; i < 5; ++i) {
    source.put_winner(make_winner(i % 2 ? "h100" : "a100", "spec" + std::to_string(i), "b", 1.5 + i / 3.0));
  }
  // Through text, as a file would travel.
  const json exported = json::parse(source.export_json().dump(2));
  CHECK(exported["format"] == "swajit-tuning-db");
  CHECK(exported["version"] == 1);
  CHECK(exported["devices"].size() == 2);
  CHECK(exported["winners"].size() == 5);

  TuningDb copy(tmp.file("b.db"));
  const ImportStats stats = copy.import_json(exported, "");
  CHECK(stats.devices == 2);
  CHECK(stats.winners_added == 5);
  CHECK(stats.winners_kept_existing == 0);
  CHECK(copy.list_winners() == source.list_winners());
  CHECK(copy.list_devices() == source.list_devices());

  // Importing the same file again changes nothing; a non-empty origin replaces the file's.
  const ImportStats again = copy.import_json(exported, "from a.json");
  CHECK(again.devices == 0);
  CHECK(again.winners_added == 0);
  CHECK(again.winners_kept_existing == 5);
  TuningDb third(tmp.file("c.db"));
  third.import_json(exported, "from a.json");
  for (const WinnerRecord& w : third.list_winners()) CHECK(w.origin == "from a.json");

  // Exporting one device carries only its winners.
  const json one = source.export_json("h100");
  CHECK(one["devices"].size() == 1);
  CHECK(one["winners"].size() == 2);
  for (const json& w : one["winners"]) CHECK(w["device_sku"] == "h100");
}

TEST_CASE("tuning_db: a bad import file throws kInvalidArgument and writes nothing") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  db.upsert_device(make_device("h100"));
  db.put_winner(make_winner("h100", "existing", "b", 5.0));

  // A valid file: one new device and two winners; each subcase breaks one thing.
  TuningDb other(tmp.file("other.db"));
  other.upsert_device(make_device("l4"));
  other.put_winner(make_winner("l4", "new0", "b", 1.0));
  other.put_winner(make_winner("l4", "new1", "b", 2.0));
  json doc = other.export_json();
  REQUIRE(doc["winners"].size() == 2);
  std::string expected;  // text the message must contain

  SUBCASE("wrong format tag") {
    doc["format"] = "something-else";
    expected = "format";
  }
  SUBCASE("unknown version") {
    doc["version"] = 99;
    expected = "version";
  }
  SUBCASE("negative time") {
    doc["winners"][1]["time_us"] = -1.0;
    expected = "winners[1].time_us";
  }
  SUBCASE("time is not a number") {
    doc["winners"][1]["time_us"] = "fast";
    expected = "winners[1].time_us";
  }
  SUBCASE("missing field") {
    doc["winners"][1].erase("samples");
    expected = "winners[1].samples is missing";
  }
  SUBCASE("zero samples") {
    doc["winners"][1]["samples"] = 0;
    expected = "winners[1].samples";
  }
  SUBCASE("config not an object") {
    doc["winners"][1]["config"] = json::array({64, 4});
    expected = "winners[1].config";
  }
  SUBCASE("unknown device") {
    doc["winners"][1]["device_sku"] = "ghost";
    expected = "winners[1].device_sku";
  }
  SUBCASE("bad device field") {
    doc["devices"][0]["cc_major"] = "nine";
    expected = "devices[0].cc_major";
  }
  SUBCASE("winners not an array") {
    doc["winners"] = json::object();
    expected = "winners";
  }

  const DbStats before = db.stats();
  const std::string message =
      expect_error(ErrorCode::kInvalidArgument, [&] { db.import_json(doc, "bad.json", WinnerPolicy::kReplace); });
  CHECK_MESSAGE(message.find(expected) != std::string::npos, message);
  const DbStats after = db.stats();
  CHECK(after.devices == before.devices);
  CHECK(after.winners == before.winners);
  CHECK_FALSE(db.get_device("l4").has_value());
  CHECK(db.get_winner("h100", "existing", "b")->time_us == 5.0);
}

TEST_CASE("tuning_db: a file that is not a SQLite database is moved aside and recreated") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  constexpr std::size_t kGarbageBytes = 8192;
  write_random_bytes(path, kGarbageBytes);
  const std::string garbage = read_file(path);

  TuningDb db(path);
  const auto moved = tmp.moved_aside("tuning.db");
  REQUIRE(moved.size() == 1);
  CHECK(read_file(moved[0].string()) == garbage);
  CHECK(db.schema_version() == TuningDb::latest_schema_version());
  db.upsert_device(make_device("h100"));
  CHECK(db.list_devices().size() == 1);
}

TEST_CASE("tuning_db: a truncated database is moved aside and recreated") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  {
    TuningDb db(path);
    db.upsert_device(make_device("h100"));
    for (int i = 0; i < 100; ++i) db.put_winner(make_winner("h100", "spec" + std::to_string(i), "b", 1.0 + i));
    BinaryRecord big = make_binary("big", 1, 1);
    big.blob.assign(256 * 1024, 0xab);  // spans many pages, so half the file loses real data
    db.put_binary(big);
  }
  REQUIRE_FALSE(fs::exists(path + "-wal"));  // the last close checkpoints the WAL into the file
  const auto full = fs::file_size(path);
  fs::resize_file(path, full / 2);

  TuningDb db(path);
  CHECK(tmp.moved_aside("tuning.db").size() == 1);
  CHECK(db.list_winners().empty());
  CHECK(db.stats().binaries == 0);
  CHECK(db.verify().empty());
}

TEST_CASE("tuning_db: another program's SQLite database is moved aside") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  SUBCASE("tables but no version") {
    raw_exec(path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');");
  }
  SUBCASE("a foreign application_id") { raw_exec(path, "PRAGMA application_id = 42;"); }
  SUBCASE("a version but not our application_id") {
    raw_exec(path, "CREATE TABLE winners (x); PRAGMA user_version = 1;");
  }
  TuningDb db(path);
  CHECK(tmp.moved_aside("tuning.db").size() == 1);
  CHECK(db.schema_version() == TuningDb::latest_schema_version());
  db.upsert_device(make_device("h100"));
  CHECK(raw_text(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'notes'") == "0");
}

TEST_CASE("tuning_db: a database from a newer swajit throws and is left untouched") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  { TuningDb db(path); }
  const int newer = TuningDb::latest_schema_version() + 1;
  raw_exec(path, "PRAGMA user_version = " + std::to_string(newer));
  const std::string message = expect_error(ErrorCode::kDatabaseError, [&] { TuningDb db(path); });
  CHECK(message.find(std::to_string(newer)) != std::string::npos);
  CHECK(message.find(std::to_string(TuningDb::latest_schema_version())) != std::string::npos);
  CHECK(message.find(path) != std::string::npos);
  CHECK(raw_text(path, "PRAGMA user_version") == std::to_string(newer));
  CHECK(tmp.moved_aside("tuning.db").empty());
}

TEST_CASE("tuning_db: drop_binaries_not_matching removes binaries from another compiler or driver") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  db.put_binary(make_binary("current", 12040, 550));
  db.put_binary(make_binary("other_driver", 12040, 560));
  db.put_binary(make_binary("other_compiler", 12050, 550));
  CHECK(db.drop_binaries_not_matching(12040, 550) == 2);
  CHECK(db.get_binary("current").has_value());
  CHECK_FALSE(db.get_binary("other_driver").has_value());
  CHECK_FALSE(db.get_binary("other_compiler").has_value());
  CHECK(db.drop_binaries_not_matching(12040, 550) == 0);
}

TEST_CASE("tuning_db: binary_versions counts binaries per arch, compiler and driver") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  CHECK(db.binary_versions().empty());
  db.put_binary(make_binary("a", 12040, 550));
  db.put_binary(make_binary("b", 12040, 550));
  db.put_binary(make_binary("c", 12040, 560));
  db.put_binary(make_binary("d", 12050, 550));
  const auto versions = db.binary_versions();
  REQUIRE(versions.size() == 3);
  CHECK(versions[0].compiler_version == 12040);
  CHECK(versions[0].driver_version == 550);
  CHECK(versions[0].count == 2);
  CHECK(versions[1].driver_version == 560);
  CHECK(versions[1].count == 1);
  CHECK(versions[2].compiler_version == 12050);
  CHECK(versions[2].count == 1);
  CHECK(versions[0].arch == make_binary("a", 12040, 550).arch);
}

TEST_CASE("tuning_db: merge_from keeps the faster winner and records where it came from") {
  TempDir tmp;
  const std::string other_path = tmp.file("other.db");
  TuningDb db(tmp.file("t.db"));
  db.upsert_device(make_device("h100"));
  db.put_winner(make_winner("h100", "k1", "b", 10.0));
  db.put_winner(make_winner("h100", "k2", "b", 20.0));
  {
    TuningDb other(other_path);
    other.upsert_device(make_device("h100"));
    other.upsert_device(make_device("l4"));
    other.put_winner(make_winner("h100", "k1", "b", 5.0));   // faster: taken
    other.put_winner(make_winner("h100", "k2", "b", 30.0));  // slower: ours kept
    other.put_winner(make_winner("l4", "k3", "b", 7.0));     // new key and device: taken
  }
  const std::string other_before = read_file(other_path);

  const ImportStats stats = db.merge_from(other_path);
  CHECK(stats.devices == 1);
  CHECK(stats.winners_added == 2);
  CHECK(stats.winners_kept_existing == 1);
  const std::string merged = "merged from " + other_path;
  CHECK(db.get_winner("h100", "k1", "b")->time_us == 5.0);
  CHECK(db.get_winner("h100", "k1", "b")->origin == merged);
  CHECK(db.get_winner("h100", "k2", "b")->time_us == 20.0);
  CHECK(db.get_winner("h100", "k2", "b")->origin == "tuned on test host");
  CHECK(db.get_winner("l4", "k3", "b")->origin == merged);
  CHECK(read_file(other_path) == other_before);  // the source file is only read

  expect_error(ErrorCode::kDatabaseError, [&] { db.merge_from(tmp.file("missing.db")); });
  const std::string garbage_path = tmp.file("garbage.db");
  write_random_bytes(garbage_path, 4096);
  expect_error(ErrorCode::kDatabaseError, [&] { db.merge_from(garbage_path); });
  CHECK(fs::exists(garbage_path));  // somebody else's file: reported, never moved
  CHECK(tmp.moved_aside("garbage.db").empty());
}

TEST_CASE("tuning_db: progress marks let a job resume") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  CHECK_FALSE(db.is_done("job1", "item1"));
  db.mark_progress("job1", "item1");
  db.mark_progress("job1", "item1");  // marking twice is harmless
  db.mark_progress("job2", "item1");
  CHECK(db.is_done("job1", "item1"));
  CHECK_FALSE(db.is_done("job1", "item2"));
  CHECK(db.stats().progress_items == 2);
  db.clear_progress("job1");
  CHECK_FALSE(db.is_done("job1", "item1"));
  CHECK(db.is_done("job2", "item1"));
}

TEST_CASE("tuning_db: verify reports damaged rows") {
  TempDir tmp;
  const std::string path = tmp.file("t.db");
  TuningDb db(path);
  db.upsert_device(make_device("h100"));
  db.put_winner(make_winner("h100", "s", "b", 1.0));
  db.put_binary(make_binary("bin", 1, 1));
  CHECK(db.verify().empty());

  // Written behind our back with foreign keys off (the SQLite default), as another tool might.
  raw_exec(path,
           "INSERT INTO winners VALUES ('ghost', 's', 'b', '{\"a\":1}', 1.0, 1, 'now', 'v', 'o');"
           "UPDATE winners SET config_json = 'not json' WHERE device_sku = 'h100';"
           "UPDATE binaries SET size = size + 1;");
  const auto problems = db.verify();
  REQUIRE(problems.size() == 3);
  const auto mentions = [&](const std::string& text) {
    return std::any_of(problems.begin(), problems.end(),
                       [&](const std::string& p) { return p.find(text) != std::string::npos; });
  };
  CHECK(mentions("config_json"));
  CHECK(mentions("ghost"));
  CHECK(mentions("unknown device"));
  CHECK(mentions("size column"));
  CHECK(expect_error(ErrorCode::kDatabaseError, [&] { db.get_winner("h100", "s", "b"); }).find("verify") !=
        std::string::npos);
}

TEST_CASE("tuning_db: stats, vacuum and moving") {
  TempDir tmp;
  TuningDb db(tmp.file("t.db"));
  db.upsert_device(make_device("h100"));
  db.put_winner(make_winner("h100", "s", "b", 1.0));
  TrialRecord t;
  t.device_sku = "h100";
  t.spec_key = "s";
  db.add_trial(t);
  db.put_binary(make_binary("bin", 1, 1));
  db.mark_progress("job", "item");
  db.vacuum();
  const DbStats s = db.stats();
  CHECK(s.schema_version == TuningDb::latest_schema_version());
  CHECK(s.devices == 1);
  CHECK(s.winners == 1);
  CHECK(s.trials == 1);
  CHECK(s.binaries == 1);
  CHECK(s.progress_items == 1);
  CHECK(s.file_bytes > 0);

  TuningDb moved = std::move(db);
  CHECK(moved.list_winners().size() == 1);
  expect_error(ErrorCode::kDatabaseError, [&] { db.list_winners(); });  // NOLINT(bugprone-use-after-move)
}

// Every writer in the concurrency tests stores kWritesPerWriter winners and trials under its own spec keys.
namespace {
void write_as(TuningDb& db, const std::string& writer) {
  for (int i = 0; i < kWritesPerWriter; ++i) {
    const std::string spec = writer + "_" + std::to_string(i);
    db.put_winner(make_winner("h100", spec, "b", 1.0 + i));
    TrialRecord t;
    t.device_sku = "h100";
    t.spec_key = spec;
    t.time_us = 1.0 + i;
    db.add_trial(t);
  }
}
}  // namespace

TEST_CASE("tuning_db: two processes writing at once lose nothing") {
  TempDir tmp;
  const std::string path = tmp.file("shared.db");
  {
    TuningDb db(path);
    db.upsert_device(make_device("h100"));
  }  // closed before fork: a SQLite connection must not cross a fork

  int go[2];
  REQUIRE(pipe(go) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The child reports through its exit status only, and never returns into doctest.
    int status = 0;
    try {
      TuningDb db(path);
      char byte = 0;
      if (read(go[0], &byte, 1) != 1) _exit(2);  // start together with the parent
      write_as(db, "child");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child failed: %s\n", e.what());
      status = 1;
    }
    _exit(status);
  }
  TuningDb db(path);
  REQUIRE(write(go[1], "x", 1) == 1);
  std::exception_ptr failure;
  try {
    write_as(db, "parent");
  } catch (...) {
    failure = std::current_exception();
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  close(go[0]);
  close(go[1]);
  if (failure) std::rethrow_exception(failure);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  const DbStats s = db.stats();
  CHECK(s.winners == 2 * kWritesPerWriter);
  CHECK(s.trials == 2 * kWritesPerWriter);
  CHECK(db.get_winner("h100", "child_" + std::to_string(kWritesPerWriter - 1), "b").has_value());
  CHECK(db.get_winner("h100", "parent_0", "b").has_value());
  CHECK(db.verify().empty());
}

TEST_CASE("tuning_db: two threads with their own TuningDb objects lose nothing") {
  TempDir tmp;
  const std::string path = tmp.file("shared.db");
  TuningDb main_db(path);
  main_db.upsert_device(make_device("h100"));

  // One thread writes row by row, the other through import_json transactions, so both paths contend.
  std::exception_ptr failures[2];
  std::thread row_writer([&] {
    try {
      TuningDb db(path);
      write_as(db, "rows");
    } catch (...) {
      failures[0] = std::current_exception();
    }
  });
  std::thread batch_writer([&] {
    try {
      TuningDb db(path);
      for (int start = 0; start < kWritesPerWriter; start += kImportBatch) {
        json doc = {
            {"format", "swajit-tuning-db"}, {"version", 1}, {"devices", json::array()}, {"winners", json::array()}};
        for (int i = start; i < start + kImportBatch; ++i) {
          WinnerRecord w = make_winner("h100", "batch_" + std::to_string(i), "b", 1.0 + i);
          doc["winners"].push_back({{"device_sku", w.device_sku},
                                    {"spec_key", w.spec_key},
                                    {"bucket", w.bucket},
                                    {"config", w.config},
                                    {"time_us", w.time_us},
                                    {"samples", w.samples}});
          TrialRecord t;
          t.device_sku = "h100";
          t.spec_key = w.spec_key;
          t.status = TrialStatus::kRejectedWrong;
          db.add_trial(t);
        }
        const ImportStats stats = db.import_json(doc, "batch thread");
        if (stats.winners_added != kImportBatch) throw std::runtime_error("import lost winners");
      }
    } catch (...) {
      failures[1] = std::current_exception();
    }
  });
  row_writer.join();
  batch_writer.join();
  for (const std::exception_ptr& f : failures) {
    if (f) std::rethrow_exception(f);
  }
  const DbStats s = main_db.stats();
  CHECK(s.winners == 2 * kWritesPerWriter);
  CHECK(s.trials == 2 * kWritesPerWriter);
  CHECK(main_db.count_trials({.status = TrialStatus::kRejectedWrong}) == kWritesPerWriter);
  CHECK(main_db.get_winner("h100", "batch_0", "b")->origin == "batch thread");
}

TEST_CASE("tuning_db: sha256_hex matches the FIPS 180-4 examples") {
  const auto hex = [](const std::string& text) {
    return sha256_hex(std::vector<std::uint8_t>(text.begin(), text.end()));
  };
  CHECK(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("tuning_db: a binary with a flipped bit is discarded, reported by verify, and stored again") {
  TempDir tmp;
  const std::string path = tmp.file("t.db");
  TuningDb db(path);
  BinaryRecord good = make_binary("kernel", 1, 1);
  db.put_binary(good);
  CHECK(db.verify().empty());
  // Flip one bit of the stored blob behind the database's back, as a bad disk might.
  raw_exec(path, "UPDATE binaries SET blob = CAST(X'7f454c4601010201' AS BLOB) WHERE hash = 'kernel'");
  const auto problems = db.verify();
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("SHA-256") != std::string::npos);
  CHECK(problems[0].find("kernel") != std::string::npos);
  CHECK_FALSE(db.get_binary("kernel").has_value());  // not returned, and the row is gone
  CHECK(db.stats().binaries == 0);
  db.put_binary(good);  // what the caller does next: recompile and store
  REQUIRE(db.get_binary("kernel").has_value());
  CHECK(db.get_binary("kernel")->blob == good.blob);
  CHECK(db.verify().empty());
}

TEST_CASE("tuning_db: schema version 1 is migrated to 2, dropping binaries that have no checksum") {
  TempDir tmp;
  const std::string path = tmp.file("old.db");
  raw_exec(path,
           "CREATE TABLE devices (sku TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, backend TEXT NOT NULL, cc_major "
           "INTEGER NOT NULL, cc_minor INTEGER NOT NULL, sm_count INTEGER NOT NULL, memory_bytes INTEGER NOT NULL, "
           "driver_version INTEGER NOT NULL, compiler_version INTEGER NOT NULL, extra TEXT NOT NULL DEFAULT '{}');"
           "CREATE TABLE winners (device_sku TEXT NOT NULL, spec_key TEXT NOT NULL, bucket TEXT NOT NULL, config_json "
           "TEXT NOT NULL, time_us REAL NOT NULL, samples INTEGER NOT NULL, created_at TEXT NOT NULL, tool_version TEXT "
           "NOT NULL, origin TEXT NOT NULL, PRIMARY KEY (device_sku, spec_key, bucket));"
           "CREATE TABLE trials (id INTEGER PRIMARY KEY, device_sku TEXT NOT NULL, spec_key TEXT NOT NULL, bucket TEXT "
           "NOT NULL, config_json TEXT NOT NULL, time_us REAL, status TEXT NOT NULL, detail TEXT NOT NULL, created_at "
           "TEXT NOT NULL);"
           "CREATE TABLE binaries (hash TEXT PRIMARY KEY NOT NULL, arch TEXT NOT NULL, compiler_version INTEGER NOT "
           "NULL, driver_version INTEGER NOT NULL, blob BLOB NOT NULL, created_at TEXT NOT NULL, size INTEGER NOT NULL);"
           "CREATE TABLE tuning_progress (job_id TEXT NOT NULL, item_key TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, "
           "PRIMARY KEY (job_id, item_key)) WITHOUT ROWID;"
           "INSERT INTO devices VALUES ('h100', 'H100', 'cuda', 9, 0, 132, 1, 1, 1, '{}');"
           "INSERT INTO winners VALUES ('h100', 's', 'b', '{}', 1.0, 1, 'now', 'v', 'o');"
           "INSERT INTO binaries VALUES ('old', 'sm_90a', 1, 1, X'00', 'now', 1);"
           "PRAGMA user_version = 1; PRAGMA application_id = 1398229588;");
  TuningDb db(path);
  CHECK(db.schema_version() == 2);
  CHECK(db.list_winners().size() == 1);
  CHECK(db.stats().binaries == 0);
  CHECK(db.verify().empty());
}

TEST_CASE("tuning_db: a read-only database can be read; a write says the file is read-only") {
  if (geteuid() == 0) return;  // root writes through any file mode
  TempDir tmp;
  const std::string path = tmp.file("ro.db");
  {
    TuningDb db(path);
    db.upsert_device(make_device("h100"));
    db.put_winner(make_winner("h100", "s", "b", 1.0));
  }
  fs::permissions(path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  TuningDb db(path);
  CHECK(db.list_winners().size() == 1);
  CHECK(db.get_winner("h100", "s", "b").has_value());
  CHECK(db.verify().empty());
  const std::string message =
      expect_error(ErrorCode::kDatabaseError, [&] { db.put_winner(make_winner("h100", "t", "b", 1.0)); });
  CHECK_MESSAGE(message.find("read-only") != std::string::npos, message);
  CHECK(tmp.moved_aside("ro.db").empty());
  fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
}

TEST_CASE("tuning_db: moving a damaged file aside is reported with the new path") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  write_random_bytes(path, 4096);
  TuningDb db(path);
  REQUIRE(db.moved_aside().has_value());
  const auto moved = tmp.moved_aside("tuning.db");
  REQUIRE(moved.size() == 1);
  CHECK(db.moved_aside()->find(moved[0].string()) != std::string::npos);
  CHECK_FALSE(TuningDb(path).moved_aside().has_value());  // the new file is healthy
}

TEST_CASE("json_input: files that are not JSON documents give kInvalidArgument naming the problem") {
  TempDir tmp;
  const auto message = [](const std::function<void()>& f) { return expect_error(ErrorCode::kInvalidArgument, f); };
  CHECK(message([&] { swajit::read_json_file(tmp.dir().string(), "import file"); }).find("not a regular file") !=
        std::string::npos);
  CHECK(message([&] { swajit::read_json_file(tmp.file("missing.json"), "import file"); }).find("does not exist") !=
        std::string::npos);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(message([&] { swajit::parse_json_text(deep, "deep"); }).find("deeper than") != std::string::npos);
  const std::string ok_depth = std::string(swajit::kMaxJsonDepth, '[') + std::string(swajit::kMaxJsonDepth, ']');
  CHECK(swajit::parse_json_text(ok_depth, "ok").is_array());
  CHECK(swajit::parse_json_text("[\"[[[[\"]", "brackets in a string").size() == 1);
  CHECK(message([&] { swajit::parse_json_text("{", "x"); }).find("not valid JSON") != std::string::npos);

  const json shape = {{"n", 4294967298}, {"s", 5}, {"b", "yes"}, {"neg", -1}};
  CHECK(message([&] { swajit::json_integer(shape, "w", "n", 1, 1 << 24); }).find("w.n must be an integer from 1") !=
        std::string::npos);
  CHECK(message([&] { swajit::json_integer(shape, "w", "neg", 1, 10); }).find("w.neg") != std::string::npos);
  CHECK(message([&] { swajit::json_string(shape, "w", "s"); }).find("w.s must be a string") != std::string::npos);
  CHECK(message([&] { swajit::json_bool(shape, "w", "b"); }).find("w.b must be true or false") != std::string::npos);
  CHECK(message([&] { swajit::json_integer(shape, "w", "absent", 1, 2); }).find("w.absent is missing") !=
        std::string::npos);
  CHECK(swajit::json_integer(shape, "w", "absent", 1, 2, 2) == 2);
}

TEST_CASE("json_input: write_file_atomically writes whole files and reports every failure") {
  TempDir tmp;
  const std::string file = tmp.file("out.json");
  swajit::write_file_atomically(file, "{}\n");
  CHECK(read_file(file) == "{}\n");
  swajit::write_file_atomically(file, "[1]\n");  // replaces
  CHECK(read_file(file) == "[1]\n");
  expect_error(ErrorCode::kInvalidArgument, [&] { swajit::write_file_atomically(tmp.file("no/such/dir.json"), "x"); });
  expect_error(ErrorCode::kInvalidArgument, [&] { swajit::write_file_atomically(tmp.dir().string(), "x"); });
  std::size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(tmp.dir())) entries += entry.is_regular_file();
  CHECK(entries == 1);  // no temporary file left behind
}

TEST_CASE("tuning_db: OpenCheck::kHeader opens a current database at once and leaves anything else to the full open") {
  TempDir tmp;
  const std::string path = tmp.file("tuning.db");
  {
    TuningDb created(path, TuningDb::OpenCheck::kHeader);  // missing: created on the full path
    CHECK(created.schema_version() == TuningDb::latest_schema_version());
    created.upsert_device(make_device("h100"));
  }
  {
    // Another process holding the open lock (creating or repairing) does not delay a warm open of a current file.
    const int lock_fd = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(lock_fd >= 0);
    REQUIRE(::flock(lock_fd, LOCK_EX) == 0);
    const auto start = std::chrono::steady_clock::now();
    TuningDb warm(path, TuningDb::OpenCheck::kHeader);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
    CHECK(warm.list_devices().size() == 1);
    warm.upsert_device(make_device("h200"));  // and it writes
    ::close(lock_fd);
  }
  CHECK(TuningDb(path).list_devices().size() == 2);
  CHECK(tmp.moved_aside("tuning.db").empty());
  // A file that is not ours takes the full path: moved aside and recreated, as without kHeader.
  const std::string garbage_path = tmp.file("garbage.db");
  write_random_bytes(garbage_path, 8192);
  TuningDb replaced(garbage_path, TuningDb::OpenCheck::kHeader);
  CHECK(tmp.moved_aside("garbage.db").size() == 1);
  CHECK(replaced.schema_version() == TuningDb::latest_schema_version());
}
