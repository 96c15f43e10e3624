// Connections to PostgreSQL: the URL's configuration, the one place where libpqxx exceptions
// become Status, and a bounded connection pool. Internal to the adapter (libpqxx stays out of
// ordo's public headers).
#ifndef ORDO_ADAPTERS_POSTGRESQL_PG_CONNECTION_H_
#define ORDO_ADAPTERS_POSTGRESQL_PG_CONNECTION_H_

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

  // Connections for for-update holders, which keep one for as long as they hold a lock. They do
  // not count against pool_size (a pool full of holders would starve every other call); a few
  // idle ones are kept for reuse.
  Result<std::unique_ptr<pqxx::connection>> TakeDedicated();
  void ReturnDedicated(std::unique_ptr<pqxx::connection> conn);

 private:
  Result<std::unique_ptr<pqxx::connection>> Borrow();
  void Return(std::unique_ptr<pqxx::connection> conn, bool healthy);
  // Pops an idle connection the server has not closed meanwhile; nullptr if none.
  static std::unique_ptr<pqxx::connection> PopLive(
      std::vector<std::unique_ptr<pqxx::connection>>& idle);

  const Config config_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;            // guarded by mu_
  std::vector<std::unique_ptr<pqxx::connection>> idle_dedicated_;  // guarded by mu_
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
