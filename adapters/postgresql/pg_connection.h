// Connections to PostgreSQL: the URL's configuration, the one place where libpqxx exceptions
// become Status, and a bounded connection pool. Internal to the adapter (libpqxx stays out of
// ordo's public headers).
#ifndef ORDO_ADAPTERS_POSTGRESQL_PG_CONNECTION_H_
#define ORDO_ADAPTERS_POSTGRESQL_PG_CONNECTION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "ordo/registry.h"
#include "ordo/status.h"

namespace ordo::pg {

enum class Strategy { kCas, kVersion, kForUpdate };

std::string_view StrategyName(Strategy strategy);

// What a postgresql:// URL asks for.
struct Config {
  Strategy strategy = Strategy::kCas;
  std::string conninfo;  // libpq "key='value' …"; holds the password: never log it
  std::string masked;    // the URL with the password masked, for messages
  std::string password;  // scrubbed from libpq's messages, should one ever echo it
  std::chrono::milliseconds statement_timeout{10'000};
  std::size_t pool_size = 8;
  // ?prepare=on|off: run statements as named prepared statements, prepared once per
  // connection (see Pool::Exec).
  bool prepare = true;
};

// kInvalidArgument naming the problem (scheme alias, missing database, unknown strategy or
// parameter, malformed value); messages mask the password.
Result<Config> ParseConfig(const BackendUrl& url);

// The outcome of one guarded libpqxx call.
struct Outcome {
  Status status;
  bool retry = false;   // serialization failure or deadlock: running it again is safe
  bool broken = false;  // the connection is unusable: discard it
};

// THE place where libpqxx exceptions are caught and mapped to Status (via CurrentOutcome):
//   broken_connection, 08xxx, 57P0x      → kUnavailable, connection discarded
//   in_doubt_error / 40003               → kUnavailable (the commit's outcome is unknown)
//   40001 serialization, 40P01 deadlock  → retry (kUnavailable once retries are exhausted)
//   55P03 lock_not_available             → kLockHeld
//   25006 read-only transaction (standby) → kUnavailable, connection discarded
//   26000/42P05 prepared statement lost   → retry (unprepared: a pooler moved the session)
//   57014 query_canceled                 → kUnavailable ("statement timeout")
//   28P01/28000 authentication, 3D000 no such database, 42501 permission → kInvalidArgument
//   anything else                        → kInternal with the SQLSTATE
// Messages name the operation and the masked URL, never the password.
template <typename Fn>
Outcome Guard(std::string_view what, const Config& config, Fn&& fn) noexcept;

// Called only from Guard's catch block.
Outcome CurrentOutcome(std::string_view what, const Config& config) noexcept;

// A bounded pool of connections with ordo's session settings (statement_timeout, …).
// Thread-safe. Connections are created lazily, at most pool_size are lent out at once, and a
// connection that failed, or that the server closed while it sat idle (a restart), is replaced
// by a new one: a database restart costs the calls in flight a kUnavailable, never a crash.
class Pool {
 public:
  explicit Pool(Config config);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const Config& config() const { return config_; }

  // A new connection with the session settings. Errors: kUnavailable (unreachable, refused,
  // timed out), kInvalidArgument (authentication failed, no such database).
  Result<std::unique_ptr<pqxx::connection>> Connect();

  // Runs fn(pqxx::connection&) -> Status on a pooled connection and returns its Status. A
  // serialization failure or deadlock is retried a few times; a broken connection is discarded
  // and reported as kUnavailable (fn is not re-run: its effect is unknown).
  template <typename Fn>
  Status Run(std::string_view what, Fn&& fn);

  // Runs `stmt` (one of statements.h's) with bound parameters. With prepare on (the default),
  // as a named prepared statement: the name is derived from the SQL text, and libpqxx prepares
  // it on this connection the first time it is used there. The cache lives in the connection
  // object, so a reconnected connection (a new object) prepares afresh. Behind a pooler that
  // moves sessions between server connections (PgBouncer < 1.21 in transaction pooling) a
  // prepared name may be missing or taken on the server connection a statement lands on: the
  // pool then stops preparing for good and the call is retried unprepared (see
  // CurrentOutcome: SQLSTATE 26000 and 42P05 are retryable; neither statement ran).
  template <typename... Args>
  pqxx::result Exec(pqxx::transaction_base& tx, std::string_view stmt, Args&&... args);
  template <typename... Args>
  pqxx::row Exec1(pqxx::transaction_base& tx, std::string_view stmt, Args&&... args) {
    auto r = Exec(tx, stmt, std::forward<Args>(args)...);
    if (r.size() != 1) {
      throw pqxx::unexpected_rows("expected 1 row from a statement, got " +
                                  std::to_string(r.size()));
    }
    return r[0];
  }
  bool preparing() const { return prepare_.load(std::memory_order_relaxed); }

  // Connections for for-update holders, which keep one for as long as they hold a lock. They do
  // not count against pool_size (a pool full of holders would starve every other call); a few
  // idle ones are kept for reuse.
  Result<std::unique_ptr<pqxx::connection>> TakeDedicated();
  void ReturnDedicated(std::unique_ptr<pqxx::connection> conn);

 private:
  Result<std::unique_ptr<pqxx::connection>> Borrow();
  void Return(std::unique_ptr<pqxx::connection> conn, bool healthy);
  // A connection waiting in the pool, and since when.
  struct Idle {
    std::unique_ptr<pqxx::connection> conn;
    std::chrono::steady_clock::time_point since;
  };
  // Pops an idle connection the server has not closed meanwhile; nullptr if none.
  static std::unique_ptr<pqxx::connection> PopLive(std::vector<Idle>& idle);

  // The prepared statement's name for `stmt`; declares it on the connection (libpqxx prepares
  // it on first use and ignores a repeated, identical declaration).
  static std::string Declare(pqxx::connection_base& conn, std::string_view stmt);
  // Turns preparing off after a pooler lost a prepared statement (SQLSTATE 26000/42P05).
  void StopPreparing(const pqxx::sql_error& e);

  const Config config_;
  std::atomic<bool> prepare_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<Idle> idle_;            // guarded by mu_
  std::vector<Idle> idle_dedicated_;  // guarded by mu_
  std::size_t lent_ = 0;                                           // guarded by mu_
};

// ---------------------------------------------------------------------------------------------

template <typename Fn>
Outcome Guard(std::string_view what, const Config& config, Fn&& fn) noexcept {
  try {
    return Outcome{fn()};
  } catch (...) {
    return CurrentOutcome(what, config);
  }
}

void BackOffBeforeRetry(int attempt);

template <typename... Args>
pqxx::result Pool::Exec(pqxx::transaction_base& tx, std::string_view stmt, Args&&... args) {
  if (!preparing()) return tx.exec_params(std::string(stmt), std::forward<Args>(args)...);
  const std::string name = Declare(tx.conn(), stmt);
  try {
    return tx.exec_prepared(name, std::forward<Args>(args)...);
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "26000" || e.sqlstate() == "42P05") StopPreparing(e);
    throw;
  }
}

template <typename Fn>
Status Pool::Run(std::string_view what, Fn&& fn) {
  constexpr int kMaxAttempts = 8;
  for (int attempt = 1;; ++attempt) {
    auto conn = Borrow();
    if (!conn.ok()) return conn.status();
    pqxx::connection& c = **conn;
    Outcome outcome = Guard(what, config_, [&] { return fn(c); });
    Return(std::move(*conn), !outcome.broken);
    if (!outcome.retry || attempt >= kMaxAttempts) return outcome.status;
    BackOffBeforeRetry(attempt);
  }
}

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_CONNECTION_H_
