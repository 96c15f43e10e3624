#include "ordo/scoped_lease.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ordo {

using Clock = std::chrono::steady_clock;

// Keep-alive runs on two threads. The renewer calls Renew every period and moves the
// self-fencing deadline forward after each success; it starts the watchdog before its first
// Renew (or at the fencing time, if that comes first), so that taking a lease starts one thread
// only: a leader's hand-over pays for one. The watchdog only watches the clock: it
// declares the lease lost at the deadline (minus fence_early) even while the renewer is stuck in
// a Renew call that has not returned — a hung connection or a busy database must not keep a
// holder believing it still owns a lease the backend is about to give away.
struct ScopedLease::State {
  Locker* locker = nullptr;
  Options options;
  std::uint64_t token = 0;
  std::chrono::milliseconds ttl{0};
  std::chrono::milliseconds margin{0};  // ttl/10: clock-rate drift and reaction time
  std::chrono::milliseconds early{0};   // options.fence_early, at most ttl/3

  mutable std::mutex mu;
  std::condition_variable cv;
  Lease lease;              // guarded by mu
  Clock::time_point deadline;  // guarded by mu: last confirmed expiry - margin
  bool stop = false;        // guarded by mu
  bool lost_declared = false;  // guarded by mu
  Status lost_why;          // guarded by mu; set once, with lost_declared
  Status last_error;        // guarded by mu: the last passing renewal failure
  bool released = false;    // only touched by the owning thread
  std::atomic<bool> lost{false};
  std::thread renewer;
  // Started by the renewer thread (see Renew); only that thread touches it until JoinThreads
  // has joined the renewer.
  std::thread watchdog;

  // Declares the loss once; later calls (from the other thread) do nothing.
  void MarkLost(Status why) {
    std::string name;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (lost_declared || stop) return;
      lost_declared = true;
      lost_why = why;
      name = lease.name;
    }
    lost.store(true, std::memory_order_release);
    cv.notify_all();
    spdlog::warn("ordo: lease on '{}' (token {}) lost: {}", name, token, why.ToString());
    if (options.on_lost) options.on_lost(why);
  }

  // A renewal sent at `sent` that succeeded keeps the lease on the backend until at least
  // sent + ttl (the backend cannot have started the new ttl before it received the request).
  // REQUIRES: mu held.
  void ConfirmedAt(Clock::time_point sent) {
    deadline = std::max(deadline, sent + ttl - margin);
  }

  void Renew() {
    const auto period = options.renew_every.count() > 0 ? options.renew_every : ttl / 3;
    auto next = Clock::now() + period;
    std::unique_lock<std::mutex> lock(mu);
    // The watchdog is needed once a renewal may hang, or once the fencing time comes: it starts
    // then, not with the lease (a new holder, a candidate just elected, pays for one thread).
    const auto watch_from = std::min(next, deadline - early);
    if (cv.wait_until(lock, watch_from, [this] { return stop; })) return;
    lock.unlock();
    watchdog = std::thread([this] { Watch(); });
    lock.lock();
    while (true) {
      if (cv.wait_until(lock, next, [this] { return stop || lost_declared; })) return;
      Lease current = lease;
      lock.unlock();
      const auto sent = Clock::now();
      Result<Lease> renewed = locker->Renew(current, ttl);
      lock.lock();
      if (stop || lost_declared) return;
      if (renewed.ok()) {
        lease = *renewed;
        ConfirmedAt(sent);
        cv.notify_all();  // the watchdog sleeps until the new deadline
        next = Clock::now() + period;
        continue;
      }
      const StatusCode code = renewed.status().code();
      if (code != StatusCode::kUnavailable && code != StatusCode::kInternal) {
        lock.unlock();
        MarkLost(renewed.status());
        return;
      }
      // A passing failure: retry soon. The watchdog ends this at the deadline.
      spdlog::debug("ordo: renewing '{}' failed, retrying: {}", current.name,
                    renewed.status().ToString());
      last_error = renewed.status();
      next = Clock::now() + std::max(period / 4, std::chrono::milliseconds(10));
    }
  }

  void Watch() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      const auto fire_at = deadline - early;
      const bool woken = cv.wait_until(lock, fire_at, [&] {
        return stop || lost_declared || deadline - early != fire_at;
      });
      if (woken) {
        if (stop || lost_declared) return;
        continue;  // the deadline moved: a renewal succeeded
      }
      Status why = LeaseLostError(
          "renewals did not succeed before the self-fencing deadline (the lease's last "
          "confirmed expiry minus a safety margin); last error: " +
          (last_error.ok() ? std::string("none (a renewal is still pending)")
                            : last_error.ToString()));
      lock.unlock();
      MarkLost(std::move(why));
      return;
    }
  }

  // From here on neither thread renews again or declares a loss. The threads are not woken
  // yet: JoinThreads does that (see Release).
  void RequestStop() {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }

  void JoinThreads() {
    cv.notify_all();
    if (renewer.joinable()) renewer.join();  // first: after it, `watchdog` is set
    if (watchdog.joinable()) watchdog.join();
  }

  void StopThreads() {
    RequestStop();
    JoinThreads();
  }

};

Result<ScopedLease> ScopedLease::Acquire(Locker& locker, const LockRequest& request,
                                         Options options) {
  auto sent = Clock::now();
  auto lease = locker.Acquire(request);
  if (!lease.ok()) return lease.status();
  // Only `sent` is known to precede the grant, and a waited acquire may have been granted long
  // after it: the expiry bound sent + ttl could be near or past already, and the lease would be
  // declared lost at once. When the wait used up a third of the TTL, a renewal sent now bounds
  // the expiry afresh.
  if (Clock::now() - sent > lease->ttl / 3) {
    sent = Clock::now();
    auto renewed = locker.Renew(*lease, lease->ttl);
    if (!renewed.ok()) {
      locker.Release(*lease).IgnoreError();
      return renewed.status();
    }
    lease = std::move(renewed);
  }
  return ScopedLease(locker, std::move(*lease), std::move(options), sent);
}

ScopedLease::ScopedLease(Locker& locker, Lease lease, Options options)
    : ScopedLease(locker, std::move(lease), std::move(options), Clock::now()) {}

ScopedLease::ScopedLease(Locker& locker, Lease lease, Options options,
                         Clock::time_point acquired_at)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.locker = &locker;
  s.token = lease.token;
  s.ttl = lease.ttl;
  s.margin = lease.ttl / 10;
  s.early = std::min(options.fence_early, lease.ttl / 3);
  s.deadline = acquired_at + lease.ttl - s.margin;
  s.lease = std::move(lease);
  s.options = std::move(options);
  if (s.options.keep_alive) {
    s.renewer = std::thread([p = &s] { p->Renew(); });
  }
}

ScopedLease::ScopedLease(ScopedLease&& other) noexcept = default;

ScopedLease& ScopedLease::operator=(ScopedLease&& other) noexcept {
  if (this != &other) {
    if (state_) Release().IgnoreError();
    state_ = std::move(other.state_);
  }
  return *this;
}

ScopedLease::~ScopedLease() {
  if (!state_) return;
  Status s = Release();
  if (!s.ok() && s.code() != StatusCode::kLeaseLost) {
    spdlog::warn("ordo: releasing lease on '{}' failed: {}", lease().name, s.ToString());
  }
}

Lease ScopedLease::lease() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->lease;
}

std::uint64_t ScopedLease::token() const { return state_->token; }

bool ScopedLease::lost() const {
  return state_ && state_->lost.load(std::memory_order_acquire);
}

std::chrono::steady_clock::time_point ScopedLease::fence_deadline() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->deadline;
}

Status ScopedLease::LostStatus() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->lost_why;
}

Status ScopedLease::Release() {
  if (!state_ || state_->released) return OkStatus();
  state_->RequestStop();
  state_->released = true;
  // Released before the threads are woken and joined, so that the next holder (a waiting
  // candidate, when a leader resigns) neither waits for them to exit nor competes with them for
  // a core as it wakes. A renewal still in flight is then refused by the backend, and ignored:
  // the stop is already requested.
  Status released = lost() ? LostStatus() : state_->locker->Release(lease());
  state_->JoinThreads();
  return released;
}

Result<Lease> ScopedLease::Detach() {
  if (!state_ || state_->released) return InvalidArgumentError("the lease was already released");
  state_->StopThreads();
  state_->released = true;
  if (lost()) return LostStatus();
  return lease();
}

}  // namespace ordo
