// The waiting room of the REST server: acquire requests that asked to wait (wait_ms > 0).
//
// Why it exists. A waiting HTTP request is parked on a request thread (cpp-httplib 0.11 has no
// asynchronous responses). If every such request called Locker::Acquire(wait) itself, 1,000
// waiters would be 1,000 concurrent waits inside the backend: 1,000 pollers on a SQLite file or
// 1,000 PostgreSQL sessions, and a thundering herd at every release. Instead the waiters of one
// lock name stand in a FIFO *line*; only the head of the line talks to the backend, with a
// blocking Acquire of at most kSlice (so that the backend's own wake-ups — condition variables,
// LISTEN/NOTIFY — hand it the lock the moment it is released, by this server, another replica
// or an expiring TTL). Everyone behind the head sleeps on its own condition variable until it
// becomes the head or its deadline passes; then it answers 409 lock_held without touching the
// backend. So each release is won by exactly one waiter (the head; shared heads pass the turn on
// at once, so compatible shared waiters follow each other), and the cost of a parked waiter is a
// sleeping thread and a few bytes — no backend work, no CPU.
//
// Thread-safe. Acquire blocks for at most the request's wait (plus one backend call).
#ifndef ORDO_HTTP_SRC_WAIT_LINES_H_
#define ORDO_HTTP_SRC_WAIT_LINES_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "ordo/lock.h"

namespace ordo::http {

class WaitLines {
 public:
  // The longest single backend wait of a line's head; also bounds how long Shutdown waits.
  static constexpr std::chrono::milliseconds kSlice{500};

  // At most `max_waiters` requests wait at once; more are refused with kUnavailable, so that
  // waiters never fill every connection slot and releases and health checks still get in.
  explicit WaitLines(std::size_t max_waiters) : max_waiters_(max_waiters) {}
  WaitLines(const WaitLines&) = delete;
  WaitLines& operator=(const WaitLines&) = delete;

  // Acquires `request` on `locker`, waiting in line up to request.wait. Errors as
  // Locker::Acquire, plus kUnavailable when the waiting room is full or the server stops.
  Result<Lease> Acquire(Locker& locker, const LockRequest& request);

  // Wakes every waiter; they answer kUnavailable. Later Acquire calls fail at once.
  void Shutdown();

  // Requests waiting now (heads included).
  std::size_t waiting() const;

 private:
  struct Ticket {
    std::condition_variable turn;  // notified when this ticket becomes the head, or on shutdown
  };
  using Line = std::deque<Ticket*>;

  // Takes `ticket` out of `name`'s line; if it was the head, wakes the next one.
  // REQUIRES: mu_ held.
  void Leave(const std::string& name, Ticket* ticket);

  const std::size_t max_waiters_;
  mutable std::mutex mu_;
  std::map<std::string, Line> lines_;  // guarded by mu_; a line exists while it has tickets
  std::size_t waiting_ = 0;            // guarded by mu_
  bool shutdown_ = false;              // guarded by mu_
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_WAIT_LINES_H_
