#include "sqlite_db.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>

#include "ordo_sql/migrations.h"

namespace ordo::sqlite {
namespace {

// Idle connections kept per Database; more are opened under load and closed when returned.
constexpr std::size_t kMaxIdleConnections = 8;

std::string Quoted(std::string_view path) { return "'" + std::string(path) + "'"; }

// Refuses, with a message naming the path, what SQLite would only report as "unable to open
// database file": a missing directory, a directory where the file should be.
Status CheckLocation(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    return InvalidArgumentError("directory " + Quoted(dir) + " of sqlite database " +
                                Quoted(path) + " cannot be used: " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return InvalidArgumentError(Quoted(dir) + " (for sqlite database " + Quoted(path) +
                                ") is not a directory");
  }
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return InvalidArgumentError("sqlite database " + Quoted(path) + " is a directory");
  }
  return OkStatus();
}

// Lockers of one file in this process share one FileShared, found by device and inode (two
// spellings of a path are one file; a file replaced under the same name is another).
std::shared_ptr<FileShared> SharedFor(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::make_shared<FileShared>();
  static std::mutex* mu = new std::mutex;  // never destroyed: usable during static destruction
  static auto* table = new std::map<std::pair<dev_t, ino_t>, std::weak_ptr<FileShared>>;
  std::lock_guard<std::mutex> lock(*mu);
  for (auto it = table->begin(); it != table->end();) {
    it = it->second.expired() ? table->erase(it) : std::next(it);
  }
  auto& slot = (*table)[{st.st_dev, st.st_ino}];
  auto shared = slot.lock();
  if (shared == nullptr) {
    shared = std::make_shared<FileShared>();
    slot = shared;
  }
  return shared;
}

// The busy handler: busy_timeout's contract (give up after kBusyTimeout) with fine polling.
// SQLite's file locks do not queue; its default handler sleeps up to 100 ms between tries, and
// a process that takes the write lock back to back (release, then acquire at once) leaves a
// free window of microseconds, so a slow poller in another process starves and times out.
// Polling every 0.1–1 ms (jittered, so pollers do not move in step) finds those windows.
int BusyWait(void* /*unused*/, int count) {
  thread_local std::chrono::steady_clock::time_point started;
  thread_local std::minstd_rand jitter(std::random_device{}());
  const auto now = std::chrono::steady_clock::now();
  if (count == 0) started = now;  // a new wait (a connection is used by one thread at a time)
  if (now - started >= kBusyTimeout) return 0;
  const unsigned half_us = count < 10 ? 100 : 500;
  std::this_thread::sleep_for(std::chrono::microseconds(half_us + jitter() % (half_us + 1)));
  return 1;
}

// Brings the schema to the newest embedded migration. BEGIN IMMEDIATE makes it safe for several
// processes opening a new database at the same moment: the first to get the write lock
// migrates; the others wait for it (busy_timeout), then read the version again inside their own
// transaction and find nothing to do.
// 0 for a new database (no schema_migrations table yet).
Result<int> SchemaVersion(Connection& conn) {
  auto has_table = conn.QueryInt(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", "schema_migrations");
  if (!has_table.ok()) return has_table.status();
  if (*has_table == 0) return 0;
  auto version = conn.QueryInt("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!version.ok()) return version.status();
  return static_cast<int>(*version);
}

Status NewerSchema(const std::string& path, int found, int newest) {
  return InvalidArgumentError("sqlite database " + Quoted(path) + " has schema version " +
                              std::to_string(found) + ", newer than the newest this ordo knows (" +
                              std::to_string(newest) +
                              "); upgrade ordo to use it (it is never downgraded)");
}

Status ApplyMigrations(Connection& conn, MigrationReport& report) {
  const auto migrations = sql::SqliteMigrations();
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  // The common case, a current schema, needs no write lock: a process opening a busy database
  // must not queue behind its writers just to learn that.
  auto seen = SchemaVersion(conn);
  if (!seen.ok()) return seen.status();
  report.from_version = report.to_version = *seen;
  if (*seen > newest) return NewerSchema(conn.path(), *seen, newest);
  if (*seen == newest) return OkStatus();
  ORDO_RETURN_IF_ERROR(conn.Exec("BEGIN IMMEDIATE", "begin the schema migration"));
  Status status = [&]() -> Status {
    // Again under the write lock: another process may have migrated since the read above.
    auto version = SchemaVersion(conn);
    if (!version.ok()) return version.status();
    const int current = *version;
    report.from_version = current;
    report.to_version = current;
    if (current > newest) return NewerSchema(conn.path(), current, newest);
    for (const auto& m : migrations) {
      if (m.version <= current) continue;
      ORDO_RETURN_IF_ERROR(conn.Exec(m.sql, "apply migration " + std::string(m.name)));
      auto record = conn.Prepare(
          "INSERT INTO schema_migrations (version, name, applied_at) "
          "VALUES (?1, ?2, " ORDO_SQLITE_NOW ")");
      if (!record.ok()) return record.status();
      ORDO_RETURN_IF_ERROR(record->Bind(1, m.version).BindText(2, m.name).Run());
      report.applied.emplace_back(m.name);
      report.to_version = m.version;
    }
    return OkStatus();
  }();
  if (!status.ok()) {
    conn.Exec("ROLLBACK", "roll back the schema migration").IgnoreError();
    return status;
  }
  return conn.Exec("COMMIT", "commit the schema migration");
}

}  // namespace

Status SqliteError(int rc, sqlite3* db, std::string_view path, std::string_view context) {
  // sqlite3_errmsg describes the connection's last error, which is `rc` unless rc came from
  // elsewhere (sqlite3_open_v2 failing before a handle exists, a bind).
  const bool same = db != nullptr && sqlite3_extended_errcode(db) == rc;
  std::string message = "sqlite database " + Quoted(path) + ": " + std::string(context) + ": " +
                        (same ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  // "unable to open database file" says nothing of why; the OS error does.
  if (db != nullptr && sqlite3_system_errno(db) != 0 && (rc & 0xff) == SQLITE_CANTOPEN) {
    message += std::string(" (") + std::strerror(sqlite3_system_errno(db)) + ")";
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(message + " (still locked by another connection after " +
                              std::to_string(kBusyTimeout.count()) + "ms)");
    case SQLITE_READONLY:
      if (rc == SQLITE_READONLY_DBMOVED) return UnavailableError(message);
      return InvalidArgumentError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_TOOBIG:
      return InvalidArgumentError(message);
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
    case SQLITE_INTERRUPT:
    case SQLITE_NOLFS:
      return UnavailableError(message);
    default:  // SQLITE_CORRUPT, SQLITE_CONSTRAINT (a schema bug), SQLITE_NOMEM, SQLITE_MISUSE…
      return InternalError(message);
  }
}

// ---------------------------------------------------------------------------------------------

Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Statement& Statement::Bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindText(int index, std::string_view value) {
  // A null pointer would bind SQL NULL; "" binds the empty string.
  const int rc = sqlite3_bind_text64(stmt_, index, value.empty() ? "" : value.data(),
                                     value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view value) {
  const int rc = sqlite3_bind_blob64(stmt_, index, value.empty() ? "" : value.data(),
                                     value.size(), SQLITE_TRANSIENT);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  return *this;
}

Result<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) return conn_->Error(bind_rc_, "bind a parameter");
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return conn_->Error(rc, "run statement");
}

Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return OkStatus();
  }
}

std::string Statement::Bytes(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path) {
  ORDO_RETURN_IF_ERROR(CheckLocation(path));
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteError(rc, db, path, "open");
    sqlite3_close_v2(db);  // a handle is allocated even on failure (or null: a no-op)
    return s;
  }
  std::unique_ptr<Connection> conn(new Connection(db, path));
  ORDO_RETURN_IF_ERROR(conn->Configure());
  return conn;
}

Status Connection::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  // Before anything that takes a lock: even switching to WAL waits for other processes.
  sqlite3_busy_handler(db_, &BusyWait, nullptr);
  // journal_mode=WAL is stored in the file; the first connection switches it, later ones find
  // it set. It answers with the mode in force, which is not "wal" where WAL cannot work.
  // Switching a new file to WAL while another process opens it can fail with SQLITE_BUSY at
  // once, without the busy handler (a rollback-journal lock upgrade that would deadlock): retry
  // it under the same timeout.
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  std::string got;
  while (true) {
    auto mode = Prepare("PRAGMA journal_mode = WAL");
    if (!mode.ok()) return mode.status();
    auto row = mode->Step();
    if (row.ok()) {
      got = *row ? mode->Bytes(0) : "";
      break;
    }
    const int code = sqlite3_extended_errcode(db_) & 0xff;
    if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) ||
        std::chrono::steady_clock::now() >= deadline) {
      return row.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (got != "wal") {
    return InvalidArgumentError("sqlite database " + Quoted(path_) +
                                " cannot use write-ahead logging (journal_mode is '" + got +
                                "'); put it on a local file system");
  }
  // synchronous=FULL and foreign_keys=ON are per connection (see sqlite_db.h for why).
  return Exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", "configure the connection");
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Result<Statement> Connection::Prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "prepare a statement");
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(it->second, this);
}

Result<std::int64_t> Connection::QueryInt(const char* sql, std::string_view key,
                                          std::int64_t absent) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  if (sqlite3_bind_parameter_count(stmt->handle()) > 0) stmt->BindText(1, key);
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  return *row ? stmt->Int(0) : absent;
}

Status Connection::Exec(std::string_view sql, std::string_view context) {
  const std::string text(sql);  // sqlite3_exec needs a terminating NUL
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, context);
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------

Result<std::shared_ptr<Database>> Database::Open(const std::string& path,
                                                 MigrationReport* report) {
  auto conn = Connection::Open(path);
  if (!conn.ok()) return conn.status();
  std::shared_ptr<Database> db(new Database(path, SharedFor(path)));
  MigrationReport local;
  MigrationReport& out = report != nullptr ? *report : local;
  out.path = path;
  {
    std::lock_guard<std::mutex> writer(db->shared_->group.writer());
    ORDO_RETURN_IF_ERROR(ApplyMigrations(**conn, out));
  }
  if (!out.applied.empty()) {
    std::string names;
    for (const auto& n : out.applied) names += (names.empty() ? "" : ", ") + n;
    // debug, not info: spdlog's default logger writes to stdout, which belongs to the program
    // (`ordo lock` prints JSON there). Migrate() returns the same facts to whoever reports them.
    spdlog::debug("ordo: sqlite database '{}' migrated from schema version {} to {} ({})", path,
                 out.from_version, out.to_version, names);
  }
  db->Return(std::move(*conn));
  return db;
}

Database::Borrowed::~Borrowed() {
  if (conn_ != nullptr) db_->Return(std::move(conn_));
}

Result<Database::Borrowed> Database::Borrow() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Borrowed(this, std::move(conn));
    }
  }
  auto conn = Connection::Open(path_);
  if (!conn.ok()) return conn.status();
  return Borrowed(this, std::move(*conn));
}

void Database::Return(std::unique_ptr<Connection> conn) {
  // A connection left inside a transaction (a failed ROLLBACK) is not reused.
  if (conn->in_transaction()) {
    conn->Exec("ROLLBACK", "roll back").IgnoreError();
    if (conn->in_transaction()) return;
  }
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
}

// ---------------------------------------------------------------------------------------------

struct GroupCommit::Member {
  explicit Member(Body b) : body(b) {}
  const Body body;
  std::condition_variable cv;  // signalled (under mu_) when done or at the front
  Outcome outcome;             // written by the committer before `done`
  bool done = false;           // guarded by mu_
};

GroupCommit::Outcome GroupCommit::Run(Database& db, Body body) {
  Member self(body);
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&self);
  while (!self.done && queue_.front() != &self) self.cv.wait(lock);
  if (self.done) return std::move(self.outcome);
  lock.unlock();
  const std::size_t members = Commit(db);
  lock.lock();
  for (std::size_t i = 0; i < members; ++i) {
    Member* m = queue_.front();
    queue_.pop_front();
    if (m != &self) {
      m->done = true;
      m->cv.notify_one();  // under mu_: m cannot return (and destroy cv) before we unlock
    }
  }
  if (!queue_.empty()) queue_.front()->cv.notify_one();  // the next committer
  return std::move(self.outcome);
}

GroupCommit::Stats GroupCommit::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats out = stats_;
  out.queued = queue_.size();
  return out;
}

namespace {

// A cached statement without parameters or rows (SAVEPOINT and friends, run once per member).
Status RunSimple(Connection& conn, const char* sql) {
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  return stmt->Run();
}

}  // namespace

std::size_t GroupCommit::Commit(Database& db) {
  std::lock_guard<std::mutex> writer(writer_);
  std::vector<Member*>& group = group_;
  std::vector<bool>& excluded = excluded_;
  group.clear();
  excluded.clear();
  // The members: the front of the queue (self first), read after BEGIN IMMEDIATE so that the
  // calls queued while it waited for the write lock join.
  const auto form = [&] {
    if (!group.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    const std::size_t n = std::min(queue_.size(), kMaxGroup);
    group.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
  };
  // The group's error, for every member but those that already have their own (excluded).
  const auto fail = [&](const Status& s) {
    form();
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (i >= excluded.size() || !excluded[i]) group[i]->outcome = Outcome{s, false};
    }
    return group.size();
  };
  auto borrowed = db.Borrow();
  if (!borrowed.ok()) return fail(borrowed.status());
  Connection& conn = **borrowed;
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  const auto may_retry = [&](const Status& s) {
    return Database::Busy(s, conn) && std::chrono::steady_clock::now() < deadline;
  };
  while (true) {
    if (!excluded.empty() && std::find(excluded.begin(), excluded.end(), false) == excluded.end()) {
      return group.size();  // every member failed on its own: nothing left to run
    }
    Status begin = conn.Exec("BEGIN IMMEDIATE", "begin a transaction");
    if (!begin.ok()) {
      if (may_retry(begin)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      return fail(begin);
    }
    form();
    excluded.resize(group.size(), false);
    const bool alone = group.size() == 1;  // no savepoint: a failure rolls everything back
    std::size_t succeeded = 0;
    bool restart = false;
    for (std::size_t i = 0; i < group.size() && !restart; ++i) {
      if (excluded[i]) continue;
      Member& m = *group[i];
      if (!alone) {
        Status savepoint = RunSimple(conn, "SAVEPOINT ordo_call");
        if (!savepoint.ok()) {
          conn.Exec("ROLLBACK", "roll back").IgnoreError();
          return fail(savepoint);
        }
      }
      const Status status = m.body.run(m.body.fn, conn);
      m.outcome = Outcome{OkStatus(), !status.ok() && Database::Busy(status, conn)};
      if (status.ok()) {
        ++succeeded;
        if (alone) continue;
        Status release = RunSimple(conn, "RELEASE ordo_call");
        if (!release.ok()) {
          conn.Exec("ROLLBACK", "roll back").IgnoreError();
          return fail(release);
        }
        continue;
      }
      if (!conn.in_transaction()) {
        // SQLite rolled the whole transaction back (an I/O error, disk full, …): the members
        // before this one lost their work too. Run them again without it.
        excluded[i] = true;
        restart = true;
        break;
      }
      if (alone) continue;
      Status undo = RunSimple(conn, "ROLLBACK TO ordo_call");
      if (undo.ok()) undo = RunSimple(conn, "RELEASE ordo_call");
      if (!undo.ok()) {
        conn.Exec("ROLLBACK", "roll back").IgnoreError();
        return fail(undo);
      }
    }
    if (restart) continue;
    if (succeeded == 0) {  // nothing to make durable (every member refused or failed)
      conn.Exec("ROLLBACK", "roll back").IgnoreError();
      return group.size();
    }
    Status commit = conn.Exec("COMMIT", "commit");
    if (commit.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.commits;
      stats_.calls += group.size();
      stats_.largest = std::max(stats_.largest, group.size());
      return group.size();
    }
    const bool retry = may_retry(commit);
    conn.Exec("ROLLBACK", "roll back").IgnoreError();
    if (!retry) return fail(commit);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::chrono::system_clock::time_point FromEpochMs(std::int64_t ms) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::milliseconds(ms)));
}

}  // namespace ordo::sqlite
