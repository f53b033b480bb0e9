// swajit: the SQLite tuning database -- devices, autotuning winners and trials, compiled binaries and the
// progress of interrupted tuning jobs. One file per user (default_path()), safe to share between processes.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace swajit::db {

// One GPU (or CPU) model. `sku` is a stable identifier chosen by the caller (e.g. "cuda:NVIDIA H100 80GB HBM3:sm90").
struct DeviceRecord {
  std::string sku;
  std::string name;
  std::string backend;  // "cuda" or "cpu"
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
  std::int64_t memory_bytes = 0;
  std::int64_t driver_version = 0;                  // e.g. 12040 as reported by cuDriverGetVersion
  std::int64_t compiler_version = 0;                // e.g. NVRTC major * 1000 + minor * 10
  nlohmann::json extra = nlohmann::json::object();  // anything else worth keeping; always a JSON object
  friend bool operator==(const DeviceRecord&, const DeviceRecord&) = default;
};

// The best config found for (device, spec, bucket). `bucket` groups problem sizes that share a winner.
struct WinnerRecord {
  std::string device_sku;
  std::string spec_key;
  std::string bucket;
  nlohmann::json config = nlohmann::json::object();  // always a JSON object
  double time_us = 0.0;                              // finite, >= 0
  std::int64_t samples = 1;                          // timed runs behind time_us, >= 1
  std::string created_at;                            // ISO-8601 UTC; empty means "now" when stored
  std::string tool_version;
  std::string origin;  // where the row came from: "tuned on host X", "merged from file.db", ...
  friend bool operator==(const WinnerRecord&, const WinnerRecord&) = default;
};

enum class TrialStatus { kOk, kRejectedWrong, kRejectedResources, kCompileFailed };
const char* trial_status_name(TrialStatus status);  // "ok", "rejected_wrong", "rejected_resources", "compile_failed"
TrialStatus parse_trial_status(std::string_view name);  // throws kInvalidArgument for any other name

// One measured (or rejected) candidate config, kept for analysis; winners are derived from these by the tuner.
struct TrialRecord {
  std::int64_t id = 0;  // assigned by add_trial
  std::string device_sku;
  std::string spec_key;
  std::string bucket;
  nlohmann::json config = nlohmann::json::object();
  std::optional<double> time_us;  // empty when the config was rejected or failed to compile
  TrialStatus status = TrialStatus::kOk;
  std::string detail;      // why it was rejected, the compiler log excerpt, ...
  std::string created_at;  // ISO-8601 UTC; empty means "now" when stored
  friend bool operator==(const TrialRecord&, const TrialRecord&) = default;
};

// A compiled kernel. `hash` is computed by the caller (the runtime: source + options + target, not the compiler version).
struct BinaryRecord {
  std::string hash;
  std::string arch;  // e.g. "sm_90a"
  std::int64_t compiler_version = 0;
  std::int64_t driver_version = 0;
  std::vector<std::uint8_t> blob;
  std::string created_at;  // ISO-8601 UTC; empty means "now" when stored
  std::int64_t size = 0;   // the blob's length; put_binary fills it in from blob, get_binary reads the column
  std::string sha256;      // of blob, in hex; put_binary computes it, get_binary returns only a blob that matches
  friend bool operator==(const BinaryRecord&, const BinaryRecord&) = default;
};

enum class WinnerPolicy {
  kKeepFaster,  // store the new winner only if there is none yet or it is strictly faster
  kReplace,     // always store the new winner
};

struct ImportStats {
  std::int64_t devices = 0;                // devices new to this DB (existing device rows are left as they are)
  std::int64_t winners_added = 0;          // winners stored (new keys, or faster / forced replacements)
  std::int64_t winners_kept_existing = 0;  // winners skipped because the DB's row was kept
};

struct DbStats {
  int schema_version = 0;
  std::int64_t devices = 0;
  std::int64_t winners = 0;
  std::int64_t trials = 0;
  std::int64_t binaries = 0;
  std::int64_t progress_items = 0;
  std::uintmax_t file_bytes = 0;  // the main database file on disk (the WAL file is not included)
};

struct TrialFilter {  // empty fields match everything
  std::optional<std::string> device_sku = std::nullopt;
  std::optional<std::string> spec_key = std::nullopt;
  std::optional<std::string> bucket = std::nullopt;
  std::optional<TrialStatus> status = std::nullopt;
};

// Every failure throws swajit::Error: kDatabaseError for SQLite / file problems, kInvalidArgument for bad records
// or bad import files. Each TuningDb owns one SQLite connection; use one object per thread.
class TuningDb {
 public:
  // $SWAJIT_DB, else $XDG_CACHE_HOME/swajit/tuning.db, else $HOME/.cache/swajit/tuning.db.
  static std::string default_path();
  // The schema version this build creates and understands.
  static int latest_schema_version();

  // Opens or creates the database, creating its parent directory. A file that is not a SQLite database, fails
  // PRAGMA quick_check, or is somebody else's SQLite database is renamed to "<path>.corrupt-<unix time>" (with a
  // warning on stderr naming the new path, also returned by moved_aside()) and a new one is created. A database
  // from a newer swajit throws and is left untouched. Opening is serialized between processes by an flock on
  // "<path>.lock" (left next to the file), so concurrent first opens of a new file create it once. A read-only
  // file opens for reading; every write then throws kDatabaseError saying the file is read-only.
  //
  // OpenCheck::kHeader (the runtime's warm start): a file that exists, is writable and whose header already says it
  // is a swajit database of this schema version is used at once, without the lock, the quick_check (a read of every
  // page: milliseconds for a database holding binaries) or migrations; anything else takes the full path above.
  // Damage found later surfaces as kDatabaseError from the call that read it; binaries are still checked against
  // their SHA-256 before use, and `swajit db verify` runs the full integrity check.
  enum class OpenCheck { kFull, kHeader };
  explicit TuningDb(const std::string& path, OpenCheck check = OpenCheck::kFull);
  ~TuningDb();
  TuningDb(TuningDb&&) noexcept;
  TuningDb& operator=(TuningDb&&) noexcept;
  TuningDb(const TuningDb&) = delete;
  TuningDb& operator=(const TuningDb&) = delete;

  const std::string& path() const { return path_; }
  int schema_version() const;  // PRAGMA user_version of the open file
  // Set when opening moved a damaged or foreign file aside: one sentence naming the problem and the new path.
  const std::optional<std::string>& moved_aside() const { return moved_aside_; }

  // Devices.
  void upsert_device(const DeviceRecord& device);
  std::optional<DeviceRecord> get_device(const std::string& sku) const;
  std::vector<DeviceRecord> list_devices() const;

  // Winners. The device must exist. Returns whether the row was stored (false: the existing one was kept).
  bool put_winner(const WinnerRecord& winner, WinnerPolicy policy = WinnerPolicy::kKeepFaster);
  std::optional<WinnerRecord> get_winner(const std::string& device_sku, const std::string& spec_key,
                                         const std::string& bucket) const;
  std::vector<WinnerRecord> list_winners(const std::optional<std::string>& device_sku = std::nullopt) const;

  // Trials. add_trial returns the new row's id. The device must exist.
  std::int64_t add_trial(const TrialRecord& trial);
  std::int64_t count_trials(const TrialFilter& filter = {}) const;
  std::vector<TrialRecord> list_trials(const std::string& device_sku, const std::string& spec_key,
                                       const std::string& bucket) const;

  // Compiled binaries, keyed by the caller's hash. The runtime loads one whatever compiler built it and recompiles
  // it when the driver refuses it; drop_binaries_not_matching removes those of another compiler or driver (so they
  // get recompiled) and returns how many were removed. get_binary checks the stored SHA-256: a damaged blob is
  // deleted (with a warning on stderr) and reported as missing, so the caller recompiles and stores it again.
  void put_binary(const BinaryRecord& binary);
  std::optional<BinaryRecord> get_binary(const std::string& hash) const;
  std::int64_t drop_binaries_not_matching(std::int64_t compiler_version, std::int64_t driver_version);
  // How many binaries each (arch, compiler version, driver version) built, without reading the blobs.
  struct BinaryVersions {
    std::string arch;
    std::int64_t compiler_version = 0;
    std::int64_t driver_version = 0;
    std::int64_t count = 0;
  };
  std::vector<BinaryVersions> binary_versions() const;

  // Resumable jobs: a tuner marks each finished item and skips those already done after a restart.
  void mark_progress(const std::string& job_id, const std::string& item_key);
  bool is_done(const std::string& job_id, const std::string& item_key) const;
  void clear_progress(const std::string& job_id);

  // Sharing results: {"format":"swajit-tuning-db","version":1,"devices":[...],"winners":[...]}.
  // Binaries, trials and progress stay local.
  nlohmann::json export_json(const std::optional<std::string>& device_sku = std::nullopt) const;
  // Checks every entry before writing anything, then writes in one transaction; a bad file throws
  // kInvalidArgument naming the entry and field. Stored winners get `origin` (the file's own origin when empty).
  ImportStats import_json(const nlohmann::json& document, const std::string& origin,
                          WinnerPolicy policy = WinnerPolicy::kKeepFaster);
  // Reads another database (never modifying it) and keeps the faster winner per key; rows taken from it get
  // origin "merged from <path>".
  ImportStats merge_from(const std::string& other_db_path);

  // Problems found, one line each; empty means healthy.
  std::vector<std::string> verify() const;
  void vacuum();
  DbStats stats() const;

 private:
  struct Closer {
    void operator()(sqlite3* db) const noexcept;
  };
  struct SnapshotTag {};

  TuningDb(SnapshotTag, const std::string& path);  // in-memory copy of `path`, for merge_from
  sqlite3* handle() const;
  std::optional<std::string> inspect();  // why the open file cannot be used as ours; throws if it is too new
  bool open_read_write();                // opens path_; false if the file is write-protected (opened read-only)
  bool open_if_current();                // the kHeader path: true if path_ is ours, writable and up to date
  void migrate();
  void in_transaction(std::string_view what, const std::function<void()>& body);

  std::string path_;
  std::unique_ptr<sqlite3, Closer> db_;
  std::optional<std::string> moved_aside_;
};

}  // namespace swajit::db
