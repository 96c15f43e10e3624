// ordo/engine.h — the acquire engine every backend is built on. For backend authors; user code
// needs only ordo/lock.h.
//
// A backend derives from EngineLocker and supplies two parts:
//   - a try-once primitive over its storage: TryAcquire (one try, or for backends whose kernel
//     or database queues waiters, one blocking try bounded by the deadline), DoRenew, DoRelease,
//     DoDescribe;
//   - a wake-up source: WaitFor(name) returns the Wakeups an acquisition sleeps on between
//     tries (a ChangeBoard in-process, LISTEN/NOTIFY, the in-process release signal of SQLite),
//     or nullptr when TryAcquire itself waits (flock/fcntl's blocking lock call, PostgreSQL's
//     row-lock queue for a plain for-update lock, the HTTP server's parked waiter; a
//     for-update permit, which SKIP LOCKED never queues, sleeps on NOTIFY); Subscribe(name,
//     changed) serves
//     Locker::Watch from the same source.
// EngineLocker's public calls validate the request once, choose the owner once and run the one
// wait loop:
//
//   ticket = wakeups.Take()          // before the try: a change after it ends the Wait at once
//   attempt = TryAcquire(...)        // granted → return; refused → who holds it, first expiry
//   Wait(ticket, min(deadline, first conflicting expiry + 1 ms))
//
// so no waiter polls (SQLite across processes, which cannot be notified, caps its Wait; see
// LockerTraits::recheck) and a lease that runs out without a release is noticed on time.
//
// The engine also owns what every backend used to copy: kMaxToken, the kLockHeld / kLeaseLost
// message builders and HeldTable, the (name, token) → held acquisition table.
#ifndef ORDO_ENGINE_H_
#define ORDO_ENGINE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ordo/lock.h"

namespace ordo {

// The largest token any backend issues: SQL stores tokens as signed 64-bit integers. A lease
// whose token is 0 or above it was never issued, so Renew/Release refuse it as kLeaseLost.
inline constexpr std::uint64_t kMaxToken =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// "'owner' (token 7, exclusive)[, …]" — the holders named in a kLockHeld message.
std::string HolderText(const std::vector<Holder>& holders);
// kLockHeld: "lock 'name' is held by …" (without " by …" when the holders are unknown).
Status HeldError(std::string_view name, const std::vector<Holder>& holders);
// kLeaseLost: "lease on 'name' with token N is not held: <why>".
inline constexpr std::string_view kLostWhy = "it expired, was released or was taken over";
Status LostError(const Lease& lease, std::string_view why = kLostWhy);
// kInvalidArgument for `limit > 1` on a backend that has no permits yet ("semaphores are not
// supported by this backend yet", which the conformance suite recognises); `detail` is added.
Status PermitsUnsupportedError(std::uint32_t limit, std::string_view detail = {});
// kInvalidArgument when `limit` differs from `in_force`, the live holders' limit.
Status LimitMismatchError(std::string_view name, std::uint32_t limit, std::uint32_t in_force);

// The outcome of one TryAcquire.
struct Attempt {
  std::optional<Lease> lease;  // granted
  // Decided on an outdated snapshot (an optimistic write-back lost): try again at once.
  bool retry_now = false;
  // Refused: the conflicting live holders (empty when unknown) and how long until the first of
  // their leases runs out, measured by the backend's clock (empty: none expires by TTL).
  std::vector<Holder> holders;
  std::optional<std::chrono::milliseconds> expiry;
  // Refused, where the backend's storage formats the holders itself (one SQL statement): their
  // HolderText, used when `holders` is empty.
  std::string held_by;
};

// What one waiting acquisition sleeps on between tries. Not shared between threads.
class Wakeups {
 public:
  virtual ~Wakeups() = default;
  // A point in the name's change history; take it before the try it guards.
  virtual std::uint64_t Take() = 0;
  // Returns when the name changed after `ticket`, or at `until` (spurious returns are allowed).
  virtual void Wait(std::uint64_t ticket, std::chrono::steady_clock::time_point until) = 0;
};

// An in-process wake-up source: per lock name, a change counter, the threads waiting on it
// and the Watch callbacks. Notify(name) wakes only that name's waiters, and costs one atomic
// load when nobody waits or watches anywhere. Thread-safe.
//
// Watch callbacks run on the notifying thread under the board's lock: they must not block and
// must not call into the board or the Locker. Destroying the Subscription waits for a running
// callback to finish (never destroy it from inside its own callback).
class ChangeBoard {
 public:
  ChangeBoard();
  // REQUIRES: no Wakeups or Subscription of the board is still alive.
  ~ChangeBoard();
  ChangeBoard(const ChangeBoard&) = delete;
  ChangeBoard& operator=(const ChangeBoard&) = delete;

  // Wakes the waiters and watchers of `name`.
  void Notify(std::string_view name);
  // Calls only the Watch callbacks of `name` (an acquisition: waiters have nothing to gain).
  void NotifyWatchers(std::string_view name);
  // Wakes every waiter and watcher (a notification source reconnected: changes may be lost).
  void NotifyAll();

  // Waits on the board for changes of `name`; `recheck` (0: never) bounds each Wait, for
  // sources that miss some changes.
  std::unique_ptr<Wakeups> WaitFor(std::string_view name,
                                   std::chrono::milliseconds recheck = std::chrono::milliseconds(0));
  std::unique_ptr<Subscription> Watch(std::string_view name, std::function<void()> changed);

 private:
  struct Entry;
  class Waiter;
  class Watcher;
  Entry* Join(std::string_view name);   // REQUIRES: mu_ held
  void Leave(Entry* entry);             // REQUIRES: mu_ held
  static void Wake(Entry& entry, bool waiters);  // REQUIRES: mu_ held

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;  // guarded by mu_
  std::atomic<int> users_{0};  // waiters + watchers, for Notify's fast path
};

// (name, token) → T: the acquisitions a Locker holds itself (descriptors, connections).
// Thread-safe.
template <typename T>
class HeldTable {
 public:
  void Insert(std::string name, std::uint64_t token, T value) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.emplace(std::make_pair(std::move(name), token), std::move(value));
  }
  // Removes and returns the entry; empty when there is none.
  std::optional<T> Take(std::string_view name, std::uint64_t token) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = held_.find(Key{name, token});
    if (it == held_.end()) return std::nullopt;
    std::optional<T> out(std::move(it->second));
    held_.erase(it);
    return out;
  }
  // A copy of the entry (T is a handle such as shared_ptr); empty when there is none.
  std::optional<T> Find(std::string_view name, std::uint64_t token) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = held_.find(Key{name, token});
    if (it == held_.end()) return std::nullopt;
    return it->second;
  }
  // Calls fn(name, token, T&) for every entry, then empties the table.
  template <typename Fn>
  void Drain(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, value] : held_) fn(key.first, key.second, value);
    held_.clear();
  }

 private:
  // Looked up without copying the name (a copy is an allocation per Release and Renew).
  using Key = std::pair<std::string_view, std::uint64_t>;
  struct Less {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Key(a.first, a.second) < Key(b.first, b.second);
    }
  };

  std::mutex mu_;
  std::map<std::pair<std::string, std::uint64_t>, T, Less> held_;  // guarded by mu_
};

// A Locker made of a backend's try-once primitive and wake-up source (see the top comment).
// Thread-safe when the backend's parts are.
class EngineLocker : public Locker {
 public:
  Result<Lease> Acquire(const LockRequest& request) final;
  Result<Lease> Renew(const Lease& lease, std::chrono::milliseconds ttl) final;
  Status Release(const Lease& lease) final;
  Result<LockState> Describe(std::string_view name) final;
  std::unique_ptr<Subscription> Watch(std::string_view name,
                                      std::function<void()> changed) final;

 protected:
  EngineLocker() = default;

  // One try for a valid request with its owner chosen. A backend with no Wakeups (WaitFor
  // returns nullptr) may block here until `deadline` in its own queue. For a try-once request
  // (wait 0) `deadline` is a time already past (the clock's epoch), not the current time.
  virtual Result<Attempt> TryAcquire(const LockRequest& request, const std::string& owner,
                                     std::chrono::steady_clock::time_point deadline) = 0;
  // REQUIRES (checked by the engine): valid name and ttl, 0 < token <= kMaxToken.
  virtual Result<Lease> DoRenew(const Lease& lease, std::chrono::milliseconds ttl) = 0;
  virtual Status DoRelease(const Lease& lease) = 0;
  // REQUIRES: valid name.
  virtual Result<LockState> DoDescribe(std::string_view name) = 0;

  // The wake-up source of a waiting acquisition of `name`; nullptr: TryAcquire waits itself.
  virtual std::unique_ptr<Wakeups> WaitFor(std::string_view name) = 0;
  // Called after every successful Release (in-process sources notify here).
  virtual void Released(std::string_view /*name*/) {}
  // Locker::Watch for a valid name; nullptr when the backend has no notification source.
  virtual std::unique_ptr<Subscription> Subscribe(std::string_view name,
                                                  std::function<void()> changed) = 0;
};

}  // namespace ordo

#endif  // ORDO_ENGINE_H_
