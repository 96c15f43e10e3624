// ordo/scoped_lease.h — RAII ownership of a lease, with optional keep-alive.
//
// A ScopedLease releases its lease when destroyed (best effort: a failure is logged, never
// thrown). With keep_alive set, a background thread renews the lease every ttl/3. The lease is
// reported lost — through lost() and the on_lost callback, exactly once — when the backend says
// kLeaseLost, or when renewals keep failing for passing reasons (kUnavailable) until the
// self-fencing deadline: the last confirmed expiry minus a safety margin (ttl/10), measured on
// this process's monotonic clock. A second keep-alive thread watches that deadline, so the loss
// is reported on time even while a Renew call hangs (a dead server, a locked database).
// After loss, stop writing: the lock may already be someone else's.
//
// Thread safety: lost(), lease() and token() may be called from any thread. The other members are not to be called
// concurrently with each other. The callback runs on the keep-alive thread; it must not destroy
// the ScopedLease.
// Move-only. The Locker must outlive the ScopedLease.
#ifndef ORDO_SCOPED_LEASE_H_
#define ORDO_SCOPED_LEASE_H_

#include <chrono>
#include <functional>
#include <memory>

#include "ordo/lock.h"
#include "ordo/status.h"

namespace ordo {

struct ScopedLeaseOptions {
  // Renew in the background at renew_every (ttl/3 by default).
  bool keep_alive = false;
  // Called once, on the keep-alive thread, when the lease is lost; `why` says how.
  std::function<void(const Status& why)> on_lost;
  // Renewal period; zero means ttl/3.
  std::chrono::milliseconds renew_every{0};
  // When renewals keep failing, report the loss this much *before* the self-fencing deadline
  // (at most ttl/3), so that the caller has time to stop its work — e.g. SIGTERM, a grace
  // period, then SIGKILL — before the backend may give the lock to someone else.
  std::chrono::milliseconds fence_early{0};
};

class ScopedLease {
 public:
  using Options = ScopedLeaseOptions;

  // Acquires `request` and wraps the lease. Errors as Locker::Acquire. The grant happened at
  // some moment of the call, so the lease is known to last from the call's start; when the call
  // took longer than ttl/3 (a wait), one Renew sent on return gives the self-fencing deadline a
  // fresh start instead; if that renewal fails, the lease is released and its error returned.
  static Result<ScopedLease> Acquire(Locker& locker, const LockRequest& request,
                                     Options options = {});
  // Takes ownership of an acquired lease.
  ScopedLease(Locker& locker, Lease lease, Options options = {});

  ScopedLease(ScopedLease&& other) noexcept;
  ScopedLease& operator=(ScopedLease&& other) noexcept;
  ScopedLease(const ScopedLease&) = delete;
  ScopedLease& operator=(const ScopedLease&) = delete;
  ~ScopedLease();

  // The lease as last renewed (a copy: keep-alive may update it concurrently).
  // REQUIRES: not moved from.
  Lease lease() const;
  std::uint64_t token() const;

  // True once the lease is known lost (keep-alive only).
  bool lost() const;

  // The self-fencing deadline on the steady clock: the last confirmed expiry minus the safety
  // margin. Work done under the lease must be over by then. Thread-safe.
  std::chrono::steady_clock::time_point fence_deadline() const;

  // Stops keep-alive and releases now. kLeaseLost if it was lost. Idempotent: later calls and
  // the destructor do nothing.
  Status Release();

  // Stops keep-alive and hands the lease back *without* releasing it: it stays held until its
  // TTL passes (lease backends) or the caller releases it. For "hold at least this long" after
  // the work is done (renew to the remaining time, then let it expire). kLeaseLost if it was
  // lost; kInvalidArgument if already released or detached. Later calls of Release and the
  // destructor do nothing.
  Result<Lease> Detach();

 private:
  struct State;
  ScopedLease(Locker& locker, Lease lease, Options options,
              std::chrono::steady_clock::time_point acquired_at);
  Status LostStatus() const;
  std::unique_ptr<State> state_;
};

}  // namespace ordo

#endif  // ORDO_SCOPED_LEASE_H_
