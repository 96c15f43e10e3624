#include "ordo/scoped_lease.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ordo {

struct ScopedLease::State {
  Locker* locker = nullptr;
  Options options;
  std::uint64_t token = 0;
  std::chrono::milliseconds ttl{0};

  mutable std::mutex mu;
  std::condition_variable cv;
  Lease lease;           // guarded by mu
  bool stop = false;     // guarded by mu
  bool released = false;  // only touched by the owning thread
  std::atomic<bool> lost{false};
  Status lost_why;  // written once before `lost` is set
  std::thread keeper;

  void MarkLost(Status why) {
    lost_why = std::move(why);
    lost.store(true, std::memory_order_release);
    spdlog::warn("ordo: lease on '{}' (token {}) lost: {}", lease_name(), token,
                 lost_why.ToString());
    if (options.on_lost) options.on_lost(lost_why);
  }

  std::string lease_name() const {
    std::lock_guard<std::mutex> lock(mu);
    return lease.name;
  }

  // Renews every period. Self-fencing: a renewal that fails for a passing reason is retried,
  // but once the last confirmed expiry (minus a margin, on the monotonic clock) passes, the
  // lease is declared lost even though the backend could not say so.
  void KeepAlive() {
    using Clock = std::chrono::steady_clock;
    const auto period = options.renew_every.count() > 0 ? options.renew_every : ttl / 3;
    const auto margin = ttl / 10;
    auto deadline = Clock::now() + ttl - margin;
    auto next = Clock::now() + period;
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      if (cv.wait_until(lock, next, [this] { return stop; })) return;
      Lease current = lease;
      lock.unlock();
      const auto sent = Clock::now();
      Result<Lease> renewed = locker->Renew(current, ttl);
      lock.lock();
      if (stop) return;
      if (renewed.ok()) {
        lease = *renewed;
        deadline = sent + ttl - margin;
        next = Clock::now() + period;
        continue;
      }
      const StatusCode code = renewed.status().code();
      if (code != StatusCode::kUnavailable && code != StatusCode::kInternal) {
        lock.unlock();
        MarkLost(renewed.status());
        return;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        lock.unlock();
        MarkLost(LeaseLostError("renewals failed until the self-fencing deadline: " +
                                renewed.status().ToString()));
        return;
      }
      // Retry soon, but never sleep past the deadline.
      next = std::min(now + std::max(period / 4, std::chrono::milliseconds(10)), deadline);
    }
  }

  void StopKeeper() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (keeper.joinable()) keeper.join();
  }
};

Result<ScopedLease> ScopedLease::Acquire(Locker& locker, const LockRequest& request,
                                         Options options) {
  auto lease = locker.Acquire(request);
  if (!lease.ok()) return lease.status();
  return ScopedLease(locker, std::move(*lease), std::move(options));
}

ScopedLease::ScopedLease(Locker& locker, Lease lease, Options options)
    : state_(std::make_unique<State>()) {
  state_->locker = &locker;
  state_->token = lease.token;
  state_->ttl = lease.ttl;
  state_->lease = std::move(lease);
  state_->options = std::move(options);
  if (state_->options.keep_alive) {
    state_->keeper = std::thread([s = state_.get()] { s->KeepAlive(); });
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
    spdlog::warn("ordo: releasing lease on '{}' failed: {}", state_->lease_name(), s.ToString());
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

Status ScopedLease::Release() {
  if (!state_ || state_->released) return OkStatus();
  state_->StopKeeper();
  state_->released = true;
  if (state_->lost.load(std::memory_order_acquire)) return state_->lost_why;
  return state_->locker->Release(lease());
}

}  // namespace ordo
