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

 private:
  struct Receiver;

  void Loop();
  void Reset(std::unique_ptr<Receiver>& receiver, std::unique_ptr<pqxx::connection>& conn);

  Pool& pool_;
  ChangeBoard board_;
  int wake_fd_ = -1;  // eventfd: the destructor's way into poll()
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool healthy_ = false;    // guarded by mu_
  bool attempted_ = false;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::thread thread_;      // started once, under mu_
};

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_LISTENER_H_
