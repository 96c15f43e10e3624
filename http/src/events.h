// The server's recent events (acquired, renewed, released, expired, revoked, refused fenced
// write), kept in a bounded in-memory ring, per server process: a replica sees only what it
// served itself, and a restart forgets them. GET /v1/events reads them and long-polls for new
// ones; the waiters are callbacks, not threads.
//
// Recording is one short critical section (a push onto a fixed-size ring and, only when a
// long-poll waits, a scan of the waiters), so the hot path pays next to nothing.
//
// A ring of capacity 0 is off (`ordo serve --events-ring 0`): Record and Sweep return at once,
// nothing is kept, and a long-poll waits out its wait_ms. Handlers test enabled() first, so
// with the ring off the hot path does not even build the event.
//
// Thread-safe. No call blocks except on the ring's own mutex; wake-ups run outside it.
#ifndef ORDO_HTTP_SRC_EVENTS_H_
#define ORDO_HTTP_SRC_EVENTS_H_

#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ordo::http {

struct Event {
  std::uint64_t id = 0;  // set by Record: 1, 2, 3, ... in recording order
  std::chrono::system_clock::time_point time;  // set by Record
  // "acquired", "renewed", "released", "expired", "revoked", "fence_refused", or "waiting" (an
  // acquire or campaign parked in the line: GET /v1/locks/{name} lists it under "waiters")
  std::string type;
  std::string name;   // the lock (for fence_refused: the fenced key)
  std::string owner;
  std::uint64_t token = 0;
  std::uint32_t slot = 0;
  std::string by;     // revoked: which auth-file line did it ("line 3"); never the token
  // The lock is an election's (campaigned, renewed or resigned through /v1/elections), so the
  // page refreshes the election, not only the lock.
  bool election = false;
  // acquired, renewed: when the lease runs out (by the backend's clock). Not published; it is
  // how Sweep notices an expiry.
  std::chrono::system_clock::time_point expires_at{};
};

class Events {
 public:
  static constexpr std::size_t kDefaultCapacity = 4096;
  using Wake = std::function<void()>;

  // capacity 0: off.
  explicit Events(std::size_t capacity = kDefaultCapacity);
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  // Sets the capacity (0: off). REQUIRES: no other call yet (Server::Start calls it before
  // any connection exists); not thread-safe with the other calls.
  void SetCapacity(std::size_t capacity) { capacity_ = capacity; }
  // False when the ring is off. Thread-safe once SetCapacity is done.
  bool enabled() const { return capacity_ > 0; }

  // Appends `event` with the next id and the current time, dropping the oldest event when the
  // ring is full, and wakes the waiters it matches.
  void Record(Event event);

  // Records an `expired` event for every lease acquired or renewed here whose expiry has
  // passed without a release or revocation seen here. Expiry is noticed, not signalled: the
  // server calls this when it next looks (an acquire, a describe, a list, a read of the
  // events). Cheap when nothing is due (one atomic load).
  void Sweep();

  // The events with id > `after` whose name starts with `prefix`, oldest first, at most `max`.
  std::vector<Event> After(std::uint64_t after, std::string_view prefix, std::size_t max) const;

  // The id of the newest event (0: none yet).
  std::uint64_t last_id() const;

  // Registers `wake`, called once (on the recording thread) when an event with id > `after`
  // and a name starting with `prefix` is recorded, or at Shutdown. Returns 0, without
  // registering, when such an event exists already (read it with After) or after Shutdown;
  // otherwise a handle for Cancel. Checking and registering are one step, so no event can
  // slip in between.
  std::uint64_t Wait(std::uint64_t after, std::string prefix, Wake wake);

  // Unregisters a waiter; false when its wake was already called or is being called.
  bool Cancel(std::uint64_t handle);

  // Wakes every waiter; later Waits return 0.
  void Shutdown();

  std::size_t waiting() const;

 private:
  struct Waiter {
    std::uint64_t after;
    std::string prefix;
    Wake wake;
  };
  struct Live {
    std::string owner;
    std::uint32_t slot = 0;
    bool election = false;
    std::chrono::system_clock::time_point expires_at;
  };
  // Keeps live_ up to date; fills in a release's owner and slot. REQUIRES: mu_
  void TrackLocked(Event& event);
  bool MatchesLocked(std::uint64_t after, std::string_view prefix) const;  // REQUIRES: mu_

  std::size_t capacity_;  // set before use (SetCapacity); 0: off
  mutable std::mutex mu_;
  std::deque<Event> ring_;                 // guarded by mu_; ids consecutive, oldest first
  std::uint64_t next_id_ = 1;              // guarded by mu_
  std::uint64_t next_handle_ = 1;          // guarded by mu_
  std::map<std::uint64_t, Waiter> waiters_;  // guarded by mu_
  bool shutdown_ = false;                  // guarded by mu_
  // The leases acquired here and not yet seen to end: name -> token -> lease.
  std::map<std::string, std::map<std::uint64_t, Live>, std::less<>> live_;  // guarded by mu_
  // The earliest expiry in live_ (nanoseconds since the epoch; max: none), read without mu_.
  std::atomic<std::int64_t> next_expiry_{INT64_MAX};
};

}  // namespace ordo::http

#endif  // ORDO_HTTP_SRC_EVENTS_H_
