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
//   - inside one process, writers on the same file share transactions (group commit, below):
//     they queue in FileShared::group, and the front of the queue runs its own call and the
//     queued ones in one BEGIN IMMEDIATE … COMMIT, so they pay one fsync instead of one each
//     and never sleep in SQLite's busy handler waiting for each other;
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
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
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

class Database;

// Group commit of the write calls of one process on one database file, in the style of
// LevelDB's write path (DBImpl::Write and BuildBatchGroup).
//
// A write call (Database::Write) enqueues itself and waits until it is done or at the front of
// the queue. The front becomes the committer: it borrows a connection, takes SQLite's write lock
// (BEGIN IMMEDIATE; calls queued meanwhile join), and runs its own call and those queued behind
// it, up to kMaxGroup, each inside its own SAVEPOINT, then COMMITs once (one fsync). So:
//   - a call that fails (a refusal, a lost lease, an error) rolls back only its own changes to
//     its savepoint and gets its own result; the others still commit;
//   - a failed BEGIN or COMMIT is the error of every member of the group, and none of them
//     sees a success: a result is handed out only after the COMMIT that made it durable has
//     returned (tokens are durable before a lease is returned);
//   - a lone call pays four uncontended locks of the queue's mutex and no savepoint: it runs
//     in the caller's thread as before, with no hand-off to another thread;
//   - a member runs on the committer's thread and connection, so its function must use only
//     the Connection it is given (every Database::Write body does).
// Busy. The committer retries a BEGIN or COMMIT that SQLite refused with SQLITE_BUSY without
// waiting (see Database::InTransaction) until kBusyTimeout; past it, or when the busy handler
// gave up (another process held the write lock for kBusyTimeout), every call queued at that
// moment fails with kUnavailable: they were all waiting for the same lock. A member whose own
// statements hit SQLITE_BUSY is rolled back to its savepoint and retried by its caller.
// Other processes on the file still serialise through SQLite's own locking: the group is
// within one process (one FileShared per file, shared by every Database on it).
//
// Thread safety: safe for concurrent use; Run blocks until the call's group has committed or
// failed. Nothing here starts a thread.
class GroupCommit {
 public:
  // Calls committed together at most: bounds the transaction (and the time its first member
  // waits for the last one's statements).
  static constexpr std::size_t kMaxGroup = 64;

  // One call's body, type-erased: runs the caller's function on `conn` and returns its status
  // (a failure means: roll this call back to its savepoint).
  struct Body {
    Status (*run)(void* fn, Connection& conn);
    void* fn;
  };

  // What Run returns: `status` is the group's error (the connection, BEGIN or COMMIT failed) or
  // OK when the body ran and its own outcome stands; `retry` asks the caller to run the call
  // again (its statements met SQLITE_BUSY and were rolled back).
  struct Outcome {
    Status status;
    bool retry = false;
  };

  // For tests and the bench: what the queue has done so far, and how many wait now.
  struct Stats {
    std::uint64_t commits = 0;  // COMMITs that succeeded
    std::uint64_t calls = 0;    // calls that were members of those commits
    std::size_t largest = 0;    // the largest group committed
    std::size_t queued = 0;     // calls in the queue now (the committer's group included)
  };

  // Runs `body` in a group transaction; `db` lends the committer its connection.
  Outcome Run(Database& db, Body body);
  Stats stats() const;

  // Held by the committer around its transaction, and by Database::Open around migrations.
  std::mutex& writer() { return writer_; }

 private:
  struct Member;
  // The committer's part: BEGIN, the members, COMMIT, with the busy retries described above.
  // Runs without mu_ held; reads the queue under it to form the group.
  std::size_t Commit(Database& db);

  mutable std::mutex mu_;
  std::deque<Member*> queue_;  // guarded by mu_; the front is the committer
  Stats stats_;                // guarded by mu_ (all but `queued`)
  std::mutex writer_;
  // The committer's scratch, kept between groups so that a lone call allocates nothing here.
  std::vector<Member*> group_;  // guarded by writer_
  std::vector<bool> excluded_;  // guarded by writer_: members whose failure ended the transaction
};

// What every Connection of one database file shares inside this process. Lockers that open
// the same file (by device and inode) share one FileShared.
struct FileShared {
  // The write calls of this process on the file (see the top comment).
  GroupCommit group;
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
  // The transaction is shared with other threads' concurrent Write calls on the same file
  // (GroupCommit): fn runs inside its own SAVEPOINT, perhaps on another thread, and must use
  // only the Connection it is given. The result is returned after the COMMIT.
  template <typename Fn>
  auto Write(Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    using Out = std::invoke_result_t<Fn, Connection&>;
    const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
    while (true) {
      std::optional<Out> out;
      auto run = [&](Connection& conn) -> Status {
        out.emplace(fn(conn));
        return StatusOf(*out);
      };
      GroupCommit::Body body{[](void* f, Connection& conn) -> Status {
                               return (*static_cast<decltype(run)*>(f))(conn);
                             },
                             &run};
      GroupCommit::Outcome outcome = shared_->group.Run(*this, body);
      if (outcome.retry && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (!outcome.status.ok() || !out.has_value()) return outcome.status;
      return std::move(*out);
    }
  }
  // The same in a deferred (read) transaction: one consistent snapshot, no write lock, no group.
  template <typename Fn>
  auto Read(Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    return InTransaction(std::forward<Fn>(fn));
  }

  // The group commit counters of the file in this process (every Database on it).
  GroupCommit::Stats group_stats() const { return shared_->group.stats(); }

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
  auto InTransaction(Fn&& fn) -> std::invoke_result_t<Fn, Connection&> {
    const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
    while (true) {
      bool busy = false;
      auto out = TryRead(fn, busy);
      if (StatusOf(out).ok() || !busy || std::chrono::steady_clock::now() >= deadline) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 public:
  // True when `s` came from SQLITE_BUSY or SQLITE_LOCKED on `conn`.
  static bool Busy(const Status& s, Connection& conn) {
    const int code = sqlite3_extended_errcode(conn.handle()) & 0xff;
    return s.code() == StatusCode::kUnavailable && (code == SQLITE_BUSY || code == SQLITE_LOCKED);
  }

 private:
  template <typename Fn>
  auto TryRead(Fn& fn, bool& busy) -> std::invoke_result_t<Fn, Connection&> {
    auto conn = Borrow();
    if (!conn.ok()) return conn.status();
    Status begin = (*conn)->Exec("BEGIN", "begin a transaction");
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
