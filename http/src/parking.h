// Parked waiters: acquire requests that asked to wait (wait_ms > 0), held as data, not threads.
//
// A waiting acquire holds no thread and no backend connection while it waits. Waiters stand in
// a FIFO line per lock name. When something suggests the lock may be free, only the head of
// the line retries, with a try-once acquire (wait 0) on a worker; the others keep waiting. So
// each release is won by exactly one waiter, in arrival order, and a crowd of waiters costs the
// backend one try per wake-up, not one per waiter. Wake-ups come from:
//   (a) releases this server performs itself (Notify);
//   (b) the backend's own notification, Locker::Watch (another replica, a holder's death);
//       when Watch returns nullptr the line is re-checked every `poll_period` instead;
//   (c) a timer at the first holder's expires_at (Watch does not signal TTL expiry), and each
//       waiter's own deadline, after which it is answered kLockHeld.
// When a shared waiter is granted, the next head tries at once, so compatible shared waiters
// follow each other.
//
// Thread-safe. No call blocks on the backend: tries run on the worker executor given to the
// constructor, timers on the I/O context.
#ifndef ORDO_HTTP_SRC_PARKING_H_
#define ORDO_HTTP_SRC_PARKING_H_

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "ordo/lock.h"

namespace ordo::http {

class Parking {
 public:
  using Done = std::function<void(Result<Lease>)>;
  using RunOnWorker = std::function<void(std::function<void()>)>;

  // The re-check period of a line whose backend has no Watch notification.
  static constexpr std::chrono::milliseconds kPollPeriod{50};

  // At most `max_waiters` requests wait at once; more are refused with kUnavailable.
  Parking(Locker& locker, boost::asio::io_context& io, RunOnWorker run_on_worker,
          std::size_t max_waiters, std::chrono::milliseconds poll_period = kPollPeriod);
  ~Parking();
  Parking(const Parking&) = delete;
  Parking& operator=(const Parking&) = delete;

  // Waits for `request` (request.wait > 0) in its name's line. `done` is called exactly once,
  // on some worker or I/O thread: with the lease; kLockHeld when the wait elapsed; kUnavailable
  // when the waiting room is full or the server stops; or the backend's error.
  void Park(const LockRequest& request, Done done);

  // The lock `name` may have changed hands: its line's head retries.
  void Notify(const std::string& name);

  // Answers every waiter kUnavailable and refuses later ones. A try in flight that wins after
  // this gives its lease back.
  void Shutdown();

  // Requests waiting now.
  std::size_t waiting() const;

  // Who waits in the line of `name` now, head first (GET /v1/locks shows them). Only the
  // requests parked on this server: a replica does not see another's waiters.
  struct Waiting {
    std::string owner;
    LockMode mode = LockMode::kExclusive;
    std::chrono::steady_clock::time_point since;  // when it was parked
    std::chrono::milliseconds wait{0};             // how long it waits at most
  };
  std::vector<Waiting> WaitersOf(std::string_view name) const;

 private:
  struct Waiter {
    LockRequest request;
    Done done;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
    std::chrono::milliseconds wait{0};  // the request's wait (request.wait is 0: try-once)
    std::shared_ptr<boost::asio::steady_timer> deadline;
    bool finished = false;  // guarded by mu_: done was called or is about to be
    bool expired = false;   // guarded by mu_: the deadline passed during a try
  };
  struct Line {
    std::deque<std::shared_ptr<Waiter>> queue;
    bool trying = false;  // the head is being tried on a worker
    bool again = false;   // a wake-up arrived during that try
    std::unique_ptr<Subscription> watch;  // nullptr: the line is polled
    std::chrono::steady_clock::time_point expiry_armed{};  // an expiry timer is set for then
  };

  void Kick(const std::string& name);
  void Try(const std::string& name, const std::shared_ptr<Waiter>& waiter);
  void OnDeadline(const std::string& name, const std::shared_ptr<Waiter>& waiter);
  void ArmExpiry(const std::string& name, std::chrono::system_clock::time_point at);
  void StartPolling();  // REQUIRES: mu_ held
  void OnPoll();
  // Removes `waiter` from its line; returns the line's subscription when the line is gone (to
  // be destroyed outside mu_). REQUIRES: mu_ held.
  std::unique_ptr<Subscription> Remove(const std::string& name, const Waiter* waiter);
  void CancelTimer(const std::shared_ptr<Waiter>& waiter);

  Locker& locker_;
  boost::asio::io_context& io_;
  // Serializes every timer operation (asio timers are not thread-safe objects).
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  const RunOnWorker run_on_worker_;
  const std::size_t max_waiters_;
  const std::chrono::milliseconds poll_period_;
  boost::asio::steady_timer poll_timer_;  // used on strand_ only

  mutable std::mutex mu_;
  std::map<std::string, Line, std::less<>> lines_;  // guarded by mu_; exists while non-empty
  std::size_t waiting_ = 0;                         // guarded by mu_
  bool polling_ = false;                            // guarded by mu_
  bool shutdown_ = false;                           // guarded by mu_
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_PARKING_H_
