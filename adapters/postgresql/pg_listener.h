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

#include "pg_connection.h"

namespace ordo::pg {

// One listener connection per Locker, LISTENing on channel "ordo_lock", and one thread that
// waits on its socket (poll, no timeout) and wakes the waiters of the name each notification
// carries. Releases NOTIFY in their own transaction, so a notification means the row is gone.
//
// Protocol for a waiter (no lost wake-up): take a Ticket, try to acquire, and if refused Wait
// with that ticket. A release that commits after the try's snapshot sends its notification
// after the ticket was taken, so Wait returns at once.
//
// While the listener is disconnected (database restart), healthy() is false and waiters must
// re-check on their own at a short interval; on reconnect every waiter is woken, since
// notifications sent meanwhile are lost. Thread-safe. Started lazily by the first waiter.
class Listener {
 public:
  struct Ticket {
    std::uint64_t generation = 0;  // of the name
    std::uint64_t epoch = 0;       // of the connection
  };

  explicit Listener(Pool& pool);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts the thread if needed and waits (bounded by the connect timeout) for its first
  // connection attempt.
  void Start();
  bool healthy() const;

  // Registers interest in `name` for the lifetime of the Watch.
  class Watch {
   public:
    Watch(Listener& listener, std::string name);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    Ticket Take() const;
    // Returns when a notification for the name arrived after `ticket`, the listener
    // reconnected, or `until` passed.
    void Wait(const Ticket& ticket, std::chrono::steady_clock::time_point until) const;

   private:
    Listener& listener_;
    const std::string name_;
  };

 private:
  struct Receiver;
  struct Entry {
    int watchers = 0;
    std::uint64_t generation = 0;
  };

  void Loop();
  void Notified(const std::string& name);
  void Reset(std::unique_ptr<Receiver>& receiver, std::unique_ptr<pqxx::connection>& conn);

  Pool& pool_;
  int wake_fd_ = -1;  // eventfd: the destructor's way into poll()
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mu_
  std::uint64_t epoch_ = 0;                            // guarded by mu_
  bool healthy_ = false;                               // guarded by mu_
  bool attempted_ = false;                             // guarded by mu_
  bool stopping_ = false;                              // guarded by mu_
  std::thread thread_;                                 // started once, under mu_
};

}  // namespace ordo::pg

#endif  // ORDO_ADAPTERS_POSTGRESQL_PG_LISTENER_H_
