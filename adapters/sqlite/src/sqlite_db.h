// The SQLite plumbing under the sqlite:// backend: connections, cached statements, transactions,
// the connection pool, and the one function that turns SQLite result codes into Status.
//
// Concurrency model. One database file is shared by any number of processes and threads:
//   - journal_mode=WAL: readers never block the writer nor each other;
//   - every read-modify-write runs in BEGIN IMMEDIATE, which takes SQLite's single write lock
//     before the first read, so the transaction's reads and writes are one atomic step (no
//     SQLITE_BUSY_SNAPSHOT half-way through, no lost update);
//   - a busy timeout (kBusyTimeout) bounds how long BEGIN IMMEDIATE waits for another
//     process's write lock; past it the call fails with kUnavailable. It is busy_timeout's
//     contract with a finer-polling handler (BusyWait in sqlite_db.cc: why);
//   - inside one process, writers on the same file first queue on a mutex (FileShared::writer),
//     so threads hand the write lock to each other at once instead of sleeping in SQLite's busy
//     handler;
//   - synchronous=FULL: a commit is fsync'ed before it returns, so a token handed out is never
//     handed out again, even after a power loss (with NORMAL, WAL mode may lose the last commits
//     on power loss, and the next acquisition would reissue their tokens);
//   - foreign_keys=ON: a holder row cannot exist without its lock row.
//
// Thread safety: a Connection (and its Statements) is used by one thread at a time — the pool
// hands each borrowed connection to exactly one caller. Database is safe for concurrent use.
// Connections are opened with SQLITE_OPEN_NOMUTEX for that reason.
#ifndef ORDO_ADAPTERS_SQLITE_SQLITE_DB_H_
#define ORDO_ADAPTERS_SQLITE_SQLITE_DB_H_

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ordo/engine.h"
#include "ordo/status.h"
#include "ordo_sqlite/sqlite.h"
#include "statements.h"

namespace ordo::sqlite {

// ORDO_SQLITE_NOW, SQLite's clock: see statements.h.

// How long a statement waits for another connection's write lock before kUnavailable.
inline constexpr std::chrono::milliseconds kBusyTimeout{5000};

// The one place that converts a SQLite result code into a Status. `context` says what was being
// done; the message names the database file.
//   SQLITE_BUSY / SQLITE_LOCKED (after busy_timeout)  -> kUnavailable
//   SQLITE_CANTOPEN / NOTADB / READONLY / PERM / AUTH  -> kInvalidArgument (the path is wrong
//                                                          for a database: fix the URL)
//   SQLITE_IOERR / FULL / PROTOCOL / INTERRUPT          -> kUnavailable (the disk or the OS)
//   SQLITE_CORRUPT, anything else                       -> kInternal
Status SqliteError(int rc, sqlite3* db, std::string_view path, std::string_view context);

class Connection;

// A prepared statement borrowed from a Connection's cache. Reset (and its bindings cleared) when
// destroyed, so it can be reused. Bind errors are remembered and reported by the next Step().
class Statement {
 public:
  Statement(sqlite3_stmt* stmt, Connection* conn) : stmt_(stmt), conn_(conn) {}
  Statement(Statement&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)), conn_(other.conn_), bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, std::int64_t value);
  Statement& BindText(int index, std::string_view value);
  Statement& BindBlob(int index, std::string_view value);

  // Steps once: true when a row is ready, false when the statement is done.
  Result<bool> Step();
  // Steps to the end, ignoring rows (for INSERT/UPDATE/DELETE without RETURNING).
  Status Run();

  std::int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string Bytes(int column) const;  // TEXT or BLOB
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  sqlite3_stmt* handle() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
  Connection* conn_;
  int bind_rc_ = SQLITE_OK;
};

// One SQLite connection with the pragmas above applied and a statement cache.
class Connection {
 public:
  // Opens (creating if needed) `path` and applies the pragmas. Errors: kInvalidArgument (the
  // directory is missing, the file is not a database or cannot be opened for writing; the
  // message names the path), kUnavailable (busy or I/O error), kInternal.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A cached prepared statement. REQUIRES: `sql` has static storage duration (it keys the
  // cache by address) and holds one statement.
  Result<Statement> Prepare(const char* sql);
  // The first column of the first row of `sql` as an integer, `absent` when there is no row.
  // `key` is bound to ?1 when the statement has parameters. REQUIRES: as Prepare.
  Result<std::int64_t> QueryInt(const char* sql, std::string_view key = {},
                                std::int64_t absent = 0);
  // Runs one or more statements that return no rows (BEGIN, COMMIT, a migration file).
  Status Exec(std::string_view sql, std::string_view context);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int changes() const { return sqlite3_changes(db_); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

  Status Error(int rc, std::string_view context) const {
    return SqliteError(rc, db_, path_, context);
  }
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status Configure();

  sqlite3* db_;
  std::string path_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// What every Connection of one database file shares inside this process. Lockers that open
// the same file (by device and inode) share one FileShared.
struct FileShared {
  // Held around every write transaction of this process on the file (see the top comment).
  std::mutex writer;
  // Notified by every release in this process (any Locker on the file); its waiters and
  // watchers re-check the lock table on it.
  ChangeBoard board;
};

// One open database: its path, a pool of connections and the process-wide FileShared. Safe for
// concurrent use; Lockers and stores hold it by shared_ptr.
class Database {
 public:
  // Opens the file, checks its schema version and applies pending migrations (see Migrate in
  // ordo_sqlite/sqlite.h). `report` (optional) receives what was applied.
  static Result<std::shared_ptr<Database>> Open(const std::string& path,
                                                MigrationReport* report);

  const std::string& path() const { return path_; }

  // A connection borrowed from the pool, returned to it on destruction.
  class Borrowed {
   public:
    Borrowed(Database* db, std::unique_ptr<Connection> conn) : db_(db), conn_(std::move(conn)) {}
    Borrowed(Borrowed&&) noexcept = default;
    Borrowed& operator=(Borrowed&&) = delete;
    ~Borrowed();
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    Database* db_;
    std::unique_ptr<Connection> conn_;
  };
  Result<Borrowed> Borrow();

  // Runs fn(Connection&) -> Status or Result<T> inside BEGIN IMMEDIATE … COMMIT. Commits when
  // fn succeeds, rolls back when it fails (so a refused request changes nothing).
  template <typename Fn>
  auto Write(Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    return InTransaction(/*write=*/true, std::forward<Fn>(fn));
  }
  // The same in a deferred (read) transaction: one consistent snapshot, no write lock.
  template <typename Fn>
  auto Read(Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    return InTransaction(/*write=*/false, std::forward<Fn>(fn));
  }

  // The in-process release signal of the file, shared by every Locker on it.
  ChangeBoard& board() { return shared_->board; }

 private:
  Database(std::string path, std::shared_ptr<FileShared> shared)
      : path_(std::move(path)), shared_(std::move(shared)) {}
  void Return(std::unique_ptr<Connection> conn);

  static const Status& StatusOf(const Status& s) { return s; }
  template <typename T>
  static const Status& StatusOf(const Result<T>& r) {
    return r.status();
  }

  // SQLite returns SQLITE_BUSY without calling the busy handler where waiting could deadlock or
  // cannot help: a read snapshot that went stale before its write (BUSY_SNAPSHOT), WAL recovery
  // by another process, the switch of a new file to WAL mode. The transaction was rolled back,
  // so it is simply run again, until the same kBusyTimeout the busy handler honours.
  template <typename Fn>
  auto InTransaction(bool write, Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
    while (true) {
      bool busy = false;
      auto out = TryTransaction(write, fn, busy);
      if (StatusOf(out).ok() || !busy || std::chrono::steady_clock::now() >= deadline) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  static bool Busy(const Status& s, Connection& conn) {
    const int code = sqlite3_extended_errcode(conn.handle()) & 0xff;
    return s.code() == StatusCode::kUnavailable && (code == SQLITE_BUSY || code == SQLITE_LOCKED);
  }

  template <typename Fn>
  auto TryTransaction(bool write, Fn& fn, bool& busy) -> std::invoke_result_t<Fn, Connection&> {
    auto conn = Borrow();
    if (!conn.ok()) return conn.status();
    std::unique_lock<std::mutex> writer(shared_->writer, std::defer_lock);
    if (write) writer.lock();
    Status begin = (*conn)->Exec(write ? "BEGIN IMMEDIATE" : "BEGIN", "begin a transaction");
    if (!begin.ok()) {
      busy = Busy(begin, **conn);
      return begin;
    }
    auto out = fn(**conn);
    if (StatusOf(out).ok()) {
      Status commit = (*conn)->Exec("COMMIT", "commit");
      if (!commit.ok()) {
        busy = Busy(commit, **conn);
        (*conn)->Exec("ROLLBACK", "roll back").IgnoreError();
        return commit;
      }
    } else {
      busy = Busy(StatusOf(out), **conn);
      (*conn)->Exec("ROLLBACK", "roll back").IgnoreError();
    }
    return out;
  }

  const std::string path_;
  const std::shared_ptr<FileShared> shared_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by pool_mu_
};

// Milliseconds since the Unix epoch (SQLite's clock) as a time_point, for Lease::expires_at.
std::chrono::system_clock::time_point FromEpochMs(std::int64_t ms);

}  // namespace ordo::sqlite

#endif  // ORDO_ADAPTERS_SQLITE_SQLITE_DB_H_
