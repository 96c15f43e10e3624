// LISTEN/NOTIFY wake-ups for waiting acquisitions (cas and version strategies).
#ifndef ORDO_ADAPTERS_POSTGRESQL_PG_LISTENER_H_
#define ORDO_ADAPTERS_POSTGRESQL_PG_LISTENER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "ordo/engine.h"
#include "pg_connection.h"

namespace ordo::pg {

// One listener connection per Locker, LISTENing on channel "ordo_lock", and one thread that
// waits on its socket (poll, no timeout) and notifies the name each notification carries on a
// ChangeBoard (ordo/engine.h): the engine's waiters and Locker::Watch callbacks of this Locker
// sleep on it. Releases NOTIFY in their own transaction, so a notification means the row is
// gone.
//
// While the listener is disconnected (database restart), healthy() is false and waiters must
// re-check on their own at a short interval; on reconnect every waiter and watcher is woken,
// since notifications sent meanwhile are lost. Thread-safe. Started lazily by the first waiter
// or watcher.
class Listener {
 public:
  explicit Listener(Pool& pool);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts the thread if needed; with `wait`, waits (bounded by the connect timeout) for its
  // first connection attempt.
  void Start(bool wait = true);
  bool healthy() const;
  ChangeBoard& board() { return board_; }

  // Interest in `name`'s releases (a waiter or a watcher; see sql::kRegisterWaiter): counted
  // per name, and held on the server as a shared advisory lock of the listener connection,
  // taken by the listener thread (again after every reconnect). With `wait`, returns once the
  // lock is held or when that failed (listener down) or took longer than a few seconds.
  // Releases skip NOTIFY for names nobody registered.
  void Register(std::string_view name, bool wait);
  void Unregister(std::string_view name);
  // Whether the listener connection holds `name`'s registration now (and is healthy).
  bool Holds(std::string_view name) const;

 private:
  struct Receiver;
  struct Interest {
    int count = 0;      // registered waiters and watchers of this Locker
    bool held = false;  // the advisory lock is held on the current connection
  };

  void Loop();
  void Reset(std::unique_ptr<Receiver>& receiver, std::unique_ptr<pqxx::connection>& conn);
  // Takes and drops advisory locks until they match interest_; false if the connection failed.
  bool SyncInterest(pqxx::connection& conn);
  void Poke();  // wakes the thread's poll()

  Pool& pool_;
  ChangeBoard board_;
  int wake_fd_ = -1;  // eventfd: the destructor's way into poll()
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool healthy_ = false;    // guarded by mu_
  bool attempted_ = false;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::map<std::string, Interest, std::less<>> interest_;  // guarded by mu_
  std::thread thread_;      // started once, under mu_
};

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_LISTENER_H_
