// The swajit tuning database.
//
// Schema (version kept in PRAGMA user_version, file marked with PRAGMA application_id = kApplicationId):
//
//   devices          one row per device model; winners and trials point at it.
//     sku TEXT PK            stable identifier supplied by the caller
//     name TEXT, backend TEXT ('cuda' | 'cpu'), cc_major INT, cc_minor INT, sm_count INT, memory_bytes INT,
//     driver_version INT, compiler_version INT, extra TEXT (a JSON object)
//   winners          the best config per (device, spec, bucket).
//     device_sku TEXT -> devices.sku, spec_key TEXT, bucket TEXT   PK (device_sku, spec_key, bucket)
//     config_json TEXT (a JSON object), time_us REAL (>= 0), samples INT (>= 1),
//     created_at TEXT (ISO-8601 UTC), tool_version TEXT, origin TEXT (where the row came from)
//   trials           every measured or rejected candidate, for analysis.
//     id INT PK, device_sku TEXT -> devices.sku, spec_key TEXT, bucket TEXT, config_json TEXT,
//     time_us REAL (NULL unless measured), status TEXT ('ok' | 'rejected_wrong' | 'rejected_resources' |
//     'compile_failed'), detail TEXT, created_at TEXT
//   binaries         compiled kernels keyed by the caller's hash of source + options + target (not the compiler version).
//     hash TEXT PK, arch TEXT, compiler_version INT, driver_version INT, blob BLOB, created_at TEXT, size INT,
//     sha256 TEXT (of blob, 64 hex digits; checked before the blob is returned, so a damaged binary never runs)
//   tuning_progress  which items of a tuning job are finished, so an interrupted job can resume.
//     job_id TEXT, item_key TEXT, done INT   PK (job_id, item_key)
//
// Enumerated text columns (backend, status) are checked in C++ rather than with SQL CHECK constraints: adding a
// value later would otherwise need a table rebuild in a migration.
#include "swajit/tuning_db.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <set>
#include <span>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include "sha256.hpp"
#include "swajit/error.hpp"

namespace swajit::db {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kApplicationId = 0x53574A54;  // "SWJT": tells our files apart from other SQLite databases
constexpr int kBusyTimeoutMs = 10'000;      // how long a statement waits for another writer's lock
constexpr int kBeginAttempts = 3;           // BEGIN IMMEDIATE tries, each waiting up to kBusyTimeoutMs
constexpr int kMaxMoveAsideSuffix = 1000;   // ".corrupt-<time>.<n>" candidates before giving up
constexpr auto kOpenLockPoll = std::chrono::milliseconds(10);  // between tries for the open lock
constexpr auto kOpenLockTimeout = std::chrono::milliseconds(kBusyTimeoutMs * kBeginAttempts);
constexpr const char* kExportFormat = "swajit-tuning-db";
constexpr int kExportFormatVersion = 1;  // of the JSON export, independent of the schema version

// kMigrations[i] takes a database from schema version i to i + 1, inside one transaction. To change the schema,
// append an entry; never edit one that has shipped.
constexpr const char* kMigrations[] = {
    // 1: the initial schema.
    R"sql(
      CREATE TABLE devices (
        sku              TEXT PRIMARY KEY NOT NULL,
        name             TEXT NOT NULL,
        backend          TEXT NOT NULL,
        cc_major         INTEGER NOT NULL,
        cc_minor         INTEGER NOT NULL,
        sm_count         INTEGER NOT NULL,
        memory_bytes     INTEGER NOT NULL,
        driver_version   INTEGER NOT NULL,
        compiler_version INTEGER NOT NULL,
        extra            TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE winners (
        device_sku   TEXT NOT NULL REFERENCES devices(sku),
        spec_key     TEXT NOT NULL,
        bucket       TEXT NOT NULL,
        config_json  TEXT NOT NULL,
        time_us      REAL NOT NULL CHECK (time_us >= 0),
        samples      INTEGER NOT NULL CHECK (samples >= 1),
        created_at   TEXT NOT NULL,
        tool_version TEXT NOT NULL,
        origin       TEXT NOT NULL,
        PRIMARY KEY (device_sku, spec_key, bucket)
      );
      CREATE TABLE trials (
        id          INTEGER PRIMARY KEY,
        device_sku  TEXT NOT NULL REFERENCES devices(sku),
        spec_key    TEXT NOT NULL,
        bucket      TEXT NOT NULL,
        config_json TEXT NOT NULL,
        time_us     REAL CHECK (time_us IS NULL OR time_us >= 0),
        status      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        created_at  TEXT NOT NULL
      );
      CREATE INDEX trials_by_key ON trials (device_sku, spec_key, bucket);
      CREATE TABLE binaries (
        hash             TEXT PRIMARY KEY NOT NULL,
        arch             TEXT NOT NULL,
        compiler_version INTEGER NOT NULL,
        driver_version   INTEGER NOT NULL,
        blob             BLOB NOT NULL,
        created_at       TEXT NOT NULL,
        size             INTEGER NOT NULL
      );
      CREATE TABLE tuning_progress (
        job_id   TEXT NOT NULL,
        item_key TEXT NOT NULL,
        done     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, item_key)
      ) WITHOUT ROWID;
    )sql",
    // 2: a SHA-256 of every binary. Rows stored before it have none; they are a cache, so they are dropped and the
    // next use recompiles and stores them with one.
    R"sql(
      DELETE FROM binaries;
      ALTER TABLE binaries ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';
    )sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// Column lists shared by every query that reads a whole record; the read_* functions below follow this order.
constexpr const char* kDeviceColumns =
    "sku, name, backend, cc_major, cc_minor, sm_count, memory_bytes, driver_version, compiler_version, extra";
constexpr const char* kWinnerColumns =
    "device_sku, spec_key, bucket, config_json, time_us, samples, created_at, tool_version, origin";
constexpr const char* kTrialColumns =
    "id, device_sku, spec_key, bucket, config_json, time_us, status, detail, created_at";
constexpr const char* kBinaryColumns =
    "hash, arch, compiler_version, driver_version, blob, created_at, size, sha256";

// A kDatabaseError that remembers the SQLite result code, so opening can tell corruption from other failures.
class SqliteError : public Error {
 public:
  SqliteError(int result_code, std::string_view what, const std::string& path, std::string sqlite_message)
      : Error(ErrorCode::kDatabaseError, std::string(what) + " failed on " + path + ": " + sqlite_message),
        result_code_(result_code),
        sqlite_message_(std::move(sqlite_message)) {}
  int primary_code() const { return result_code_ & 0xff; }  // extended codes keep the primary one in the low byte
  const std::string& sqlite_message() const { return sqlite_message_; }

 private:
  int result_code_;
  std::string sqlite_message_;
};

[[noreturn]] void fail(sqlite3* db, const std::string& path, std::string_view what, int rc) {
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if ((rc & 0xff) == SQLITE_READONLY) message = "the database file is read-only (" + message + ")";
  throw SqliteError(rc, what, path, std::move(message));
}

// Runs SQL without parameters (schema, transaction control). Values always go through Statement::bind.
void exec(sqlite3* db, const std::string& path, std::string_view what, const char* sql) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(db, path, what, rc);
}

using Blob = std::span<const std::uint8_t>;

// One prepared statement: bind parameters in order, step through rows, read columns by index.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, std::string_view what, const std::string& sql)
      : db_(db), path_(path), what_(what) {
    const int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(db_, path_, what_, rc);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  template <class... Args>
  Statement& bind(const Args&... args) {
    int index = 1;
    (bind_one(index++, args), ...);
    return *this;
  }

  // True while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, path_, what_, rc);
  }
  // Runs a statement that returns no rows; returns how many rows it changed.
  std::int64_t run() {
    while (step()) {
    }
    return sqlite3_changes64(db_);
  }

  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return data == nullptr ? std::string() : std::string(data, sqlite3_column_bytes(stmt_, col));
  }
  std::vector<std::uint8_t> blob(int col) const {
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
    return data == nullptr ? std::vector<std::uint8_t>()
                           : std::vector<std::uint8_t>(data, data + sqlite3_column_bytes(stmt_, col));
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) fail(db_, path_, what_, rc);
  }
  void bind_one(int i, std::nullptr_t) { check(sqlite3_bind_null(stmt_, i)); }
  void bind_one(int i, std::string_view s) {
    check(sqlite3_bind_text64(stmt_, i, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void bind_one(int i, const std::string& s) { bind_one(i, std::string_view(s)); }
  void bind_one(int i, const char* s) { bind_one(i, std::string_view(s)); }
  void bind_one(int i, double v) { check(sqlite3_bind_double(stmt_, i, v)); }
  template <class T>
  requires std::is_integral_v<T>
  void bind_one(int i, T v) { check(sqlite3_bind_int64(stmt_, i, static_cast<sqlite3_int64>(v))); }
  void bind_one(int i, Blob b) {
    // A null pointer would bind SQL NULL, so an empty blob points at a static byte instead.
    static constexpr std::uint8_t kEmpty = 0;
    check(sqlite3_bind_blob64(stmt_, i, b.empty() ? &kEmpty : b.data(), b.size(), SQLITE_TRANSIENT));
  }
  template <class T>
  void bind_one(int i, const std::optional<T>& v) {
    if (v) {
      bind_one(i, *v);
    } else {
      bind_one(i, nullptr);
    }
  }

  sqlite3* db_;
  std::string path_;
  std::string what_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A single-value query, e.g. a count or a PRAGMA.
std::int64_t query_integer(sqlite3* db, const std::string& path, std::string_view what, const std::string& sql) {
  Statement stmt(db, path, what, sql);
  return stmt.step() ? stmt.integer(0) : 0;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[sizeof "YYYY-MM-DDTHH:MM:SSZ"];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string or_now(const std::string& created_at) { return created_at.empty() ? utc_now() : created_at; }

// Stored JSON columns are written by us, so a parse failure means the file was damaged or edited by hand.
json parse_stored_json(const std::string& text, const std::string& path, std::string_view what) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    throw Error(ErrorCode::kDatabaseError,
                std::string(what) + " failed on " + path + ": stored JSON does not parse (run verify): " + text);
  }
  return value;
}

// ---- Records: validation shared by the direct API and import_json --------------------------------------------

[[noreturn]] void invalid(const std::string& where, std::string_view field, std::string_view problem) {
  throw Error(ErrorCode::kInvalidArgument, where + "." + std::string(field) + " " + std::string(problem));
}

void require_non_empty(const std::string& where, std::string_view field, const std::string& value) {
  if (value.empty()) invalid(where, field, "must not be empty");
}

void require_non_negative(const std::string& where, std::string_view field, std::int64_t value) {
  if (value < 0) invalid(where, field, "must be >= 0 (got " + std::to_string(value) + ")");
}

void require_time(const std::string& where, std::string_view field, double time_us) {
  if (!std::isfinite(time_us) || time_us < 0) {
    invalid(where, field, "must be a finite number >= 0 (got " + std::to_string(time_us) + ")");
  }
}

void require_object(const std::string& where, std::string_view field, const json& value) {
  if (!value.is_object()) invalid(where, field, std::string("must be a JSON object (got ") + value.type_name() + ")");
}

void validate(const DeviceRecord& d, const std::string& where) {
  require_non_empty(where, "sku", d.sku);
  if (d.backend != "cuda" && d.backend != "cpu")
    invalid(where, "backend", "must be \"cuda\" or \"cpu\" (got \"" + d.backend + "\")");
  require_non_negative(where, "cc_major", d.cc_major);
  require_non_negative(where, "cc_minor", d.cc_minor);
  require_non_negative(where, "sm_count", d.sm_count);
  require_non_negative(where, "memory_bytes", d.memory_bytes);
  require_non_negative(where, "driver_version", d.driver_version);
  require_non_negative(where, "compiler_version", d.compiler_version);
  require_object(where, "extra", d.extra);
}

void validate(const WinnerRecord& w, const std::string& where) {
  require_non_empty(where, "device_sku", w.device_sku);
  require_non_empty(where, "spec_key", w.spec_key);
  require_object(where, "config", w.config);
  require_time(where, "time_us", w.time_us);
  if (w.samples < 1) invalid(where, "samples", "must be >= 1 (got " + std::to_string(w.samples) + ")");
}

void validate(const TrialRecord& t, const std::string& where) {
  require_non_empty(where, "device_sku", t.device_sku);
  require_non_empty(where, "spec_key", t.spec_key);
  require_object(where, "config", t.config);
  if (t.time_us) require_time(where, "time_us", *t.time_us);
}

void validate(const BinaryRecord& b, const std::string& where) {
  require_non_empty(where, "hash", b.hash);
  require_non_negative(where, "compiler_version", b.compiler_version);
  require_non_negative(where, "driver_version", b.driver_version);
}

DeviceRecord read_device(const Statement& s, const std::string& path) {
  return DeviceRecord{s.text(0),
                      s.text(1),
                      s.text(2),
                      static_cast<int>(s.integer(3)),
                      static_cast<int>(s.integer(4)),
                      static_cast<int>(s.integer(5)),
                      s.integer(6),
                      s.integer(7),
                      s.integer(8),
                      parse_stored_json(s.text(9), path, "reading device " + s.text(0))};
}

WinnerRecord read_winner(const Statement& s, const std::string& path) {
  WinnerRecord w;
  w.device_sku = s.text(0);
  w.spec_key = s.text(1);
  w.bucket = s.text(2);
  w.config = parse_stored_json(s.text(3), path, "reading winner " + w.spec_key + " / " + w.bucket);
  w.time_us = s.real(4);
  w.samples = s.integer(5);
  w.created_at = s.text(6);
  w.tool_version = s.text(7);
  w.origin = s.text(8);
  return w;
}

TrialRecord read_trial(const Statement& s, const std::string& path) {
  TrialRecord t;
  t.id = s.integer(0);
  t.device_sku = s.text(1);
  t.spec_key = s.text(2);
  t.bucket = s.text(3);
  t.config = parse_stored_json(s.text(4), path, "reading trial " + std::to_string(t.id));
  if (!s.is_null(5)) t.time_us = s.real(5);
  try {
    t.status = parse_trial_status(s.text(6));
  } catch (const Error& e) {  // a value written by a newer swajit or by hand: the file's problem, not the caller's
    throw Error(ErrorCode::kDatabaseError,
                "reading trial " + std::to_string(t.id) + " failed on " + path + ": " + e.what());
  }
  t.detail = s.text(7);
  t.created_at = s.text(8);
  return t;
}

BinaryRecord read_binary(const Statement& s) {
  return BinaryRecord{s.text(0), s.text(1), s.integer(2), s.integer(3), s.blob(4), s.text(5), s.integer(6), s.text(7)};
}

// ---- JSON export format ---------------------------------------------------------------------------------------

json to_json(const DeviceRecord& d) {
  return {{"sku", d.sku},
          {"name", d.name},
          {"backend", d.backend},
          {"cc_major", d.cc_major},
          {"cc_minor", d.cc_minor},
          {"sm_count", d.sm_count},
          {"memory_bytes", d.memory_bytes},
          {"driver_version", d.driver_version},
          {"compiler_version", d.compiler_version},
          {"extra", d.extra}};
}

json to_json(const WinnerRecord& w) {
  return {{"device_sku", w.device_sku}, {"spec_key", w.spec_key},         {"bucket", w.bucket},
          {"config", w.config},         {"time_us", w.time_us},           {"samples", w.samples},
          {"created_at", w.created_at}, {"tool_version", w.tool_version}, {"origin", w.origin}};
}

// Typed access to one entry of an import file; every error names the entry ("winners[3]") and the field.
class Entry {
 public:
  Entry(const json& value, std::string where) : value_(value), where_(std::move(where)) {
    if (!value_.is_object()) throw Error(ErrorCode::kInvalidArgument, where_ + " must be a JSON object");
  }
  const std::string& where() const { return where_; }

  std::string string(const char* key, std::optional<std::string> fallback = std::nullopt) const {
    const json* v = find(key, fallback.has_value());
    if (v == nullptr) return *fallback;
    if (!v->is_string()) wrong_type(key, "a string", *v);
    return v->get<std::string>();
  }
  std::int64_t integer(const char* key, std::int64_t max = std::numeric_limits<std::int64_t>::max()) const {
    const json& v = *find(key, false);
    // nlohmann keeps large positive numbers unsigned; anything above int64 is out of range for SQLite anyway.
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
        v.get<std::int64_t>() > max) {
      wrong_type(key, "an integer no larger than " + std::to_string(max), v);
    }
    return v.get<std::int64_t>();
  }
  int small_integer(const char* key) const { return static_cast<int>(integer(key, std::numeric_limits<int>::max())); }
  double number(const char* key) const {
    const json& v = *find(key, false);
    if (!v.is_number()) wrong_type(key, "a number", v);
    return v.get<double>();
  }
  json object(const char* key, bool optional = false) const {
    const json* v = find(key, optional);
    if (v == nullptr) return json::object();
    require_object(where_, key, *v);
    return *v;
  }

 private:
  const json* find(const char* key, bool optional) const {
    const auto it = value_.find(key);
    if (it != value_.end()) return &*it;
    if (!optional) invalid(where_, key, "is missing");
    return nullptr;
  }
  [[noreturn]] void wrong_type(const char* key, const std::string& expected, const json& got) const {
    invalid(where_, key, "must be " + expected + " (got " + got.dump() + ")");
  }

  const json& value_;
  std::string where_;
};

DeviceRecord device_from_json(const Entry& e) {
  DeviceRecord d{e.string("sku"),
                 e.string("name"),
                 e.string("backend"),
                 e.small_integer("cc_major"),
                 e.small_integer("cc_minor"),
                 e.small_integer("sm_count"),
                 e.integer("memory_bytes"),
                 e.integer("driver_version"),
                 e.integer("compiler_version"),
                 e.object("extra", /*optional=*/true)};
  validate(d, e.where());
  return d;
}

WinnerRecord winner_from_json(const Entry& e) {
  WinnerRecord w{e.string("device_sku"),     e.string("spec_key"),         e.string("bucket"),
                 e.object("config"),         e.number("time_us"),          e.integer("samples"),
                 e.string("created_at", ""), e.string("tool_version", ""), e.string("origin", "")};
  validate(w, e.where());
  return w;
}

const json& array_member(const json& document, const char* key) {
  const auto it = document.find(key);
  if (it == document.end() || !it->is_array()) {
    throw Error(ErrorCode::kInvalidArgument, std::string("import: \"") + key + "\" must be an array");
  }
  return *it;
}

// ---- Opening --------------------------------------------------------------------------------------------------

sqlite3* open_connection(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    throw SqliteError(rc, "opening", path, std::move(detail));
  }
  // Lets a statement wait for another connection's lock instead of failing at once with SQLITE_BUSY.
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

// An exclusive flock on "<path>.lock", held while one process opens the database: inspecting, creating, migrating or
// moving a bad file aside happen in one process at a time, so none ever sees another's half-initialized file (and
// moves it aside while the other goes on writing into it). The kernel drops the lock if the process dies. A
// directory where the lock file cannot be created (read-only) cannot hold a new database either: no lock is needed.
class OpenLock {
 public:
  explicit OpenLock(const std::string& db_path) {
    if (db_path == ":memory:") return;
    const std::string lock_path = db_path + ".lock";
    fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) return;
    const auto deadline = std::chrono::steady_clock::now() + kOpenLockTimeout;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        release();  // e.g. a file system without flock: open unserialized rather than not at all
        return;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        release();
        throw Error(ErrorCode::kDatabaseError, "opening failed on " + db_path + ": another process held " +
                                                   lock_path + " for " +
                                                   std::to_string(kOpenLockTimeout.count() / 1000) + " s");
      }
      std::this_thread::sleep_for(kOpenLockPoll);
    }
  }
  ~OpenLock() { release(); }
  OpenLock(const OpenLock&) = delete;
  OpenLock& operator=(const OpenLock&) = delete;

 private:
  void release() {
    if (fd_ >= 0) ::close(fd_);  // closing drops the flock
    fd_ = -1;
  }
  int fd_ = -1;
};

// "file:" URI of a path (for SQLite's URI parameters): the characters URIs reserve are %-escaped.
std::string file_uri(const std::string& path) {
  std::string uri = "file:";
  for (unsigned char c : path) {
    if (c == '%' || c == '?' || c == '#' || c < 0x21 || c > 0x7e) {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      uri += escaped;
    } else {
      uri += char(c);
    }
  }
  return uri;
}

// Renames a bad database (and any -wal / -shm next to it) out of the way; returns the new name.
std::string move_aside(const std::string& path) {
  const std::string stem = path + ".corrupt-" + std::to_string(std::time(nullptr));
  for (int n = 0; n < kMaxMoveAsideSuffix; ++n) {
    const std::string target = n == 0 ? stem : stem + "." + std::to_string(n);
    std::error_code ec;
    if (fs::exists(target, ec)) continue;
    fs::rename(path, target, ec);
    if (ec) throw Error(ErrorCode::kDatabaseError, "moving aside failed on " + path + ": " + ec.message());
    for (const char* suffix : {"-wal", "-shm"}) {
      // A stale WAL must not be replayed into the fresh database, so it travels with its file.
      if (fs::exists(path + suffix, ec)) fs::rename(path + suffix, target + suffix, ec);
    }
    return target;
  }
  throw Error(ErrorCode::kDatabaseError, "moving aside failed on " + path + ": too many " + stem + "* files");
}

}  // namespace

// ---- Names ----------------------------------------------------------------------------------------------------

const char* trial_status_name(TrialStatus status) {
  switch (status) {
    case TrialStatus::kOk: return "ok";
    case TrialStatus::kRejectedWrong: return "rejected_wrong";
    case TrialStatus::kRejectedResources: return "rejected_resources";
    case TrialStatus::kCompileFailed: return "compile_failed";
  }
  return "unknown";
}

TrialStatus parse_trial_status(std::string_view name) {
  for (TrialStatus s :
       {TrialStatus::kOk, TrialStatus::kRejectedWrong, TrialStatus::kRejectedResources, TrialStatus::kCompileFailed}) {
    if (name == trial_status_name(s)) return s;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown trial status \"" + std::string(name) + "\"");
}

// ---- Lifetime -------------------------------------------------------------------------------------------------

void TuningDb::Closer::operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }

std::string TuningDb::default_path() {
  const auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
  };
  if (std::string explicit_path = env("SWAJIT_DB"); !explicit_path.empty()) return explicit_path;
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  if (std::string cache = env("XDG_CACHE_HOME"); !cache.empty() && fs::path(cache).is_absolute()) {
    return (fs::path(cache) / "swajit" / "tuning.db").string();
  }
  if (std::string home = env("HOME"); !home.empty())
    return (fs::path(home) / ".cache" / "swajit" / "tuning.db").string();
  throw Error(ErrorCode::kDatabaseError, "no tuning database path: set SWAJIT_DB, XDG_CACHE_HOME or HOME");
}

int TuningDb::latest_schema_version() { return kSchemaVersion; }

TuningDb::TuningDb(const std::string& path, OpenCheck check) : path_(path) {
  if (path_.empty()) throw Error(ErrorCode::kInvalidArgument, "tuning database path is empty");
  if (check == OpenCheck::kHeader && open_if_current()) return;
  const fs::path parent = fs::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) throw Error(ErrorCode::kDatabaseError, "creating " + parent.string() + " failed: " + ec.message());
  }
  const OpenLock lock(path_);  // held until the file is ours and migrated
  const bool writable = open_read_write();
  if (std::optional<std::string> problem = inspect()) {
    if (!writable) {
      throw Error(ErrorCode::kDatabaseError, "opening failed on " + path_ + ": it " + *problem +
                                                 ", and it is read-only, so it cannot be moved aside and replaced");
    }
    db_.reset();
    const std::string moved_to = move_aside(path_);
    moved_aside_ = "the previous " + path_ + " " + *problem + "; it was moved to " + moved_to +
                   " (kept for inspection) and a new, empty tuning database was created";
    std::cerr << "swajit: warning: " << *moved_aside_ << "\n";
    open_read_write();
    if (std::optional<std::string> again = inspect()) {
      throw Error(ErrorCode::kDatabaseError, "recreating failed on " + path_ + ": " + *again);
    }
  }
  if (writable) {
    // WAL lets readers run alongside one writer. In WAL mode NORMAL never corrupts the file; a power cut may lose
    // the last commits, fine for a tuning cache, and it saves an fsync per commit (one trial per statement).
    exec(handle(), path_, "enabling WAL", "PRAGMA journal_mode=WAL");
    exec(handle(), path_, "setting synchronous", "PRAGMA synchronous=NORMAL");
  }
  // Foreign keys keep winners and trials tied to a known device.
  exec(handle(), path_, "enabling foreign keys", "PRAGMA foreign_keys=ON");
  if (!writable && schema_version() != kSchemaVersion) {
    throw Error(ErrorCode::kDatabaseError, "opening failed on " + path_ + ": the database file is read-only and has "
                                               "schema version " + std::to_string(schema_version()) + " (this swajit "
                                               "needs " + std::to_string(kSchemaVersion) + "); open it writable once "
                                               "to upgrade it");
  }
  migrate();
}

bool TuningDb::open_read_write() {
  db_.reset(open_connection(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  if (sqlite3_db_readonly(handle(), "main") != 1) return true;
  // SQLite silently opened a write-protected file read-only; every write then fails with SQLITE_READONLY, reported as
  // "the database file is read-only". Reading a WAL database needs its -shm file: where it does not exist and cannot
  // be created (a directory we may not write), the file is read as immutable. No writer can be active then, as a
  // writer would have created the -shm file.
  db_.reset(open_connection(path_, SQLITE_OPEN_READONLY));
  try {
    query_integer(handle(), path_, "reading application_id", "PRAGMA application_id");
  } catch (const SqliteError& e) {
    if (e.primary_code() != SQLITE_READONLY) throw;
    db_.reset(open_connection(file_uri(path_) + "?immutable=1", SQLITE_OPEN_READONLY | SQLITE_OPEN_URI));
  }
  return false;
}

bool TuningDb::open_if_current() {
  std::error_code ec;
  if (fs::file_size(path_, ec) == 0 || ec) return false;  // missing or empty: to be created under the lock
  try {
    db_.reset(open_connection(path_, SQLITE_OPEN_READWRITE));
    const bool current = sqlite3_db_readonly(handle(), "main") == 0 &&
                         query_integer(handle(), path_, "reading application_id", "PRAGMA application_id") == kApplicationId &&
                         query_integer(handle(), path_, "reading user_version", "PRAGMA user_version") == kSchemaVersion;
    if (current) {
      // journal_mode=WAL is stored in the file by whoever created it; these two belong to the connection.
      exec(handle(), path_, "setting synchronous", "PRAGMA synchronous=NORMAL");
      exec(handle(), path_, "enabling foreign keys", "PRAGMA foreign_keys=ON");
      return true;
    }
  } catch (const SqliteError&) {  // not a database, locked, ...: the full path judges and reports it
  }
  db_.reset();
  return false;
}

// Copies `path` into memory through the backup API so that reading (and migrating) it never writes the file.
TuningDb::TuningDb(SnapshotTag, const std::string& path) : path_(path) {
  std::unique_ptr<sqlite3, Closer> source(open_connection(path_, SQLITE_OPEN_READONLY));
  db_.reset(open_connection(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  sqlite3_backup* backup = sqlite3_backup_init(handle(), "main", source.get(), "main");
  if (backup == nullptr) fail(handle(), path_, "reading", sqlite3_errcode(handle()));
  const int step_rc = sqlite3_backup_step(backup, -1);  // -1: copy every page in one read transaction
  // finish() moves the backup's error message onto the destination connection, so both report through it.
  const int finish_rc = sqlite3_backup_finish(backup);
  if (step_rc != SQLITE_DONE) fail(handle(), path_, "reading", step_rc);
  if (finish_rc != SQLITE_OK) fail(handle(), path_, "reading", finish_rc);
  source.reset();
  if (std::optional<std::string> problem = inspect()) {
    throw Error(ErrorCode::kDatabaseError, "reading failed on " + path_ + ": it " + *problem);
  }
  exec(handle(), path_, "enabling foreign keys", "PRAGMA foreign_keys=ON");
  migrate();
}

TuningDb::~TuningDb() = default;
TuningDb::TuningDb(TuningDb&&) noexcept = default;
TuningDb& TuningDb::operator=(TuningDb&&) noexcept = default;

sqlite3* TuningDb::handle() const {
  if (!db_) throw Error(ErrorCode::kDatabaseError, "use of a moved-from TuningDb (" + path_ + ")");
  return db_.get();
}

std::optional<std::string> TuningDb::inspect() {
  sqlite3* db = handle();
  std::int64_t application_id = 0;
  std::int64_t user_version = 0;
  std::int64_t tables = 0;
  std::string quick_check = "ok";
  // One read transaction: the header fields and the schema are read from the same committed state, never half
  // from before and half from after another process's commit.
  exec(db, path_, "inspecting (BEGIN)", "BEGIN");
  try {
    application_id = query_integer(db, path_, "reading application_id", "PRAGMA application_id");
    user_version = query_integer(db, path_, "reading user_version", "PRAGMA user_version");
    tables = query_integer(db, path_, "listing tables", "SELECT count(*) FROM sqlite_schema");
    Statement check(db, path_, "quick_check", "PRAGMA quick_check");
    if (check.step()) quick_check = check.text(0);
  } catch (const SqliteError& e) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    if (e.primary_code() == SQLITE_NOTADB) return "is not a SQLite database";
    if (e.primary_code() == SQLITE_CORRUPT) return "is corrupt (" + e.sqlite_message() + ")";
    throw;
  }
  exec(db, path_, "inspecting (COMMIT)", "COMMIT");
  if (quick_check != "ok") return "failed PRAGMA quick_check (" + quick_check + ")";
  const bool fresh = tables == 0 && user_version == 0 && (application_id == 0 || application_id == kApplicationId);
  if (fresh) return std::nullopt;
  if (application_id != kApplicationId || user_version < 1) {
    return "is not a swajit tuning database (application_id " + std::to_string(application_id) + ", user_version " +
           std::to_string(user_version) + ")";
  }
  if (user_version > kSchemaVersion) {  // checked before the caller may move anything aside
    throw Error(ErrorCode::kDatabaseError, "opening failed on " + path_ + ": its schema version " +
                                               std::to_string(user_version) + " is newer than version " +
                                               std::to_string(kSchemaVersion) +
                                               " known to this swajit; upgrade swajit or use another SWAJIT_DB");
  }
  return std::nullopt;
}

void TuningDb::migrate() {
  // Checked outside a transaction first so an up-to-date database never takes the write lock on open.
  if (schema_version() == kSchemaVersion) return;
  in_transaction("migrating the schema", [&] {
    // Read again under the write lock: another process may have migrated in the meantime.
    for (int version = schema_version(); version < kSchemaVersion; ++version) {
      exec(handle(), path_, "migration to schema version " + std::to_string(version + 1), kMigrations[version]);
    }
    // PRAGMA arguments cannot be bound; these are our own integer constants, not values from outside.
    exec(handle(), path_, "setting user_version", ("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str());
    exec(handle(), path_, "setting application_id",
         ("PRAGMA application_id = " + std::to_string(kApplicationId)).c_str());
  });
}

void TuningDb::in_transaction(std::string_view what, const std::function<void()>& body) {
  sqlite3* db = handle();
  // BEGIN IMMEDIATE takes the write lock before anything runs, so the busy timeout covers the whole wait and no
  // statement inside can hit SQLITE_BUSY halfway; retrying a BEGIN that timed out is safe as nothing ran yet.
  for (int attempt = 1;; ++attempt) {
    const int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) break;
    if ((rc & 0xff) != SQLITE_BUSY || attempt == kBeginAttempts) fail(db, path_, std::string(what) + " (BEGIN)", rc);
  }
  try {
    body();
    exec(db, path_, std::string(what) + " (COMMIT)", "COMMIT");
  } catch (...) {
    // Ignoring the result: SQLite may already have rolled back on its own after the error.
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int TuningDb::schema_version() const {
  return static_cast<int>(query_integer(handle(), path_, "reading user_version", "PRAGMA user_version"));
}

// ---- Devices --------------------------------------------------------------------------------------------------

namespace {
// Shared by upsert_device and import_json; `replace` chooses between updating and keeping an existing row.
bool write_device(sqlite3* db, const std::string& path, const DeviceRecord& d, bool replace) {
  // ON CONFLICT ... DO UPDATE rather than INSERT OR REPLACE: REPLACE deletes the row, which the winners' foreign
  // key forbids.
  const std::string sql = std::string("INSERT INTO devices (") + kDeviceColumns +
                          ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (sku) DO " +
                          (replace ? "UPDATE SET name = ?2, backend = ?3, cc_major = ?4, cc_minor = ?5, sm_count = ?6, "
                                     "memory_bytes = ?7, driver_version = ?8, compiler_version = ?9, extra = ?10"
                                   : "NOTHING");
  return Statement(db, path, "storing device " + d.sku, sql)
             .bind(d.sku, d.name, d.backend, d.cc_major, d.cc_minor, d.sm_count, d.memory_bytes, d.driver_version,
                   d.compiler_version, d.extra.dump())
             .run() > 0;
}

// Shared by put_winner and import_json: one statement, so the faster-check and the write cannot interleave with
// another writer.
bool write_winner(sqlite3* db, const std::string& path, const WinnerRecord& w, WinnerPolicy policy) {
  const std::string sql =
      std::string("INSERT INTO winners (") + kWinnerColumns +
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (device_sku, spec_key, bucket) DO UPDATE SET "
      "config_json = ?4, time_us = ?5, samples = ?6, created_at = ?7, tool_version = ?8, origin = ?9 "
      "WHERE ?10 OR ?5 < winners.time_us";
  return Statement(db, path, "storing winner " + w.spec_key + " / " + w.bucket, sql)
             .bind(w.device_sku, w.spec_key, w.bucket, w.config.dump(), w.time_us, w.samples, or_now(w.created_at),
                   w.tool_version, w.origin, policy == WinnerPolicy::kReplace)
             .run() > 0;
}
}  // namespace

void TuningDb::upsert_device(const DeviceRecord& device) {
  validate(device, "device");
  write_device(handle(), path_, device, /*replace=*/true);
}

std::optional<DeviceRecord> TuningDb::get_device(const std::string& sku) const {
  Statement s(handle(), path_, "reading device " + sku,
              std::string("SELECT ") + kDeviceColumns + " FROM devices WHERE sku = ?1");
  s.bind(sku);
  if (!s.step()) return std::nullopt;
  return read_device(s, path_);
}

std::vector<DeviceRecord> TuningDb::list_devices() const {
  Statement s(handle(), path_, "listing devices",
              std::string("SELECT ") + kDeviceColumns + " FROM devices ORDER BY sku");
  std::vector<DeviceRecord> out;
  while (s.step()) out.push_back(read_device(s, path_));
  return out;
}

// ---- Winners --------------------------------------------------------------------------------------------------

bool TuningDb::put_winner(const WinnerRecord& winner, WinnerPolicy policy) {
  validate(winner, "winner");
  return write_winner(handle(), path_, winner, policy);
}

std::optional<WinnerRecord> TuningDb::get_winner(const std::string& device_sku, const std::string& spec_key,
                                                 const std::string& bucket) const {
  Statement s(handle(), path_, "reading winner " + spec_key + " / " + bucket,
              std::string("SELECT ") + kWinnerColumns +
                  " FROM winners WHERE device_sku = ?1 AND spec_key = ?2 AND bucket = ?3");
  s.bind(device_sku, spec_key, bucket);
  if (!s.step()) return std::nullopt;
  return read_winner(s, path_);
}

std::vector<WinnerRecord> TuningDb::list_winners(const std::optional<std::string>& device_sku) const {
  Statement s(handle(), path_, "listing winners",
              std::string("SELECT ") + kWinnerColumns +
                  " FROM winners WHERE ?1 IS NULL OR device_sku = ?1 ORDER BY device_sku, spec_key, bucket");
  s.bind(device_sku);
  std::vector<WinnerRecord> out;
  while (s.step()) out.push_back(read_winner(s, path_));
  return out;
}

// ---- Trials ---------------------------------------------------------------------------------------------------

std::int64_t TuningDb::add_trial(const TrialRecord& trial) {
  validate(trial, "trial");
  Statement s(handle(), path_, "storing trial",
              "INSERT INTO trials (device_sku, spec_key, bucket, config_json, time_us, status, detail, created_at) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  s.bind(trial.device_sku, trial.spec_key, trial.bucket, trial.config.dump(), trial.time_us,
         trial_status_name(trial.status), trial.detail, or_now(trial.created_at))
      .run();
  return sqlite3_last_insert_rowid(handle());
}

std::int64_t TuningDb::count_trials(const TrialFilter& filter) const {
  std::optional<std::string> status;
  if (filter.status) status = trial_status_name(*filter.status);
  Statement s(handle(), path_, "counting trials",
              "SELECT count(*) FROM trials WHERE (?1 IS NULL OR device_sku = ?1) AND (?2 IS NULL OR spec_key = ?2) "
              "AND (?3 IS NULL OR bucket = ?3) AND (?4 IS NULL OR status = ?4)");
  s.bind(filter.device_sku, filter.spec_key, filter.bucket, status);
  return s.step() ? s.integer(0) : 0;
}

std::vector<TrialRecord> TuningDb::list_trials(const std::string& device_sku, const std::string& spec_key,
                                               const std::string& bucket) const {
  Statement s(handle(), path_, "listing trials",
              std::string("SELECT ") + kTrialColumns +
                  " FROM trials WHERE device_sku = ?1 AND spec_key = ?2 AND bucket = ?3 ORDER BY id");
  s.bind(device_sku, spec_key, bucket);
  std::vector<TrialRecord> out;
  while (s.step()) out.push_back(read_trial(s, path_));
  return out;
}

// ---- Binaries -------------------------------------------------------------------------------------------------

void TuningDb::put_binary(const BinaryRecord& binary) {
  validate(binary, "binary");
  // The hash names the content, so replacing a row with the same hash only refreshes it.
  Statement(handle(), path_, "storing binary " + binary.hash,
            std::string("INSERT OR REPLACE INTO binaries (") + kBinaryColumns +
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
      .bind(binary.hash, binary.arch, binary.compiler_version, binary.driver_version, Blob(binary.blob),
            or_now(binary.created_at), binary.blob.size(), sha256_hex(binary.blob))
      .run();
}

std::optional<BinaryRecord> TuningDb::get_binary(const std::string& hash) const {
  BinaryRecord binary;
  {
    Statement s(handle(), path_, "reading binary " + hash,
                std::string("SELECT ") + kBinaryColumns + " FROM binaries WHERE hash = ?1");
    s.bind(hash);
    if (!s.step()) return std::nullopt;
    binary = read_binary(s);
  }
  if (sha256_hex(binary.blob) == binary.sha256) return binary;
  // A flipped bit in a stored kernel could crash the process or compute wrong results: the row goes, and the
  // caller, seeing no binary, recompiles and stores a good one.
  std::string removal = "discarded it; it will be recompiled";
  try {
    Statement(handle(), path_, "discarding binary " + hash, "DELETE FROM binaries WHERE hash = ?1").bind(hash).run();
  } catch (const Error& e) {  // e.g. a read-only file: the binary is still not used
    removal = std::string("could not discard it (") + e.what() + "); not using it";
  }
  std::cerr << "swajit: warning: binary " << hash << " in " << path_ << " fails its SHA-256 check (damaged); "
            << removal << "\n";
  return std::nullopt;
}

std::int64_t TuningDb::drop_binaries_not_matching(std::int64_t compiler_version, std::int64_t driver_version) {
  return Statement(handle(), path_, "dropping stale binaries",
                   "DELETE FROM binaries WHERE compiler_version != ?1 OR driver_version != ?2")
      .bind(compiler_version, driver_version)
      .run();
}

std::vector<TuningDb::BinaryVersions> TuningDb::binary_versions() const {
  Statement s(handle(), path_, "counting binaries by version",
              "SELECT arch, compiler_version, driver_version, count(*) FROM binaries "
              "GROUP BY arch, compiler_version, driver_version ORDER BY arch, compiler_version, driver_version");
  std::vector<BinaryVersions> out;
  while (s.step()) out.push_back({s.text(0), s.integer(1), s.integer(2), s.integer(3)});
  return out;
}

// ---- Progress -------------------------------------------------------------------------------------------------

void TuningDb::mark_progress(const std::string& job_id, const std::string& item_key) {
  Statement(handle(), path_, "marking progress of " + job_id,
            "INSERT INTO tuning_progress (job_id, item_key, done) VALUES (?1, ?2, 1) "
            "ON CONFLICT (job_id, item_key) DO UPDATE SET done = 1")
      .bind(job_id, item_key)
      .run();
}

bool TuningDb::is_done(const std::string& job_id, const std::string& item_key) const {
  Statement s(handle(), path_, "reading progress of " + job_id,
              "SELECT done FROM tuning_progress WHERE job_id = ?1 AND item_key = ?2");
  s.bind(job_id, item_key);
  return s.step() && s.integer(0) != 0;
}

void TuningDb::clear_progress(const std::string& job_id) {
  Statement(handle(), path_, "clearing progress of " + job_id, "DELETE FROM tuning_progress WHERE job_id = ?1")
      .bind(job_id)
      .run();
}

// ---- Export / import / merge ----------------------------------------------------------------------------------

nlohmann::json TuningDb::export_json(const std::optional<std::string>& device_sku) const {
  json devices = json::array();
  {
    Statement s(handle(), path_, "exporting devices",
                std::string("SELECT ") + kDeviceColumns + " FROM devices WHERE ?1 IS NULL OR sku = ?1 ORDER BY sku");
    s.bind(device_sku);
    while (s.step()) devices.push_back(to_json(read_device(s, path_)));
  }
  json winners = json::array();
  for (const WinnerRecord& w : list_winners(device_sku)) winners.push_back(to_json(w));
  return {{"format", kExportFormat}, {"version", kExportFormatVersion}, {"devices", devices}, {"winners", winners}};
}

ImportStats TuningDb::import_json(const nlohmann::json& document, const std::string& origin, WinnerPolicy policy) {
  // 1. Check the whole file without touching the database.
  if (!document.is_object()) throw Error(ErrorCode::kInvalidArgument, "import: the document must be a JSON object");
  if (document.value("format", json()) != kExportFormat) {
    throw Error(ErrorCode::kInvalidArgument, std::string("import: \"format\" must be \"") + kExportFormat + "\"");
  }
  const json version = document.value("version", json());
  if (!version.is_number_integer() || version.get<std::int64_t>() < 1 ||
      version.get<std::int64_t>() > kExportFormatVersion) {
    throw Error(ErrorCode::kInvalidArgument, "import: \"version\" must be an integer from 1 to " +
                                                 std::to_string(kExportFormatVersion) + " (got " + version.dump() +
                                                 ")");
  }
  std::vector<DeviceRecord> devices;
  std::set<std::string> known_skus;  // the file's devices, plus those found in the database below
  const json& device_entries = array_member(document, "devices");
  for (std::size_t i = 0; i < device_entries.size(); ++i) {
    devices.push_back(device_from_json(Entry(device_entries[i], "import: devices[" + std::to_string(i) + "]")));
    known_skus.insert(devices.back().sku);
  }
  std::vector<WinnerRecord> winners;
  const json& winner_entries = array_member(document, "winners");
  for (std::size_t i = 0; i < winner_entries.size(); ++i) {
    winners.push_back(winner_from_json(Entry(winner_entries[i], "import: winners[" + std::to_string(i) + "]")));
    if (!origin.empty()) winners.back().origin = origin;
  }

  // 2. Write everything in one transaction; the device check reads the database under the same lock.
  ImportStats stats;
  in_transaction("importing", [&] {
    for (std::size_t i = 0; i < winners.size(); ++i) {
      const std::string& sku = winners[i].device_sku;
      if (known_skus.contains(sku)) continue;
      if (!get_device(sku)) {
        invalid("import: winners[" + std::to_string(i) + "]", "device_sku",
                "names device \"" + sku + "\", which is neither in the file's devices nor in the database");
      }
      known_skus.insert(sku);
    }
    for (const DeviceRecord& d : devices) stats.devices += write_device(handle(), path_, d, /*replace=*/false);
    for (const WinnerRecord& w : winners) {
      if (write_winner(handle(), path_, w, policy)) {
        ++stats.winners_added;
      } else {
        ++stats.winners_kept_existing;
      }
    }
  });
  return stats;
}

ImportStats TuningDb::merge_from(const std::string& other_db_path) {
  const json snapshot = TuningDb(SnapshotTag{}, other_db_path).export_json();
  return import_json(snapshot, "merged from " + other_db_path, WinnerPolicy::kKeepFaster);
}

// ---- Maintenance ----------------------------------------------------------------------------------------------

std::vector<std::string> TuningDb::verify() const {
  std::vector<std::string> problems;
  sqlite3* db = handle();
  {
    Statement s(db, path_, "integrity_check", "PRAGMA integrity_check");
    while (s.step()) {
      if (s.text(0) != "ok") problems.push_back("integrity_check: " + s.text(0));
    }
  }
  const auto winner_name = [](const Statement& s) {
    return "winner (" + s.text(0) + ", " + s.text(1) + ", " + s.text(2) + ")";
  };
  {
    Statement s(db, path_, "checking winner configs", "SELECT device_sku, spec_key, bucket, config_json FROM winners");
    while (s.step()) {
      const json config = json::parse(s.text(3), nullptr, /*allow_exceptions=*/false);
      if (config.is_discarded() || !config.is_object()) {
        problems.push_back(winner_name(s) + ": config_json is not a JSON object: " + s.text(3));
      }
    }
  }
  {
    Statement s(db, path_, "checking winner devices",
                "SELECT device_sku, spec_key, bucket FROM winners WHERE device_sku NOT IN (SELECT sku FROM devices)");
    while (s.step()) problems.push_back(winner_name(s) + ": unknown device");
  }
  {
    Statement s(db, path_, "checking binary sizes",
                "SELECT hash, size, length(blob) FROM binaries WHERE size IS NOT length(blob)");
    while (s.step()) {
      problems.push_back("binary " + s.text(0) + ": size column " + s.text(1) + " but blob has " + s.text(2) +
                         " bytes");
    }
  }
  {
    Statement s(db, path_, "checking binary checksums", "SELECT hash, blob, sha256 FROM binaries ORDER BY hash");
    while (s.step()) {
      const std::string actual = sha256_hex(s.blob(1));
      if (actual != s.text(2)) {
        problems.push_back("binary " + s.text(0) + ": SHA-256 of the blob is " + actual + " but the stored one is \"" +
                           s.text(2) + "\" (damaged; the next use discards and recompiles it)");
      }
    }
  }
  return problems;
}

void TuningDb::vacuum() { exec(handle(), path_, "VACUUM", "VACUUM"); }

DbStats TuningDb::stats() const {
  DbStats out;
  out.schema_version = schema_version();
  Statement s(handle(), path_, "counting rows",
              "SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM winners), (SELECT count(*) FROM trials), "
              "(SELECT count(*) FROM binaries), (SELECT count(*) FROM tuning_progress)");
  if (s.step()) {
    out.devices = s.integer(0);
    out.winners = s.integer(1);
    out.trials = s.integer(2);
    out.binaries = s.integer(3);
    out.progress_items = s.integer(4);
  }
  std::error_code ec;
  const std::uintmax_t bytes = fs::file_size(path_, ec);
  out.file_bytes = ec ? 0 : bytes;
  return out;
}

}  // namespace swajit::db
